"""Whose note is this: the task_id a note gets, and the task it is a copy or an edit of.

`identity.identify` decides (pure, from what the vault records); this is its shell in the main
loop: it gathers what the records and the note index know of the note's task_id, name and text,
asks, and turns the answer into the keys to write (a new task_id; for a copy, our keys reset and
the reason it is held). docs/ARCHITECTURE.md, "Whose note is this", has the rules. Runs in the
main loop only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from ..base import fsops
from ..base.errors import NoteRefused
from ..notes.identity import CopyOf, EditOf, Known, Own, Seen, conflict_base, identify
from ..notes.index import NoteIndex
from ..notes.notefile import NoteGone, NoteStore, Signature
from ..notes.records import TaskRecords
from ..notes.taskfile import HELD_AS_COPY, OWNED_KEYS, TaskNote, new_task_id
from ..notes.vault import Folder, Vault
from . import planner

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Identified:
    """A note's task, as `Whose.of` found it."""

    task_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    """The keys to write for it: a new task_id, or a copy's keys reset (empty: none)."""
    other: EditOf | CopyOf | None = None
    """The task it is a later edit of (one that waits for approval), or a copy of."""


@dataclass
class Whose:
    """Gives each note its task (see the module docstring)."""

    vault: Vault
    notes: NoteStore
    index: NoteIndex
    records: TaskRecords

    def of(self, path: Path, note: TaskNote, folder: Folder, signature: Signature) -> Identified:
        """The note's task_id and the keys to write for it; and, for a later edit of a task
        that waits for approval or a copy of a task, that task. `signature`: the file the note
        was read from. Raises NoteGone when the task's note is this very file, moved since."""
        task_id = note.task_id
        if folder is Folder.REJECTED:  # a person's rejection: whatever it was, it ends here
            return self._own(path, task_id)
        if task_id and self._seen_here(path, task_id):
            return self._own(path, task_id)
        seen = Seen(path, task_id, planner.body_hash(note), note.asked)
        by_id = self._known_by_id(path, task_id) if task_id else None
        candidates = [] if task_id else self._candidates(seen)
        if any(c.name in (seen.name, conflict_base(seen.name)[0]) for c in candidates):
            stems = {seen.name.removesuffix(".md")} | {
                c.name.removesuffix(".md") for c in candidates
            }
            seen = replace(seen, boilerplate=template_lines(self.vault) | stems)
        decided = identify(seen, by_id, candidates)
        if isinstance(decided, Own):
            if decided.restore is not None:
                log.info(
                    "keys restored",
                    action_type="restore",
                    target=self.vault.rel(path),
                    task_id=decided.restore,
                    result="an older buffer dropped them; the note is its task's own",
                )
                return Identified(decided.restore, {"task_id": decided.restore})
            return self._own(path, task_id)
        if _moved_there(path, signature, decided.original.where):
            raise NoteGone(str(path))  # the other note is this one, moved since we read it
        if isinstance(decided, EditOf) and folder is not Folder.APPROVED:
            return Identified(decided.original.task_id, {}, decided)
        # Copies wait for a person wherever they come back, Approved/ too (an approval saved on
        # a laptop after the note moved on here must not run it a second time); a held copy a
        # person approves carries its own task_id, and runs.
        return self._copy(path, decided.original, decided.reason)

    def _copy(self, path: Path, original: Known, reason: str) -> Identified:
        """A copy of a task is a new task: it never inherits a run, a plan, an approval or a
        status past pending; it waits for a person."""
        fresh = new_task_id()
        log.warning(
            "copy of a task note",
            action_type="copy",
            target=self.vault.rel(path),
            task_id=fresh,
            parameters={"copy_of": original.task_id},
            result="new task_id; it waits for a person's approval",
            error=reason,
        )
        cleared: dict[str, Any] = dict.fromkeys(k for k in OWNED_KEYS if k != "task_id")
        held = {
            "task_id": fresh,
            "attempts": 0,
            "status": "pending_approval",
            "error": HELD_AS_COPY + reason,
        }
        return Identified(fresh, {**cleared, **held}, CopyOf(original, reason))

    def _own(self, path: Path, task_id: str | None) -> Identified:
        """Its own task_id, or a new one when it has none or a live note elsewhere holds it.
        A note that takes a new id for an id another holds is another task: nothing of that
        task's (an approval, granted tools, a session, its run's figures) comes with it."""
        owner = self.index.owner_of(task_id) if task_id else None
        if task_id and (owner is None or owner == path or not owner.exists()):
            return Identified(task_id)
        fresh = new_task_id()
        if not task_id:
            return Identified(fresh, {"task_id": fresh})
        cleared = dict.fromkeys(k for k in OWNED_KEYS if k not in ("task_id", "status"))
        log.warning(
            "a second note with a task's id",
            action_type="copy",
            target=self.vault.rel(path),
            task_id=fresh,
            parameters={"copy_of": task_id},
            result="new task_id; nothing of the other task's comes with it",
        )
        return Identified(fresh, {**cleared, "task_id": fresh})

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
