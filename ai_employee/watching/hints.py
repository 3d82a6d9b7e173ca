"""What a filesystem event tells the service: "look at this path", and why; and what the
watcher tells besides (a folder changed, events were dropped)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..notes.vault import MACHINERY_DIR, TRIGGER_FOLDERS, Folder, is_ignored_name


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


@dataclass(frozen=True)
class FolderChanged:
    """A watched folder (or a folder that may hold one) came, went or was replaced."""

    folder: Path
    went: bool


@dataclass(frozen=True)
class Overflowed:
    """The kernel dropped events: every active folder must be looked at again."""


WatchMessage = Hint | FolderChanged | Overflowed

PostWatch = Callable[[WatchMessage], None]
"""How the watcher's reader thread hands what it saw to the main loop (the queue's `put`)."""


_TRIGGER_NAMES = frozenset(f.value for f in (*TRIGGER_FOLDERS, Folder.RECURRING))


def name_is_relevant(root: Path, folder: Path, name: str) -> bool:
    """A file called `name` in `folder` is one the service acts on: a note in a trigger
    folder or Recurring/, or any file in Inbox/Drop (never hidden files, editor droppings,
    .ai-employee/)."""
    if is_ignored_name(name):  # hidden names included
        return False
    kind = _folder_kind(root, folder)
    return kind == "drop" or (kind == "trigger" and name.endswith(".md"))


@functools.lru_cache(maxsize=256)
def _folder_kind(root: Path, folder: Path) -> str | None:
    """ "trigger", "drop" or None for a folder (asked for on every event, so remembered)."""
    try:
        rel = folder.relative_to(root)
    except ValueError:
        return None
    parts = rel.parts
    if not parts or parts[0] == MACHINERY_DIR or any(p.startswith(".") for p in parts):
        return None
    where = "/".join(parts)
    if where == Folder.DROP.value:
        return "drop"
    return "trigger" if where in _TRIGGER_NAMES else None


def relevant(root: Path, path: Path) -> bool:
    """A path the service acts on: a note in a trigger folder, or any file in Inbox/Drop."""
    return name_is_relevant(root, path.parent, path.name)
