"""Filesystem events -> "look at this path" hints, and settling of notes written in place.

Events are hints; the disk is the truth. Only the folders we act on are watched, one watch each,
so our own writes to Logs/, Plans/ and .ai-employee/ cost no events. Where the events come from
(watchdog's inotify reader on Linux, its observers elsewhere) is watchsources.py; we filter
paths ourselves (hints.py). See docs/research/watchdog-inotify.md for the event sequences each
editor produces.
"""

from __future__ import annotations

import heapq
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .hints import Hint, Kind, relevant
from .vault import TRIGGER_FOLDERS, Folder
from .watchsources import EventSource, make_source

__all__ = ["Hint", "Kind", "Settler", "VaultWatcher", "relevant"]

WATCHED_FOLDERS: tuple[Folder, ...] = (*TRIGGER_FOLDERS, Folder.DROP)
"""The folders whose files the service acts on: each gets its own watch, nothing below it."""

LAYOUT_PARENTS: tuple[str, ...] = ("", Folder.INBOX.value)
"""Where a watched folder can be (re)created: the vault root and Inbox/ (watched for folders)."""


def _layout_names(parent: str) -> frozenset[str]:
    """The names of sub-folders of `parent` whose coming or going changes what we watch."""
    names = set()
    for rel in [f.value for f in WATCHED_FOLDERS] + [Folder.INBOX.value]:
        head, _, tail = rel.rpartition("/")
        if head == parent:
            names.add(tail)
    return frozenset(names)


class VaultWatcher:
    """One watch per folder the service acts on (not the whole vault), kept in place.

    Logs/, Plans/, Done/, Failed/ and .ai-employee/ are where the service itself writes most;
    watching them would only cost events we drop. A watched folder that is deleted or replaced
    is watched again once it is back (`ensure`, called on a folder event at the root or in
    Inbox/, and by the service's safety sweep).
    """

    def __init__(
        self,
        root: Path,
        emit: Callable[[Hint], None],
        on_overflow: Callable[[], None],
        *,
        polling: bool = False,
        polling_interval: float = 1.0,
        on_layout: Callable[[], None] = lambda: None,
    ) -> None:
        self.root = root
        self.polling = polling
        self._source: EventSource = make_source(
            root,
            emit,
            self._folder_event,
            on_overflow,
            polling=polling,
            polling_interval=polling_interval,
        )
        self._on_layout = on_layout
        self._gone: set[Path] = set()
        """Watched folders seen deleted or moved away (a new folder may reuse the inode)."""
        self._gone_lock = threading.Lock()
        self._watches: dict[Path, tuple[object, int]] = {}
        """folder -> its watch and the folder's inode when watched (a new inode: watch again)."""
        for parent in LAYOUT_PARENTS:
            folder = root / parent
            if folder.is_dir():
                self._source.watch_layout(folder, _layout_names(parent))
        self.ensure()

    @property
    def source(self) -> str:
        """Which event source runs: "inotify", or watchdog's observer."""
        return type(self._source).__name__

    def ensure(self) -> list[Path]:
        """Watch every watched folder that exists and is not watched as it is now.

        Returns the folders that got a new watch (events there may have been missed: look at
        them again). Safe to call from the service's loop while events are read.
        """
        fresh = []
        with self._gone_lock:
            gone, self._gone = self._gone, set()
        for folder in (self.root / f.value for f in WATCHED_FOLDERS):
            try:
                st = os.stat(folder)
                inode = st.st_ino if stat.S_ISDIR(st.st_mode) else None
            except OSError:
                inode = None
            known = self._watches.get(folder)
            if known is not None and known[1] == inode and folder not in gone:
                continue
            if known is not None:
                self._source.unwatch(known[0])
                del self._watches[folder]
            if inode is None:
                continue
            handle = self._source.watch_files(folder)
            if handle is None:
                continue
            self._watches[folder] = (handle, inode)
            fresh.append(folder)
        return fresh

    def _folder_event(self, folder: Path, went: bool) -> None:
        """From the reader's thread: a folder we watch (or Inbox/) came, went or moved."""
        if went:
            with self._gone_lock:
                self._gone.add(folder)
                self._gone.update(p for p in self._watches if p.is_relative_to(folder))
        self._on_layout()

    @property
    def watched(self) -> list[Path]:
        return sorted(self._watches)

    def start(self) -> None:
        self._source.start()

    def stop(self) -> None:
        self._source.stop()


@dataclass
class Settler:
    """Paths written in place wait until quiet for `settle_seconds`; arrivals are due at once."""

    settle_seconds: float
    _due: dict[Path, float] = field(default_factory=dict)
    _heap: list[tuple[float, str, Path]] = field(default_factory=list)
    """(due time, path as text for a stable order, path)"""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def activity(self, path: Path, now: float) -> None:
        self._set(path, now + self.settle_seconds)

    def arrived(self, path: Path, now: float) -> None:
        self._set(path, now)

    def forget(self, path: Path) -> None:
        with self._lock:
            self._due.pop(path, None)

    def _set(self, path: Path, when: float) -> None:
        with self._lock:
            self._due[path] = when
            heapq.heappush(self._heap, (when, str(path), path))

    def pop_due(self, now: float, limit: int = 1_000_000) -> list[Path]:
        """Paths whose quiet time has passed, each once (at most `limit` of them)."""
        ready: list[Path] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now and len(ready) < limit:
                when, _, path = heapq.heappop(self._heap)
                if self._due.get(path) == when:
                    del self._due[path]
                    ready.append(path)
        return ready

    def next_deadline(self) -> float | None:
        with self._lock:
            while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, path: object) -> bool:
        return path in self._due
