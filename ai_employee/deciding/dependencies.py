"""The tasks a task runs after, as the vault has them now: which task a name in `after:` means,
where a dependency's note is and what it says, and what it produced (for the prompt).

`Dependencies` only reads (the note index, the task records, the notes); what waits on what is
`waits.py`'s. Used in the main loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.config import Config
from ..base.errors import NoteRefused
from ..notes.after import note_name
from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.notefile import NoteGone
from ..notes.records import TaskRecords
from ..notes.taskfile import TASK_ID_SHAPE, TaskNote
from ..notes.vault import Folder, workdir_for


@dataclass(frozen=True)
class Dependency:
    """A task some task runs after, as the vault has it now."""

    task_id: str
    title: str
    status: Status | None
    gone: bool
    """Its record is known, its note is nowhere."""


@dataclass(frozen=True)
class Dependencies:
    """Reads the tasks named in `after:` (see the module docstring)."""

    records: TaskRecords
    index: NoteIndex

    def resolve(self, ref: str) -> str | None:
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

    def state(self, task_id: str) -> Dependency | None:
        """A dependency as the vault has it now: as the index last saw its note (in an active
        folder), else as its note says wherever it is (`note_of`); gone: its record, but its
        note is nowhere; None: no such task."""
        path = self.index.owners.get(task_id)
        entry = self.index.entries.get(path) if path is not None else None
        if entry is not None:
            return Dependency(task_id, entry.title, entry.status, False)
        found = self.note_of(task_id)
        if found is not None:
            return Dependency(task_id, found[1].title, found[1].status, False)
        record = self.records.by_id.get(task_id)
        if record is None:
            return None
        return Dependency(task_id, record.title, record.status, True)

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
