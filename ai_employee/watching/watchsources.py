"""Where filesystem events come from: watchdog's inotify reader (Linux) or its observers.

Both sources turn events into the same three calls: `emit(Hint)` for a file in a watched
folder, `on_folder(path, went)` when a watched folder (or a folder that may hold one) comes or
goes, and `on_overflow()` when the kernel dropped events.

On Linux the service reads watchdog's `InotifyFD` itself: the reader thread calls us for each
event, and we put a hint on the service's queue. watchdog's `Observer` would pass each event
through two more threads (an emitter per watch and a dispatcher) and build an event object for
each; in a burst of a thousand notes that hand-off between threads is a large share of the
service's CPU (docs/ARCHITECTURE.md, "Measured"). Elsewhere (macOS, polling for network
folders) watchdog's observers do the work.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import structlog
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
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .hints import Hint, Kind, name_is_relevant

log = structlog.get_logger(__name__)

Emit = Callable[[Hint], None]
OnFolder = Callable[[Path, bool], None]


class EventSource(Protocol):
    def watch_files(self, folder: Path) -> object | None:
        """Watch the files directly in `folder`; a handle for `unwatch`, None if not possible."""

    def unwatch(self, handle: object) -> None: ...

    def watch_layout(self, folder: Path, names: frozenset[str]) -> None:
        """Report sub-folders of `folder` called one of `names` that come or go."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def make_source(
    root: Path,
    emit: Emit,
    on_folder: OnFolder,
    on_overflow: Callable[[], None],
    *,
    polling: bool,
    polling_interval: float,
) -> EventSource:
    if not polling and sys.platform.startswith("linux"):
        try:
            return InotifySource(root, emit, on_folder, on_overflow)
        except (ImportError, OSError) as err:  # no inotify instance left (fs.inotify limits)
            log.warning(
                "inotify reader not available; using watchdog's observer",
                action_type="watch",
                error=str(err),
            )
    return ObserverSource(root, emit, on_folder, on_overflow, polling, polling_interval)


# --- Linux: watchdog's inotify reader, called directly ----------------------------------------


@dataclass(frozen=True)
class _Watch:
    folder: Path
    role: str
    """"files" (a folder we act on) or "layout" (the root, Inbox/: sub-folders coming and going)"""
    names: frozenset[str]
    """For a layout watch: the sub-folder names that matter."""
    cid: int
    """The callback id we registered with watchdog for this folder."""


class InotifySource:
    """One inotify instance and watchdog's reader thread; events become hints in that thread."""

    def __init__(
        self, root: Path, emit: Emit, on_folder: OnFolder, on_overflow: Callable[[], None]
    ) -> None:
        from watchdog.observers.inotify_c import InotifyConstants as C
        from watchdog.observers.inotify_c import InotifyFD

        self._c = C
        self.root = root
        self.emit = emit
        self.on_folder = on_folder
        self.on_overflow = on_overflow
        self._fd = InotifyFD()  # its own instance (not watchdog's shared one), not yet reading
        self._by_wd: dict[int, _Watch] = {}
        """wd -> the folder it stands for now. A wd is an inode: a folder renamed onto the name
        of another (Rejected/ -> Approved/) brings its wd along, and the newest add owns it."""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = False
        self._file_mask = (
            C.IN_CREATE
            | C.IN_DELETE
            | C.IN_MOVED_FROM
            | C.IN_MOVED_TO
            | C.IN_CLOSE_WRITE
            | C.IN_DELETE_SELF
            | C.IN_MOVE_SELF
            | C.IN_ONLYDIR
        )
        self._layout_mask = (
            C.IN_CREATE | C.IN_DELETE | C.IN_MOVED_FROM | C.IN_MOVED_TO | C.IN_ONLYDIR
        )

    def watch_files(self, folder: Path) -> object | None:
        return self._add(folder, "files", frozenset(), self._file_mask)

    def watch_layout(self, folder: Path, names: frozenset[str]) -> None:
        self._add(folder, "layout", names, self._layout_mask)

    def _add(
        self, folder: Path, role: str, names: frozenset[str], mask: int
    ) -> tuple[int, int] | None:
        cid = next(self._ids)
        try:
            wd = int(
                self._fd.add_callback(os.fsencode(folder), cast(Any, mask), self, cast(Any, cid))
            )
        except OSError as err:
            log.warning(
                "cannot watch a folder", action_type="watch", target=str(folder), error=str(err)
            )
            return None
        if wd < 0:  # watchdog ignores EACCES and hands back -1
            log.warning(
                "cannot watch a folder",
                action_type="watch",
                target=str(folder),
                error="permission denied",
            )
            return None
        with self._lock:
            before = self._by_wd.get(wd)
            self._by_wd[wd] = _Watch(folder, role, names, cid)
        if before is not None:  # the same folder under a new name: one callback is enough
            self._fd.remove_callbacks([(cast(Any, wd), cast(Any, before.cid))])
        return wd, cid

    def unwatch(self, handle: object) -> None:
        if not isinstance(handle, tuple):
            return
        wd, cid = handle
        with self._lock:
            known = self._by_wd.get(wd)
            if known is None or known.cid != cid:
                return  # gone already, or now watched for another folder: not ours to remove
            del self._by_wd[wd]
        self._fd.remove_callbacks([(cast(Any, wd), cast(Any, cid))])

    def start(self) -> None:
        self._fd.start()

    def stop(self) -> None:
        self._stopping = True  # closing removes every watch: none of that is news
        self._fd.stop()
        self._fd.join(timeout=10)

    # --- called by watchdog's reader thread (the WatchCallback protocol) ----------------------

    def on_event(self, event: Any) -> None:
        try:
            self._on_event(event)
        except Exception as err:  # a bug here must not end the reader thread unseen
            log.exception("cannot handle a file event", action_type="error", error=str(err))

    def _on_event(self, event: Any) -> None:
        known = self._by_wd.get(event.wd)
        if known is None or self._stopping:
            return  # a watch given up a moment ago
        folder, role, names = known.folder, known.role, known.names
        mask: int = event.mask
        c = self._c
        if mask & (c.IN_DELETE_SELF | c.IN_MOVE_SELF):
            self.on_folder(folder, True)
            return
        if not event.name:
            return
        name = os.fsdecode(event.name)
        is_dir = bool(mask & c.IN_ISDIR)
        if role == "layout":
            if is_dir and name in names:
                self.on_folder(folder / name, bool(mask & (c.IN_DELETE | c.IN_MOVED_FROM)))
            return
        if not name_is_relevant(self.root, folder, name):
            return
        path = folder / name
        if mask & (c.IN_MOVED_FROM | c.IN_DELETE):
            if not is_dir or mask & c.IN_MOVED_FROM:
                self.emit(Hint(path, Kind.GONE))
        elif is_dir:
            return
        elif mask & c.IN_MOVED_TO:
            self.emit(Hint(path, Kind.ARRIVED))
        elif mask & c.IN_CREATE:
            self.emit(Hint(path, Kind.CREATED))
        elif mask & c.IN_CLOSE_WRITE:
            self.emit(Hint(path, Kind.WRITTEN))

    def on_watch_deleted(self, wd: int) -> None:
        with self._lock:
            known = self._by_wd.pop(wd, None)
        if known is not None and known.role == "files" and not self._stopping:
            self.on_folder(known.folder, True)

    def on_queue_overflow(self) -> None:
        self.on_overflow()


# --- elsewhere: watchdog's observers -----------------------------------------------------------


OVERFLOW_TEXT = "queue overflowed"
"""watchdog's inotify observer logs "Inotify queue overflowed; ..." and delivers nothing else."""

WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class ObserverSource:
    """watchdog's Observer (FSEvents, kqueue, or inotify if the direct reader cannot start) or
    its PollingObserver (network folders, where no change events arrive)."""

    def __init__(
        self,
        root: Path,
        emit: Emit,
        on_folder: OnFolder,
        on_overflow: Callable[[], None],
        polling: bool,
        polling_interval: float,
    ) -> None:
        self.root = root
        if not polling:
            _no_move_pairing_delay()
        self._observer: BaseObserver = (
            PollingObserver(timeout=polling_interval) if polling else Observer()
        )
        self._handler = _FileHandler(root, emit)
        self._on_folder = on_folder
        self._file_events: list[type[FileSystemEvent]] = [
            FileCreatedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            FileClosedEvent,
        ]
        if polling:  # the polling observer knows no "closed": a change is a modification
            self._file_events.append(FileModifiedEvent)
        self._overflow = _OverflowLogHandler(on_overflow)

    def watch_files(self, folder: Path) -> object | None:
        return self._observer.schedule(
            self._handler, str(folder), recursive=False, event_filter=self._file_events
        )

    def unwatch(self, handle: object) -> None:
        with contextlib.suppress(KeyError):
            self._observer.unschedule(handle)  # type: ignore[arg-type]

    def watch_layout(self, folder: Path, names: frozenset[str]) -> None:
        self._observer.schedule(
            _LayoutHandler(folder, names, self._on_folder),
            str(folder),
            recursive=False,
            event_filter=[DirCreatedEvent, DirMovedEvent, DirDeletedEvent],
        )

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


def _no_move_pairing_delay() -> None:
    """Deliver a lone IN_MOVED_FROM at once instead of holding the whole queue for 0.5 s.

    watchdog's inotify observer holds each IN_MOVED_FROM for `InotifyMoveEventGrouper.delay` to
    pair it with its IN_MOVED_TO, and its queue is first-in first-out: every later event waits
    too (watchdog issue #649). We never need pairs: a move is "gone here, arrived there". The
    delay is a class attribute read when a watch group is made; this process has no other
    watchdog user. (Only reached where the direct inotify reader could not start.)
    """
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not Linux
        return
    InotifyMoveEventGrouper.delay = 0.0


def _text(path: str | bytes) -> str:
    return path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path


class _FileHandler(FileSystemEventHandler):
    def __init__(self, root: Path, emit: Emit) -> None:
        self.root = root
        self.emit = emit

    def _relevant(self, path: Path) -> bool:
        return name_is_relevant(self.root, path.parent, path.name)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and not isinstance(event, DirMovedEvent):
            return
        src = Path(_text(event.src_path))
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            dest = Path(_text(event.dest_path))
            if self._relevant(src):
                self.emit(Hint(src, Kind.GONE))
            if not event.is_directory and self._relevant(dest):
                self.emit(Hint(dest, Kind.ARRIVED))
            return
        if not self._relevant(src):
            return
        if isinstance(event, FileDeletedEvent):
            self.emit(Hint(src, Kind.GONE))
        elif isinstance(event, FileCreatedEvent):
            self.emit(Hint(src, Kind.CREATED))
        elif isinstance(event, FileClosedEvent | FileModifiedEvent):
            self.emit(Hint(src, Kind.WRITTEN))


class _LayoutHandler(FileSystemEventHandler):
    """A folder appeared, moved or went in `folder`: report it if its name is one we watch."""

    def __init__(self, folder: Path, names: frozenset[str], on_folder: OnFolder) -> None:
        self.folder = folder
        self.names = names
        self.on_folder = on_folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        went = isinstance(event, DirDeletedEvent | DirMovedEvent)
        self._check(event.src_path, went)
        if isinstance(event, DirMovedEvent):
            self._check(event.dest_path, False)

    def _check(self, raw: str | bytes, went: bool) -> None:
        if not raw:
            return
        path = Path(_text(raw))
        if path.parent == self.folder and path.name in self.names:
            self.on_folder(path, went)


class _OverflowLogHandler(logging.Handler):
    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if OVERFLOW_TEXT in record.getMessage():
            self.on_overflow()
