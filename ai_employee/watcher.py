"""Filesystem events -> "look at this path" hints, and settling of notes written in place.

Events are hints; the disk is the truth. We filter paths ourselves (watchdog 7 patterns match whole
absolute paths, and its default ignore policy drops a move whose source is ignored, such as our own
temp file renamed into Needs_Action). See docs/research/watchdog-inotify.md for the event sequences
each editor produces.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from watchdog.events import (
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
from watchdog.observers.api import BaseObserver
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


class VaultWatcher:
    """A recursive watch on the vault that turns events into hints (and notices overflows)."""

    def __init__(
        self,
        root: Path,
        emit: Callable[[Hint], None],
        on_overflow: Callable[[], None],
        *,
        polling: bool = False,
        polling_interval: float = 1.0,
    ) -> None:
        self.root = root
        self._observer: BaseObserver = (
            PollingObserver(timeout=polling_interval) if polling else Observer()
        )
        event_filter: list[type[FileSystemEvent]] = [
            FileCreatedEvent,
            FileMovedEvent,
            DirMovedEvent,
            FileDeletedEvent,
            FileClosedEvent,
        ]
        if polling:  # the polling observer knows no "closed": a change is a modification
            event_filter.append(FileModifiedEvent)
        self._observer.schedule(
            _Handler(root, emit), str(root), recursive=True, event_filter=event_filter
        )
        self._overflow = _OverflowHandler(on_overflow)

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
