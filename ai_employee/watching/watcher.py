"""Filesystem events -> "look at this path" hints, and settling of notes written in place.

Events are hints; the disk is the truth. Only the folders we act on are watched, one watch each,
so our own writes to Logs/, Plans/ and .ai-employee/ cost no events. Where the events come from
(watchdog's inotify reader on Linux, its observers elsewhere) is watchsources.py; we filter
paths ourselves (hints.py). See docs/research/watchdog-inotify.md for the event sequences each
editor produces.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..notes.vault import TRIGGER_FOLDERS, Folder
from .hints import FolderChanged, Hint, Kind, Overflowed, PostWatch, relevant
from .watchsources import EventSource, make_source

__all__ = ["Hint", "Kind", "VaultWatcher", "relevant"]

WATCHED_FOLDERS: tuple[Folder, ...] = (*TRIGGER_FOLDERS, Folder.RECURRING, Folder.DROP)
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
    watching them would only cost events we drop. The event source's thread posts a `Hint` for
    each file event, a `FolderChanged` when a watched folder (or one that may hold one) comes or
    goes, and `Overflowed` when the kernel dropped events. Everything else here is the main
    loop's: a folder that went is told with `folder_changed`, and `ensure` watches it again once
    it is back (called after a folder change and by the service's safety sweep).
    """

    def __init__(
        self,
        root: Path,
        post: PostWatch,
        *,
        polling: bool = False,
        polling_interval: float = 1.0,
    ) -> None:
        self.root = root
        self.polling = polling
        self._source: EventSource = make_source(
            root,
            post,
            lambda folder, went: post(FolderChanged(folder, went)),
            lambda: post(Overflowed()),
            polling=polling,
            polling_interval=polling_interval,
        )
        self._gone: set[Path] = set()
        """Watched folders seen deleted or moved away (a new folder may reuse the inode)."""
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

    def folder_changed(self, folder: Path, went: bool) -> None:
        """A `FolderChanged` taken off the queue: a folder that went is watched anew."""
        if went:
            self._gone.add(folder)
            self._gone.update(p for p in self._watches if p.is_relative_to(folder))

    def ensure(self) -> list[Path]:
        """Watch every watched folder that exists and is not watched as it is now.

        Returns the folders that got a new watch (events there may have been missed: look at
        them again).
        """
        fresh = []
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

    @property
    def watched(self) -> list[Path]:
        return sorted(self._watches)

    def start(self) -> None:
        self._source.start()

    def stop(self) -> None:
        self._source.stop()
