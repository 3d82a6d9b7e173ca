"""Reconcile a note with the lifecycle table: read it, decide, take the step, remember.

`Reconciler.look(path)` is what every event, the start-up scan, an overflow rescan and the
sweep come down to. Its steps are a loop: read the note (or, right after our own write, parse
what we placed), give it its task id, gather the facts, `lifecycle.decide`, take the step
(steps.py), remember what was decided in the note index; then decide again while the step
leads on (plan, then run or hold). Runs in the main loop only.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog

from ..base.config import Config
from ..base.diskspace import is_disk_error
from ..base.errors import NoteRefused
from ..notes.identity import CopyOf, EditOf
from ..notes.index import Entry, NoteIndex
from ..notes.lifecycle import Action, Status, Step, decide
from ..notes.notefile import NoteGone, NoteStore, Placed, Signature, note_from_bytes, signature_of
from ..notes.records import FINISHED, TaskRecords
from ..notes.taskfile import TaskNote, held_reason
from ..notes.vault import TRIGGER_FOLDERS, Folder, Vault
from ..telling.notify import Tell, ToldRefusals
from ..telling.write_trouble import WriteTrouble
from . import planner
from .dependencies import Dependencies
from .facts import FactsOf
from .intake import drop_candidates, take_drop
from .recurring import Recurring
from .refusals import Refusals
from .steps import (
    CONTINUES,
    STEPS,
    Decided,
    LookLater,
    Runs,
    StepContext,
    Stepped,
    fold_edit,
    hold_copy,
)
from .waits import Waiting, Waits
from .whose import Identified, Whose

log = structlog.get_logger(__name__)

MAX_STEPS = 6
"""Steps taken on one note in one look (plan, then hold, ...) before waiting for the next event."""


class Finished(Protocol):
    """What counts Done/ and Failed/ (Dashboard.md's model), told as soon as a look finds a
    note put there or taken out (a retry, a person's move), so the counts follow at once."""

    def landed(self, path: Path) -> None:
        """A note is at `path` after a step (counted if that is Done/ or Failed/)."""

    def left(self, path: Path) -> None:
        """A task's note, last at `path` in Done/ or Failed/, was found elsewhere."""


StepObserver = Callable[[Path, Step, str], None]
"""Told of each step after it is done (path, step, task_id): tests and benchmarks watch."""


@dataclass
class Reconciler:
    vault: Vault
    config: Config
    now: Callable[[], datetime]
    actor: str
    runs: Runs
    index: NoteIndex
    plans: planner.Plans
    records: TaskRecords
    hooks: Tell
    told: ToldRefusals
    """The refused notes a person was told of (once per note content, across restarts)."""
    finished: Finished
    step_observers: list[StepObserver] = field(default_factory=list)

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes)

    @functools.cached_property
    def refusals(self) -> Refusals:
        """The refused notes (refusals.py), over this reconciler's index and hooks."""
        return Refusals(self.vault, self.config, self.index, self.hooks, self.told)

    @functools.cached_property
    def recurring(self) -> Recurring:
        """The series in Recurring/ (recurring.py), over this reconciler's records and index."""
        return Recurring(self.vault, self.notes, self.records, self.index, self.refusals, self.now)

    @functools.cached_property
    def waits(self) -> Waits:
        """The tasks that wait for others (waits.py), told of every change to a task's record."""
        waits = Waits(Dependencies(self.records, self.index), self.index, self.runs.is_running)
        self.records.listeners.append(waits.record_changed)
        return waits

    @functools.cached_property
    def facts(self) -> FactsOf:
        """What a decision depends on (facts.py), read with this reconciler's parts."""
        return FactsOf(self.vault, self.config, self.runs, self.records, self.now)

    @functools.cached_property
    def whose(self) -> Whose:
        """Whose note is this (whose.py), over this reconciler's index and records."""
        return Whose(self.vault, self.notes, self.index, self.records)

    # --- scanning ---------------------------------------------------------------------------

    def active_paths(self) -> Iterator[Path]:
        """Every path the service may act on: notes in trigger folders, files in Inbox/Drop,
        series notes in Recurring/ (last: the occurrences they wrote are known by then)."""
        for folder in TRIGGER_FOLDERS:
            yield from self.vault.notes_in(folder)
        yield from drop_candidates(self.vault)
        yield from self.recurring.paths()

    def start(self) -> int:
        """At the service's start: what the plans record of every task and which refused notes
        a person was told of, then every active note. Returns how many were looked at."""
        self.records.load()
        assert self.waits is not None  # told of the records' changes from now on
        self.told.load()
        return self.reconcile_all()

    def reconcile_all(self) -> int:
        """Look at every active path; forget what is gone. Returns how many were looked at."""
        seen = []
        for path in self.active_paths():
            seen.append(path)
            self.look(path)
        self.index.keep_only(seen)
        self.recurring.keep_only(seen)
        self.waits.keep_only({e.task_id for e in self.index.entries.values() if e.task_id})
        self.refusals.keep_only_present()
        return len(seen)

    # --- one note ---------------------------------------------------------------------------

    @functools.cached_property
    def trouble(self) -> WriteTrouble:
        """Writes the vault's disk refused (write_trouble.py): said once, shown meanwhile."""
        return WriteTrouble(self.vault, self.now)

    def look(self, path: Path, *, force: bool = False) -> Step | None:
        """Bring one path in line with the table. Returns the last step taken (None: nothing).
        An OSError is said and the rest goes on: a write the disk refused (full, read-only)
        once for all, the note looked at again once the disk takes writes (write_trouble.py;
        its old text stays whole: every write is atomic); any other at each look."""
        try:
            return self._look(path, force)
        except OSError as err:
            if is_disk_error(err):
                self.trouble.failed("a note's step", path, err, retry=path)
            else:
                log.error(
                    "cannot process note",
                    action_type="error",
                    target=str(path),
                    error=f"{type(err).__name__}: {err}",
                )
            return None

    def _look(self, path: Path, force: bool) -> Step | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.forget(path)
            return None
        if not force and self.index.unchanged(path, signature_of(st), self.now()):
            return None  # unchanged since we last looked (or wrote): nothing new to decide
        if self.vault.folder_of(path) is Folder.DROP:
            created = take_drop(self.vault, path, st)
            if created is not None:
                self.look(created)
            return None
        if self.vault.folder_of(path) is Folder.RECURRING:
            for occurrence in self.recurring.look(path, force=force):
                self.look(occurrence)
            return None
        step: Step | None = None
        placed: Placed | None = None
        planned: tuple[Path, str] | None = None
        for _ in range(MAX_STEPS):
            outcome = self._one_step(path, placed, planned)
            if outcome is None:
                return step
            step, stepped = outcome
            path, placed, planned = stepped.path, stepped.placed, stepped.planned
            if step.action not in CONTINUES:
                return step
        return step

    def _one_step(
        self, path: Path, placed: Placed | None, planned: tuple[Path, str] | None
    ) -> tuple[Step, Stepped] | None:
        """One decision and its step. `placed`: what our previous step put there, if anything
        (while the path still shows that very file, it is parsed from memory, not read
        again); `planned`: (note, body hash) of a plan the previous step wrote."""
        folder = self.vault.folder_of(path)
        if folder is None:
            return None
        read = self._read(path, placed)
        if read is None:
            return None
        note, seen = read
        task_type = note.task_type or self.config.default_type
        if note.empty or note.status is Status.DRAFT:
            who = Identified(note.task_id or "")  # never touched: no id written
        else:
            try:
                who = self.whose.of(path, note, folder, seen)
            except NoteGone:  # moved since we read it: decided at its new place, by its event
                self.index.forget(path)
                return None
        if who.task_id and folder not in FINISHED:
            self._back_from_finished(who.task_id, path)
        try:
            waiting = self.waits.of_note(who.task_id, folder, note)
        except NoteRefused as err:  # an `after:` that names no tasks
            self.refusals.refuse(path, err.reason)
            return None
        facts = self.facts.of(folder, note, task_type, path, who.task_id, planned, waiting.blocked)
        if facts.running and who.other is None:  # its own note, maybe moved: its end goes here
            self.runs.moved(who.task_id, path)
        decided = self._decided(path, note, decide(facts), task_type, who, waiting)
        stepped = self._step_or_wait(decided, who.other if isinstance(who.other, EditOf) else None)
        if stepped is None:
            return None
        self._remember(decided, facts.due, folder, seen, stepped)
        return decided.step, stepped

    def _decided(
        self,
        path: Path,
        note: TaskNote,
        step: Step,
        task_type: str,
        who: Identified,
        waiting: Waiting,
    ) -> Decided:
        """The decision with what its step needs: the keys to write (a task_id, what `after:`
        comes to), the task it copies, and for a run what its dependencies produced."""
        changes = {**who.changes, **waiting.changes}
        after_ids = changes.get("after_ids", note.meta.get("after_ids"))
        found = self.waits.found
        produced = found.produced(self.config, after_ids) if step.action is Action.RUN else ()
        return Decided(
            path,
            note,
            step,
            task_type,
            who.task_id,
            changes,
            who.other if isinstance(who.other, CopyOf) else None,
            waiting.attention,
            waiting.says,
            produced,
        )

    def forget(self, path: Path) -> None:
        """The note at `path` is gone: forgotten, the tasks waiting on its task told (a series
        note: its times end)."""
        entry = self.index.entries.get(path)
        if entry is not None and entry.task_id and self.index.owners.get(entry.task_id) == path:
            self.waits.gone(entry.task_id)
        self.index.forget(path)
        self.recurring.forget(path)  # a series note: no more of its times

    def _back_from_finished(self, task_id: str, path: Path) -> None:
        """The task's note is at `path` while its record has it in Done/, Failed/ or Rejected/
        (a retry, a person's move, into any active folder): the record and the counts follow,
        before a step moves it on."""
        was = self.records.finished_at(task_id)
        if was is not None and was != path:
            self.records.moved(task_id, path, None)
            self.finished.left(was)

    def _read(self, path: Path, placed: Placed | None) -> tuple[TaskNote, Signature] | None:
        """The note now and the file it came from; None when refused (said so) or gone."""
        try:
            note, seen = self._current(path, placed)
        except NoteRefused as err:
            self.refusals.refuse(path, err.reason)
            return None
        except FileNotFoundError:
            self.index.forget(path)
            return None
        self.refusals.readable(path)
        return note, seen

    def _step_or_wait(self, decided: Decided, edit: EditOf | None) -> Stepped | None:
        """The step; None when it could not be taken now (refused, gone, or to be looked at
        again once the note settles)."""
        try:
            return self._step(decided, edit)
        except NoteRefused as err:
            self.refusals.refuse(decided.path, err.reason)
        except (NoteGone, FileNotFoundError):
            self.index.forget(decided.path)
        except LookLater:
            self.index.unsettled(decided.path)
        return None

    def _remember(
        self, d: Decided, due: bool, folder: Folder, seen: Signature, stepped: Stepped
    ) -> None:
        """What was decided, in the note index, under where the note is now; the observers."""
        note, step = d.note, d.step
        # The identity of what we decided on: the file we placed (a move keeps it), or the one
        # we read. Never an lstat now: a save made since must look new to the next look.
        signature = stepped.placed.signature if stepped.placed else seen
        if stepped.path != d.path:
            self.index.forget(d.path)
        passive = step.action in (Action.NOTHING, Action.WAIT, Action.RUN, Action.STOP)
        wake = note.when("next_attempt_at") if step.action is Action.WAIT and not due else None
        self.index.remember(
            stepped.path,
            Entry(
                signature,
                d.task_id,
                note.status if passive else (step.status or note.status),
                note.title,
                self.vault.folder_of(stepped.path) or folder,
                step.action,
                d.task_type,
                note.priority.value,
                wake,
                d.attention or _held(note, stepped),
                d.waiting_for if step.action is Action.WAIT else None,
            ),
        )
        self.finished.landed(stepped.path)
        for observer in self.step_observers:
            observer(stepped.path, step, d.task_id)

    def _step(self, d: Decided, edit: EditOf | None) -> Stepped:
        ctx = StepContext(
            self.vault,
            self.config,
            self.notes,
            self.runs,
            self.plans,
            self.records,
            self.hooks,
            self.actor,
            self.now(),
        )
        if edit is not None and edit.original.where is not None:  # one waiting task, its text
            return fold_edit(ctx, d, edit.original.where, edit.reason)
        if d.copy is not None:  # a copy: straight to a person
            return hold_copy(ctx, d)
        placed = None
        if d.id_changes and d.step.action in (Action.NOTHING, Action.WAIT, Action.RUN):
            placed = self.notes.update(d.path, d.id_changes)  # the task_id, before it runs
        stepped = STEPS[d.step.action](ctx, d)
        return stepped if stepped.placed or placed is None else Stepped(stepped.path, placed)

    def _current(self, path: Path, placed: Placed | None) -> tuple[TaskNote, Signature]:
        """The note now, and the identity of the file it came from."""
        if placed is not None:
            st = os.lstat(path)
            if signature_of(st) == placed.signature and stat.S_ISREG(st.st_mode):
                note = note_from_bytes(path, placed.data, self.config.max_note_bytes)
                return note, placed.signature
        note, snap = self.notes.read(path)
        return note, (snap.inode, len(snap.data), snap.mtime_ns)


def _held(note: TaskNote, stepped: Stepped) -> str | None:
    """Why a note waits for a person beyond an approval (it is a copy of another task)."""
    reason = (
        stepped.held_because
        if stepped.held_because is not None
        else held_reason(note.meta.get("error"))
    )
    return str(reason) if reason else None
