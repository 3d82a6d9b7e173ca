"""Tasks that wait for others: what a note's `after:` names now, and who to look at when it changes.

`Waits.of(task_id, note)` resolves each name `after:` holds to a task identity (a task_id kept
on the note in `after_ids`, so renaming or moving a dependency's note, or a sync tool bringing it
back, changes nothing), reads where each dependency is now, and says whether the task may run,
what it waits for (`waiting_for`, one line on the note) and what needs a person (a dependency
that failed, was rejected or cancelled). A cycle among waiting tasks refuses every task in it:
none runs, each note says the cycle (`waiting_for`), Dashboard.md lists it under "Needs
attention", until an edit of an `after:` in it breaks it.

It remembers, for the main loop, which waiting task waits on which (a reverse index): when the
service changes a dependency's record (planned, moved, done, failed), its dependents are woken
(`take_woken`) and looked at again at once; a name that matched no task wakes its waiters when
a task of that name is planned. No sweep and no poll. Owned by the main loop (its one thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ..base.config import Config
from ..base.errors import NoteRefused
from ..notes.after import find_cycle, note_name, references
from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.notefile import NoteGone
from ..notes.records import Record, TaskRecords
from ..notes.taskfile import TASK_ID_SHAPE, TaskNote
from ..notes.vault import Folder, workdir_for

log = structlog.get_logger(__name__)

GAVE_UP: frozenset[Status] = frozenset({Status.FAILED, Status.REJECTED, Status.CANCELLED})
"""A dependency in one of these keeps its dependents waiting, and needs a person."""


@dataclass(frozen=True)
class Waiting:
    """What a note's `after:` comes to now."""

    blocked: bool = False
    """A task it names is not done (or names no task yet)."""
    changes: Mapping[str, Any] = field(default_factory=dict)
    """Our keys to write for it (`after_ids`, `waiting_for`), when they differ from the note's."""
    attention: str | None = None
    """Why a person is needed (a dependency that failed, ...), for Dashboard.md."""
    says: str | None = None
    """What it waits for, in one line (its `waiting_for`), while it waits."""


NOT_WAITING = Waiting()


@dataclass(frozen=True)
class _Dependency:
    task_id: str
    title: str
    status: Status | None
    gone: bool


class Waits:
    """The waiting tasks and what they wait on (see the module docstring)."""

    def __init__(
        self, records: TaskRecords, index: NoteIndex, running: Callable[[str], bool]
    ) -> None:
        self.records = records
        self.index = index
        self.running = running
        """Whether a run of the task is alive: a dependency is done once its run has ended too
        (its note then is where its record says, with its Result)."""
        self._waits_on: dict[str, tuple[str, ...]] = {}
        """Waiting task -> its dependencies that are not done."""
        self._dependents: dict[str, set[str]] = {}
        """Dependency -> the waiting tasks that name it."""
        self._missing: dict[str, set[str]] = {}
        """A name (casefolded note name, or a task_id) that matched no task -> who names it."""
        self._missing_of: dict[str, set[str]] = {}
        """A waiting task -> the names of it that matched no task (the keys of `_missing`)."""
        self._cycles: dict[str, tuple[str, ...]] = {}
        """A task refused for a cycle -> the cycle."""
        self._woken: set[str] = set()

    def of(self, task_id: str, note: TaskNote) -> Waiting:
        """What `after:` comes to now for this task. Raises NoteRefused for an `after:` that
        names no tasks. A cycle through it: blocked, saying so (every other task in it is
        woken, to say so too)."""
        try:
            refs = references(note.meta.get("after"))
        except NoteRefused:
            self._waiting_on(task_id, ())
            raise
        kept = note.meta.get("after_ids")
        kept = kept if isinstance(kept, dict) else {}
        ids: dict[str, str | None] = {}
        lines: list[str] = []
        pending: list[str] = []
        trouble: list[str] = []
        missing: set[str] = set()
        for ref in refs:
            known = kept.get(ref)
            dep_id = known if isinstance(known, str) and TASK_ID_SHAPE.fullmatch(known) else None
            dep_id = dep_id or self._resolve(ref)
            ids[ref] = dep_id
            dep = self._dependency(dep_id) if dep_id else None
            if dep is None:
                lines.append(f"{ref}: no such task yet")
                missing |= _keys(ref)
                continue
            if dep.status is Status.DONE and not self.running(dep.task_id):
                continue  # done, even if its note was archived since
            named = f"{dep.title} ({dep.task_id})"
            if dep.gone or dep.status in GAVE_UP:
                said = (
                    f"{named}: its note is gone (name another task in `after:`)"
                    if dep.gone
                    else f"{named} is {dep.status}: retry it to go on"
                )
                lines.append(said)
                trouble.append(f"waits for {said}")
            else:
                lines.append(named)
            pending.append(dep.task_id)
        self._missing_now(task_id, missing)
        self._waiting_on(task_id, tuple(pending))
        cycle = find_cycle(task_id, self._waits_on)
        if cycle is not None:
            lines = trouble = [self._refuse_cycle(cycle)]
        says = " ".join("; ".join(lines).split()) or None  # as the note will say it
        changes: dict[str, Any] = {}
        if ids != kept:
            changes["after_ids"] = ids or None
        if says != note.meta.get("waiting_for"):
            changes["waiting_for"] = says
        attention = " ".join("; ".join(trouble).split()) or None
        return Waiting(bool(lines), changes, attention, says)

    def not_waiting(self, task_id: str) -> None:
        """The task runs, ended or left: it waits on nothing any more."""
        if task_id in self._waits_on:
            self._waiting_on(task_id, ())
        if task_id in self._missing_of:
            self._missing_now(task_id, set())

    def gone(self, task_id: str) -> None:
        """The task's note is gone (deleted, moved away): it waits no more, and the tasks
        that wait on it are looked at again (to say so)."""
        self.not_waiting(task_id)
        self._woken |= self._dependents.get(task_id, set())

    def keep_only(self, present: set[str]) -> None:
        """After a full scan: forget the waiting tasks whose notes were not seen (deleted,
        moved out by a person); the tasks that were in a cycle with one are looked at again."""
        for task_id in (set(self._waits_on) | set(self._missing_of)) - present:
            self.not_waiting(task_id)

    def record_changed(self, record: Record) -> None:
        """The service planned a task or changed its record (moved, done, failed): the tasks
        that wait on it, or on a name it now answers to, are looked at again."""
        self._woken |= self._dependents.get(record.task_id, set())
        for key in (record.task_id, record.name.casefold()):
            self._woken |= self._missing.get(key, set())  # each forgets it when it resolves

    def take_woken(self) -> list[Path]:
        """The notes of the waiting tasks to look at again now (each once)."""
        woken, self._woken = sorted(self._woken), set()
        paths = []
        for task_id in woken:
            path = self.index.owners.get(task_id)
            record = self.records.by_id.get(task_id)
            if path is None and record is not None and record.where:
                path = self.records.vault.root / record.where
            if path is not None:
                paths.append(path)
        return paths

    @property
    def any_woken(self) -> bool:
        return bool(self._woken)

    # --- inside ---------------------------------------------------------------------------

    def _resolve(self, ref: str) -> str | None:
        """The task a name means: a known task_id; else the task of a note of that name in the
        folders the service acts on (any case); else none yet if such a note is in
        Needs_Action/ unseen (it is planned in a moment, and wakes this one); else the newest
        task planned from a note of that name (finished, most likely)."""
        if TASK_ID_SHAPE.fullmatch(ref) and (ref in self.records.by_id or ref in self.index.owners):
            return ref
        name = note_name(ref)
        active = self.index.named(name)
        if active:
            return active[0]
        unseen = self.records.vault.folder(Folder.NEEDS_ACTION) / name
        if unseen.exists():
            return None
        named = self.records.named(name)
        return named[0] if named else None

    def _dependency(self, task_id: str) -> _Dependency | None:
        """A dependency as the vault has it now: as the index last saw its note (in an active
        folder), else as its note says wherever it is (`note_of`); gone: its record, but its
        note is nowhere; None: no such task."""
        path = self.index.owners.get(task_id)
        entry = self.index.entries.get(path) if path is not None else None
        if entry is not None:
            return _Dependency(task_id, entry.title, entry.status, False)
        found = self.note_of(task_id)
        if found is not None:
            return _Dependency(task_id, found[1].title, found[1].status, False)
        record = self.records.by_id.get(task_id)
        if record is None:
            return None
        return _Dependency(task_id, record.title, record.status, True)

    def note_of(self, task_id: str) -> tuple[Path, TaskNote] | None:
        """The task's note now: where the index saw it, else where its record says, else
        wherever `records.known` finds it (its name in each task folder); None: nowhere."""
        record = self.records.by_id.get(task_id)
        places = [self.index.owners.get(task_id)]
        places.append(self.records.vault.root / record.where if record and record.where else None)
        for place in places:
            if place is None:
                continue
            try:
                note, _ = self.records.notes.read(place)
            except (OSError, NoteRefused, NoteGone):
                continue
            if note.task_id == task_id:
                return place, note
        known = self.records.known(task_id, read_body=False) if record is not None else None
        if known is None or known.where is None:
            return None
        try:
            note, _ = self.records.notes.read(known.where)
        except (OSError, NoteRefused, NoteGone):
            return None
        return known.where, note

    def produced(self, config: Config, after_ids: object) -> tuple[str, ...]:
        """What each task named in `after_ids` produced, for the prompt of the task that ran
        after them: its title, work dir, branch (a repo task) and Result, from its note now."""
        if not isinstance(after_ids, dict):
            return ()
        blocks = []
        for dep_id in dict.fromkeys(v for v in after_ids.values() if isinstance(v, str)):
            found = self.note_of(dep_id)
            if found is not None:
                blocks.append(_produced_by(config, dep_id, found[1]))
        return tuple(blocks)

    def _missing_now(self, task_id: str, keys: set[str]) -> None:
        """The task's names that match no task are now `keys` (woken when one appears)."""
        before = self._missing_of.pop(task_id, set())
        for key in before - keys:
            waiters = self._missing.get(key)
            if waiters is not None:
                waiters.discard(task_id)
                if not waiters:
                    del self._missing[key]
        for key in keys:
            self._missing.setdefault(key, set()).add(task_id)
        if keys:
            self._missing_of[task_id] = keys

    def _waiting_on(self, task_id: str, pending: tuple[str, ...]) -> None:
        """The task now waits on `pending`: the reverse index follows; a cycle it was in is
        looked at again (an edit may have broken it)."""
        before = self._waits_on.get(task_id, ())
        if before == pending:
            return
        for dep in before:
            waiters = self._dependents.get(dep)
            if waiters is not None:
                waiters.discard(task_id)
                if not waiters:
                    del self._dependents[dep]
        for dep in pending:
            self._dependents.setdefault(dep, set()).add(task_id)
        if pending:
            self._waits_on[task_id] = pending
        else:
            del self._waits_on[task_id]
        for member in [m for m, cycle in self._cycles.items() if task_id in cycle]:
            del self._cycles[member]
            if member != task_id:
                self._woken.add(member)

    def _refuse_cycle(self, cycle: list[str]) -> str:
        """Every task in the cycle is refused (the others woken to say so, the log told once
        per cycle); the reason, seen from `cycle[0]`."""
        members = tuple(cycle)
        titles = []
        for member in cycle:
            dep = self._dependency(member)
            titles.append(f"{dep.title} ({member})" if dep is not None else member)
        if len(cycle) == 2:
            said = f"refused: `after:` names the task itself ({titles[0]}): it would wait for ever"
        else:
            said = (
                "refused: a cycle of dependencies: "
                + " -> ".join(titles)
                + "; nothing in it runs until an `after:` in it changes"
            )
        new = [m for m in dict.fromkeys(cycle) if set(self._cycles.get(m, ())) != set(members)]
        for member in new:
            self._cycles[member] = members
            if member != cycle[0]:
                self._woken.add(member)
        if new:
            log.warning(
                "dependency cycle",
                action_type="refuse",
                task_id=cycle[0],
                parameters={"cycle": list(members)},
                error=said,
            )
        return said


MAX_PRODUCED_CHARS = 4000
"""Of each dependency's Result, at most this much goes into the prompt."""


def _produced_by(config: Config, dep_id: str, dep: TaskNote) -> str:
    """One dependency's block in the prompt: title, work dir, branch, Result (cut)."""
    lines = [f"### {dep.title} ({dep_id})"]
    meta = dep.meta
    try:
        workdir = workdir_for(
            config.apps_dir,
            config.allowed_roots,
            dep_id,
            meta.get("language"),
            meta.get("app"),
            meta.get("repo"),
        )
        lines.append(f"Its work dir: {workdir}")
    except NoteRefused:
        pass
    if meta.get("branch"):
        lines.append(f"Its branch: {meta['branch']}")
    result = dep.result
    if len(result) > MAX_PRODUCED_CHARS:
        result = result[:MAX_PRODUCED_CHARS] + "\n(cut here)"
    lines.append(result or "(it recorded no result)")
    return "\n".join(lines)


def _keys(ref: str) -> set[str]:
    """How a name that matched no task is waited on: as a note name (casefolded), and as a
    task_id when it could be one."""
    return {note_name(ref).casefold(), *([ref] if TASK_ID_SHAPE.fullmatch(ref) else [])}
