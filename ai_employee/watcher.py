"""Filesystem events -> "look at this path" hints, and settling of notes written in place.

Events are hints; the disk is the truth. Only the folders we act on are watched, one watch each,
so our own writes to Logs/, Plans/ and .ai-employee/ cost no events. We filter paths ourselves
(watchdog 7 patterns match whole absolute paths, and its default ignore policy drops a move whose
source is ignored). See docs/research/watchdog-inotify.md for the event sequences each editor
produces.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from .vault import MACHINERY_DIR, TRIGGER_FOLDERS, Folder, is_ignored_name

OVERFLOW_TEXT = "queue overflowed"
"""watchdog logs "Inotify queue overflowed; ..." and delivers nothing for the lost events."""

WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class Kind(StrEnum):
    """What an event says about a path."""

    ARRIVED = "arrived"
    """Renamed into place: complete at once."""
    CREATED = "created"
    """Created: renamed in from outside the vault (complete) or opened by a writer (settle)."""
    WRITTEN = "written"
    """Written or closed in place: read once quiet for settle_seconds."""
    GONE = "gone"
    """Moved away or deleted."""


@dataclass(frozen=True)
class Hint:
    path: Path
    kind: Kind


def relevant(root: Path, path: Path) -> bool:
    """A path the service acts on: a note in a trigger folder, or any file in Inbox/Drop."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    parts = rel.parts
    if len(parts) < 2 or parts[0] == MACHINERY_DIR or is_ignored_name(parts[-1]):
        return False
    if any(part.startswith(".") for part in parts):
        return False
    folder = "/".join(parts[:-1])
    if folder == Folder.DROP.value:
        return True
    return folder in {f.value for f in TRIGGER_FOLDERS} and parts[-1].endswith(".md")


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, emit: Callable[[Hint], None]) -> None:
        self.root = root
        self.emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and not isinstance(event, DirMovedEvent):
            return
        src = Path(_text(event.src_path))
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            dest = Path(_text(event.dest_path))
            if relevant(self.root, src):
                self.emit(Hint(src, Kind.GONE))
            if not event.is_directory and relevant(self.root, dest):
                self.emit(Hint(dest, Kind.ARRIVED))
            return
        if not relevant(self.root, src):
            return
        if isinstance(event, FileDeletedEvent):
            self.emit(Hint(src, Kind.GONE))
        elif isinstance(event, FileCreatedEvent):
            self.emit(Hint(src, Kind.CREATED))
        elif isinstance(event, FileClosedEvent | FileModifiedEvent):
            self.emit(Hint(src, Kind.WRITTEN))


def _text(path: str | bytes) -> str:
    return path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path


class _OverflowHandler(logging.Handler):
    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if OVERFLOW_TEXT in record.getMessage():
            self.on_overflow()


WATCHED_FOLDERS: tuple[Folder, ...] = (*TRIGGER_FOLDERS, Folder.DROP)
"""The folders whose files the service acts on: each gets its own watch, nothing below it."""

LAYOUT_PARENTS: tuple[str, ...] = ("", Folder.INBOX.value)
"""Where a watched folder can be (re)created: the vault root and Inbox/ (watched for folders)."""


def _no_move_pairing_delay() -> None:
    """Deliver a lone IN_MOVED_FROM at once instead of holding the whole queue for 0.5 s.

    watchdog holds each IN_MOVED_FROM for `InotifyMoveEventGrouper.delay` to pair it with its
    IN_MOVED_TO, and its queue is first-in first-out: every later event waits too (and a pair
    split across two reads stalls it even when it does pair; watchdog issue #649). Our folders
    are watched one by one and we never need pairs: a move is "gone here, arrived there" (GONE
    and CREATED hints), so nothing is lost by not waiting. The delay is a class attribute read
    when a watch group is made; this process has no other watchdog user.
    """
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    InotifyMoveEventGrouper.delay = 0.0


class VaultWatcher:
    """One watch per folder the service acts on (not the whole vault), kept in place.

    Logs/, Plans/, Done/, Failed/ and .ai-employee/ are where the service itself writes most;
    watching them would only feed watchdog's threads events we drop. A watched folder that is
    deleted or replaced is watched again once it is back (`ensure`, called on a folder event
    at the root or in Inbox/, and by the service's safety sweep).
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
        if not polling:
            _no_move_pairing_delay()
        self._observer: BaseObserver = (
            PollingObserver(timeout=polling_interval) if polling else Observer()
        )
        self._handler = _Handler(root, emit)
        self._layout_handler = _LayoutHandler(root, self._folder_event)
        self._on_layout = on_layout
        self._gone: set[Path] = set()
        """Watched folders seen deleted or moved away (a new folder may reuse the inode)."""
        self._gone_lock = threading.Lock()
        self._file_events: list[type[FileSystemEvent]] = [
            FileCreatedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            FileClosedEvent,
        ]
        if polling:  # the polling observer knows no "closed": a change is a modification
            self._file_events.append(FileModifiedEvent)
        self._watches: dict[Path, tuple[ObservedWatch, int]] = {}
        """folder -> its watch and the folder's inode when watched (a new inode: watch again)."""
        self._overflow = _OverflowHandler(on_overflow)
        for parent in LAYOUT_PARENTS:
            folder = root / parent
            if folder.is_dir():
                self._observer.schedule(
                    self._layout_handler,
                    str(folder),
                    recursive=False,
                    event_filter=[DirCreatedEvent, DirMovedEvent, DirDeletedEvent],
                )
        self.ensure()

    def ensure(self) -> list[Path]:
        """Watch every watched folder that exists and is not watched as it is now.

        Returns the folders that got a new watch (events there may have been missed: look at
        them again). Safe to call from the service's loop while the observer runs.
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
                with contextlib.suppress(KeyError):
                    self._observer.unschedule(known[0])
                del self._watches[folder]
            if inode is None:
                continue
            watch = self._observer.schedule(
                self._handler, str(folder), recursive=False, event_filter=self._file_events
            )
            self._watches[folder] = (watch, inode)
            fresh.append(folder)
        return fresh

    def _folder_event(self, folder: Path, went: bool) -> None:
        """From watchdog's thread: a folder we watch (or Inbox/) came, went or moved."""
        if went:
            with self._gone_lock:
                self._gone.add(folder)
                self._gone.update(p for p in self._watches if p.is_relative_to(folder))
        self._on_layout()

    @property
    def watched(self) -> list[Path]:
        return sorted(self._watches)

    def start(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self._overflow)
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)
        self._observer.start()

    def stop(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._overflow)
        self._observer.stop()
        self._observer.join(timeout=10)


class _LayoutHandler(FileSystemEventHandler):
    """A folder appeared, moved or went at the root or in Inbox/: the watches may need work."""

    def __init__(self, root: Path, on_folder: Callable[[Path, bool], None]) -> None:
        self.root = root
        self.on_folder = on_folder
        self.names = {f.value for f in WATCHED_FOLDERS} | {Folder.INBOX.value}

    def on_any_event(self, event: FileSystemEvent) -> None:
        went = isinstance(event, DirDeletedEvent | DirMovedEvent)
        self._check(event.src_path, went)
        if isinstance(event, DirMovedEvent):
            self._check(event.dest_path, False)

    def _check(self, raw: str | bytes, went: bool) -> None:
        if not raw:
            return
        path = Path(_text(raw))
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return
        if rel in self.names:
            self.on_folder(path, went)


@dataclass
class Settler:
    """Paths written in place wait until quiet for `settle_seconds`; arrivals are due at once."""

    settle_seconds: float
    _due: dict[Path, float] = field(default_factory=dict)
    _heap: list[tuple[float, str]] = field(default_factory=list)
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
            heapq.heappush(self._heap, (when, str(path)))

    def pop_due(self, now: float, limit: int = 1_000_000) -> list[Path]:
        """Paths whose quiet time has passed, each once (at most `limit` of them)."""
        ready: list[Path] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now and len(ready) < limit:
                when, raw = heapq.heappop(self._heap)
                path = Path(raw)
                if self._due.get(path) == when:
                    del self._due[path]
                    ready.append(path)
        return ready

    def next_deadline(self) -> float | None:
        with self._lock:
            while self._heap and self._due.get(Path(self._heap[0][1])) != self._heap[0][0]:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, path: object) -> bool:
        return path in self._due
