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
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..base import fsops
from ..base.config import Config
from ..base.errors import NoteRefused
from ..notes.identity import CopyOf, EditOf, Known, Own, Seen, conflict_base, identify
from ..notes.index import Entry, NoteIndex
from ..notes.lifecycle import Action, Facts, Status, Step, decide, is_due
from ..notes.notefile import NoteGone, NoteStore, Placed, Signature, note_from_bytes, signature_of
from ..notes.records import TaskRecords
from ..notes.taskfile import HELD_AS_COPY, OWNED_KEYS, TaskNote, held_reason, new_task_id
from ..notes.vault import TRIGGER_FOLDERS, Folder, Vault
from ..telling.notify import Event, Notice, Tell, ToldRefusals, fingerprint
from . import planner
from .intake import drop_candidates, take_drop
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

log = structlog.get_logger(__name__)

MAX_STEPS = 6
"""Steps taken on one note in one look (plan, then hold, ...) before waiting for the next event."""

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
    step_observers: list[StepObserver] = field(default_factory=list)

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes)

    # --- scanning ---------------------------------------------------------------------------

    def active_paths(self) -> Iterator[Path]:
        """Every path the service may act on: notes in trigger folders, files in Inbox/Drop."""
        for folder in TRIGGER_FOLDERS:
            yield from self.vault.notes_in(folder)
        yield from drop_candidates(self.vault)

    def reconcile_all(self) -> int:
        """Look at every active path; forget what is gone. Returns how many were looked at."""
        seen = []
        for path in self.active_paths():
            seen.append(path)
            self.look(path)
        self.index.keep_only(seen)
        self.told.keep_only(self.vault.rel(p) for p in self.index.refused)
        return len(seen)

    # --- one note ---------------------------------------------------------------------------

    def look(self, path: Path, *, force: bool = False) -> Step | None:
        """Bring one path in line with the table. Returns the last step taken (None: nothing)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.index.forget(path)
            return None
        if not force and self.index.unchanged(path, signature_of(st), self.now()):
            return None  # unchanged since we last looked (or wrote): nothing new to decide
        if self.vault.folder_of(path) is Folder.DROP:
            created = take_drop(self.vault, path, st)
            if created is not None:
                self.look(created)
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
        try:
            note, seen = self._current(path, placed)
        except NoteRefused as err:
            self._refuse(path, err.reason)
            return None
        except FileNotFoundError:
            self.index.forget(path)
            return None
        if self.index.accept(path):
            log.info("note accepted", target=self.vault.rel(path), result="refusal cleared")
            self.told.forget(self.vault.rel(path))
        task_type = note.task_type or self.config.default_type
        id_changes: dict[str, Any]
        other: EditOf | CopyOf | None = None
        if note.empty or note.status is Status.DRAFT:
            task_id, id_changes = note.task_id or "", {}  # never touched: no id written
        else:
            try:
                task_id, id_changes, other = self._identity(path, note, folder, seen)
            except NoteGone:  # moved since we read it: decided at its new place, by its event
                self.index.forget(path)
                return None
        facts = self._facts(folder, note, task_type, path, task_id, planned)
        step = decide(facts)
        copy = other if isinstance(other, CopyOf) else None
        decided = Decided(path, note, step, task_type, task_id, id_changes, copy)
        try:
            stepped = self._step(decided, other if isinstance(other, EditOf) else None)
        except NoteRefused as err:
            self._refuse(path, err.reason)
            return None
        except (NoteGone, FileNotFoundError):
            self.index.forget(path)
            return None
        except LookLater:
            self.index.unsettled(path)
            return None
        # The identity of what we decided on: the file we placed (a move keeps it), or the one
        # we read. Never an lstat now: a save made since must look new to the next look.
        signature = stepped.placed.signature if stepped.placed else seen
        if stepped.path != path:
            self.index.forget(path)
        passive = step.action in (Action.NOTHING, Action.WAIT, Action.RUN, Action.STOP)
        wake = (
            note.when("next_attempt_at") if step.action is Action.WAIT and not facts.due else None
        )
        self.index.remember(
            stepped.path,
            Entry(
                signature,
                task_id,
                note.status if passive else (step.status or note.status),
                note.title,
                self.vault.folder_of(stepped.path) or folder,
                step.action,
                task_type,
                note.priority.value,
                wake,
                _held(note, stepped),
            ),
        )
        for observer in self.step_observers:
            observer(stepped.path, step, task_id)
        return step, stepped

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

    def _facts(
        self,
        folder: Folder,
        note: TaskNote,
        task_type: str,
        path: Path,
        task_id: str,
        planned_plan: tuple[Path, str] | None,
    ) -> Facts:
        running = self.runs.is_running(task_id)
        status = note.status
        planned = bool(note.meta.get("plan"))
        stale = False
        if planned and not running and status in (Status.PLANNED, Status.APPROVED):
            fresh = planned_plan == (path, planner.body_hash(note))
            plan = self.records.plan_of(task_id) or self.vault.folder(Folder.PLANS) / (
                planner.plan_name(path, task_id)
            )
            stale = not fresh and planner.plan_is_stale(plan, note)
        return Facts(
            place=folder,
            status=status,
            needs_approval=self.config.requires_approval(task_type) or note.requires_approval,
            approved=note.meta.get("approved_at") is not None,
            planned=planned,
            plan_stale=stale,
            running=running,
            due=is_due(note.when("next_attempt_at"), self.now()),
            empty=note.empty,
        )

    def _identity(
        self, path: Path, note: TaskNote, folder: Folder, signature: Signature
    ) -> tuple[str, dict[str, Any], EditOf | CopyOf | None]:
        """The note's task_id and the keys to write for it; and, for a later edit of a task
        that waits for approval or a copy of a task, that task (identity.py decides, from the
        vault's records). `signature`: the file the note was read from."""
        task_id = note.task_id
        if folder is Folder.REJECTED:  # a person's rejection: whatever it was, it ends here
            return self._own(path, task_id)
        if task_id and self._seen_here(path, task_id):
            return self._own(path, task_id)
        seen = Seen(path, task_id, planner.body_hash(note), note.asked)
        by_id = self._known_by_id(path, task_id) if task_id else None
        if not task_id:
            candidates = self._candidates(seen)
            if any(c.name in (seen.name, conflict_base(seen.name)[0]) for c in candidates):
                stems = {seen.name.removesuffix(".md")} | {
                    c.name.removesuffix(".md") for c in candidates
                }
                seen = replace(seen, boilerplate=template_lines(self.vault) | stems)
        decided = identify(seen, by_id, [] if task_id else candidates)
        if isinstance(decided, Own):
            if decided.restore is not None:
                log.info(
                    "keys restored",
                    action_type="restore",
                    target=self.vault.rel(path),
                    task_id=decided.restore,
                    result="an older buffer dropped them; the note is its task's own",
                )
                return decided.restore, {"task_id": decided.restore}, None
            return self._own(path, task_id)
        if _moved_there(path, signature, decided.original.where):
            raise NoteGone(str(path))  # the other note is this one, moved since we read it
        if isinstance(decided, EditOf) and folder is not Folder.APPROVED:
            return decided.original.task_id, {}, decided
        # Copies wait for a person wherever they come back, Approved/ too (an approval saved on
        # a laptop after the note moved on here must not run it a second time); a held copy a
        # person approves carries its own task_id, and runs.
        fresh = new_task_id()
        log.warning(
            "copy of a task note",
            action_type="copy",
            target=self.vault.rel(path),
            task_id=fresh,
            parameters={"copy_of": decided.original.task_id},
            result="new task_id; it waits for a person's approval",
            error=decided.reason,
        )
        # A copy is a new task: it never inherits a run, a plan, an approval or a status past
        # pending.
        cleared: dict[str, Any] = dict.fromkeys(k for k in OWNED_KEYS if k != "task_id")
        held = {
            "task_id": fresh,
            "attempts": 0,
            "status": "pending_approval",
            "error": HELD_AS_COPY + decided.reason,
        }
        return fresh, {**cleared, **held}, CopyOf(decided.original, decided.reason)

    def _own(self, path: Path, task_id: str | None) -> tuple[str, dict[str, Any], None]:
        """Its own task_id, or a new one when it has none or a live note here holds it."""
        owner = self.index.owner_of(task_id) if task_id else None
        if task_id and (owner is None or owner == path or not owner.exists()):
            return task_id, {}, None
        fresh = new_task_id()
        return fresh, {"task_id": fresh}, None

    def _known_by_id(self, path: Path, task_id: str) -> Known | None:
        """The task a task_id names: as the vault records it, or, for a task not planned yet,
        the note this service holds it in."""
        known = self.records.known(task_id, read_body=True, not_at=path)
        if known is not None:
            return known
        owner = self.index.owner_of(task_id)
        if owner is None or owner == path or not owner.exists():
            return None
        entry = self.index.entries.get(owner)
        title, status = (entry.title, entry.status) if entry else ("", None)
        return Known(task_id, title, owner.name, "", owner, status)

    def _seen_here(self, path: Path, task_id: str) -> bool:
        """The note is its task's own as the main loop last saw it and the record has it (the
        look after our own edit, a claim, a run's end): no search needed."""
        entry = self.index.entries.get(path)
        if entry is None or entry.task_id != task_id:
            return False
        record = self.records.by_id.get(task_id)
        root = self._root_prefix
        text = str(path)
        return record is not None and text.startswith(root) and record.where == text[len(root) :]

    @functools.cached_property
    def _root_prefix(self) -> str:
        return f"{self.vault.root}{os.sep}"

    def _candidates(self, seen: Seen) -> list[Known]:
        """Tasks a note without a task_id may be a copy of: by name, conflict base, body; for
        a sure conflict copy, also the note it was made of when that task has no record yet
        (Claude is still writing its plan)."""
        base, sure = conflict_base(seen.name)
        ids = self.records.named(seen.name, base) + self.records.with_hash(seen.body_hash)
        found = (
            self.records.known(t, read_body=True, not_at=seen.path) for t in dict.fromkeys(ids)
        )
        known = [k for k in found if k is not None]
        if sure and base is not None and not any(k.name == base for k in known):
            unrecorded = self._unrecorded(seen.path.parent / base)
            known += [unrecorded] if unrecorded is not None else []
        return known

    def _unrecorded(self, path: Path) -> Known | None:
        """The task of the note at `path`, which has a task_id but no record (not planned)."""
        try:
            note, _ = self.notes.read(path)
        except (FileNotFoundError, NotADirectoryError, NoteRefused, NoteGone):
            return None
        if not note.task_id:
            return None
        return Known(
            note.task_id,
            note.title,
            path.name,
            planner.body_hash(note),
            path,
            note.status,
            note.asked,
            path,
        )

    def _refuse(self, path: Path, reason: str) -> None:
        try:
            signature = signature_of(os.lstat(path))
        except FileNotFoundError:
            return
        rel = self.vault.rel(path)
        if self.index.refuse(path, signature, reason):
            log.error(
                "note refused",
                action_type="refuse",
                target=rel,
                result="left untouched",
                error=reason,
            )
        # Told once per note content: not again at a sweep, a rescan or a restart.
        if self.hooks.wants(Event.NEEDS_ATTENTION) and self.told.first(
            rel, fingerprint(path, reason, self.config.max_note_bytes)
        ):
            self.hooks.tell(
                Notice(Event.NEEDS_ATTENTION, path, title=path.name, detail=f"refused: {reason}")
            )


def template_lines(vault: Vault) -> frozenset[str]:
    """Every line of the vault's templates (Templates/*.md), stripped: what notes made from
    them share without their authors writing it (identity.Seen.boilerplate)."""
    lines: set[str] = set()
    try:
        templates = sorted(vault.folder(Folder.TEMPLATES).glob("*.md"))
    except OSError:
        return frozenset()
    for template in templates[:MAX_TEMPLATES]:
        try:
            if template.is_symlink() or template.stat().st_size > MAX_TEMPLATE_BYTES:
                continue
            text = fsops.read_plain_text(template, errors="replace")
        except OSError:
            continue
        lines.update(line.strip() for line in text.splitlines())
    lines.discard("")
    return frozenset(lines)


MAX_TEMPLATES = 100
MAX_TEMPLATE_BYTES = 64 * 1024


def _moved_there(path: Path, signature: Signature, other: Path | None) -> bool:
    """The file read at `path` is now at `other` and no longer at `path` (a run's end or a
    person moved it between our read and our search; a hard link stays at both)."""
    if other is None:
        return False
    try:
        there = os.lstat(other).st_ino
    except FileNotFoundError:
        return False
    try:
        here = os.lstat(path).st_ino
    except FileNotFoundError:
        here = None
    return there == signature[0] and here != signature[0]


def _held(note: TaskNote, stepped: Stepped) -> str | None:
    """Why a note waits for a person beyond an approval (it is a copy of another task)."""
    reason = (
        stepped.held_because
        if stepped.held_because is not None
        else held_reason(note.meta.get("error"))
    )
    return str(reason) if reason else None
