"""What a filesystem event tells the service: "look at this path", and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .vault import MACHINERY_DIR, TRIGGER_FOLDERS, Folder, is_ignored_name


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


_TRIGGER_NAMES = frozenset(f.value for f in TRIGGER_FOLDERS)


def name_is_relevant(root: Path, folder: Path, name: str) -> bool:
    """A file called `name` in `folder` is one the service acts on: a note in a trigger
    folder, or any file in Inbox/Drop (never hidden files, editor droppings, .ai-employee/)."""
    if is_ignored_name(name):  # hidden names included
        return False
    try:
        rel = folder.relative_to(root)
    except ValueError:
        return False
    parts = rel.parts
    if not parts or parts[0] == MACHINERY_DIR or any(p.startswith(".") for p in parts):
        return False
    where = "/".join(parts)
    if where == Folder.DROP.value:
        return True
    return where in _TRIGGER_NAMES and name.endswith(".md")


def relevant(root: Path, path: Path) -> bool:
    """A path the service acts on: a note in a trigger folder, or any file in Inbox/Drop."""
    return name_is_relevant(root, path.parent, path.name)
