"""Tasks that wait for others: what a note's `after:` names now, and who to look at when it changes.

`Waits.of(task_id, note)` resolves each name `after:` holds to a task identity (a task_id kept
on the note in `after_ids`, so renaming or moving a dependency's note, or a sync tool bringing it
back, changes nothing), reads where each dependency is now (both by dependencies.py), and says
whether the task may run,
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

from ..base.errors import NoteRefused
from ..notes.after import find_cycle, note_name, references
from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.records import Record
from ..notes.taskfile import TASK_ID_SHAPE, TaskNote
from ..notes.vault import Folder
from .dependencies import Dependencies

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

MAY_WAIT = frozenset({None, Status.NEW, Status.PLANNED, Status.APPROVED})
"""Statuses of a task in Needs_Action/ whose `after:` is looked at (it has not run yet)."""


class Waits:
    """The waiting tasks and what they wait on (see the module docstring)."""

    def __init__(
        self, found: Dependencies, index: NoteIndex, running: Callable[[str], bool]
    ) -> None:
        self.found = found
        """Which task a name means, and where each is now (dependencies.py)."""
        self.records = found.records
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
            dep_id = dep_id or self.found.resolve(ref)
            ids[ref] = dep_id
            dep = self.found.state(dep_id) if dep_id else None
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

    def of_note(self, task_id: str, folder: Folder | None, note: TaskNote) -> Waiting:
        """`of`, for a note that may still wait: in Needs_Action/, not run yet (no run alive,
        a status before `executing`); for any other, nothing (and it waits no more)."""
        if (
            not task_id
            or folder is not Folder.NEEDS_ACTION
            or note.status not in MAY_WAIT
            or self.running(task_id)
        ):
            self.not_waiting(task_id)
            return NOT_WAITING
        return self.of(task_id, note)

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
            dep = self.found.state(member)
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


def _keys(ref: str) -> set[str]:
    """How a name that matched no task is waited on: as a note name (casefolded), and as a
    task_id when it could be one."""
    return {note_name(ref).casefold(), *([ref] if TASK_ID_SHAPE.fullmatch(ref) else [])}
