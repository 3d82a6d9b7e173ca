"""The note index: what the main loop last saw of each note (or wrote to it).

Per path: the file's identity (inode, size, mtime) when last decided on, the task it holds and
its status; per task id, the path that holds it (a copy elsewhere is then a copy); the notes we
refuse, with why; the notes waiting for a time (a retry's `next_attempt_at`). It is what lets
our own writes, duplicate events and an unchanged note cost one `lstat`. Owned by the main loop
and changed only there; nothing in it decides anything on its own: the disk is the truth, and a
note whose identity changed is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .lifecycle import Action, Status
from .notefile import Signature
from .vault import Folder


@dataclass
class Entry:
    """What we last saw of a note (or wrote to it)."""

    signature: Signature
    task_id: str | None
    status: Status | None
    title: str
    folder: Folder
    step: Action
    task_type: str = ""
    priority: str = "normal"
    wake_at: datetime | None = None
    attention: str | None = None
    """Why it waits for a person beyond an approval (a copy of another task), for Dashboard.md."""
    waiting_for: str | None = None
    """What it waits for (the tasks its `after:` names that are not done), while it waits."""


@dataclass
class NoteIndex:
    entries: dict[Path, Entry] = field(default_factory=dict)
    refused: dict[Path, tuple[Signature, str]] = field(default_factory=dict)
    """Notes we refuse to touch: the identity we refused and the reason, for a person."""
    wakeups: dict[Path, datetime] = field(default_factory=dict)
    """Notes waiting for a time (a retry's next_attempt_at): few, so scanned whole."""
    owners: dict[str, Path] = field(default_factory=dict)
    """task_id -> the path that holds it (a copy elsewhere gets a new id)."""
    _names: dict[str, set[Path]] = field(default_factory=dict)
    """A note's file name, casefolded -> the paths with that name (`after:` names tasks)."""
    changes: int = 0
    """Counts changes, so Dashboard.md knows when to redraw."""

    def unchanged(self, path: Path, signature: Signature, now: datetime) -> bool:
        """Nothing new to decide: the same file as we last decided on (or refused), and no
        wake-up of it is due."""
        entry = self.entries.get(path)
        if entry is not None and entry.signature == signature:
            return entry.wake_at is None or entry.wake_at > now
        refusal = self.refused.get(path)
        return refusal is not None and refusal[0] == signature

    def remember(self, path: Path, entry: Entry) -> None:
        """What was decided on `path`: its entry, its task's owner, its wake-up."""
        if path not in self.entries:
            self._names.setdefault(path.name.casefold(), set()).add(path)
        self.entries[path] = entry
        if entry.task_id:
            self.owners[entry.task_id] = path
        if entry.wake_at is not None:
            self.wakeups[path] = entry.wake_at
        else:
            self.wakeups.pop(path, None)
        self.changes += 1

    def forget(self, path: Path) -> None:
        """The path is gone (or no longer ours to watch)."""
        self.wakeups.pop(path, None)
        entry = self.entries.pop(path, None)
        if entry is not None:
            self._unname(path)
        if entry and entry.task_id and self.owners.get(entry.task_id) == path:
            del self.owners[entry.task_id]
        if self.refused.pop(path, None) is not None or entry is not None:
            self.changes += 1

    def unsettled(self, path: Path) -> None:
        """Nothing could be decided yet (a message will bring the note back): no entry, so
        that look is not taken for an unchanged note."""
        if self.entries.pop(path, None) is not None:
            self._unname(path)

    def refuse(self, path: Path, signature: Signature, reason: str) -> bool:
        """Remember a refusal; True when it is new or its reason changed (worth saying)."""
        previous = self.refused.get(path)
        self.refused[path] = (signature, reason)
        if self.entries.pop(path, None) is not None:
            self._unname(path)
        self.changes += 1
        return previous is None or previous[1] != reason

    def accept(self, path: Path) -> bool:
        """The note can be read again; True when it had been refused."""
        if self.refused.pop(path, None) is None:
            return False
        self.changes += 1
        return True

    def owner_of(self, task_id: str) -> Path | None:
        return self.owners.get(task_id)

    def named(self, name: str) -> list[str]:
        """The tasks whose notes (in the folders the service acts on) have this file name, in
        any case."""
        paths = self._names.get(name.casefold(), ())
        return [t for p in paths if (t := self.entries[p].task_id)]

    def _unname(self, path: Path) -> None:
        paths = self._names.get(path.name.casefold())
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self._names[path.name.casefold()]

    def keep_only(self, seen: Iterable[Path]) -> None:
        """After a full scan: forget every path that was not seen."""
        present = set(seen)
        for path in set(self.entries) - present:
            self.forget(path)
        for path in set(self.refused) - present:
            del self.refused[path]
            self.changes += 1

    def due_wakeups(self, now: datetime) -> list[Path]:
        return [p for p, when in self.wakeups.items() if when <= now]

    def next_wakeup(self) -> datetime | None:
        return min(self.wakeups.values()) if self.wakeups else None
