"""A disk the service cannot write to: a full disk (or quota), a read-only one (a remount after
an I/O error, a USB disk gone read-only), told apart from every other OSError, and read off
the filesystem (statvfs) for those who only look: `doctor`, the page, Dashboard.md.

Pure functions and one statvfs per call; no state. What the service does about a failed write
(log it once, wait, go on) is the caller's.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""The errors that say "this disk takes no writes now" (not "this file is wrong"): they pass
when space or write access comes back, so the work waits for them instead of failing."""

FULL_BELOW_BYTES = 1024 * 1024
"""Below this much free space a disk is shown as full: a note, its plan and a record each
need a few KiB, git's objects more."""


def is_disk_error(err: BaseException) -> bool:
    """True for an OSError that says the disk takes no writes now (full, over quota, read-only)."""
    return isinstance(err, OSError) and err.errno in DISK_ERRNOS


@dataclass(frozen=True)
class Space:
    """What statvfs says of the filesystem a path is on."""

    free_bytes: int
    total_bytes: int
    free_inodes: int | None
    """None: the filesystem does not count inodes (btrfs, some network filesystems)."""
    read_only: bool

    @property
    def full(self) -> bool:
        return self.free_bytes < FULL_BELOW_BYTES or self.free_inodes == 0


def space_of(path: Path) -> Space | None:
    """The filesystem's space and flags (None: the path cannot be reached to ask)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    inodes = st.f_favail if st.f_files > 0 else None
    return Space(
        free_bytes=st.f_bavail * st.f_frsize,
        total_bytes=st.f_blocks * st.f_frsize,
        free_inodes=inodes,
        read_only=bool(st.f_flag & os.ST_RDONLY),
    )


@dataclass(frozen=True)
class Trouble:
    """A disk that takes no writes, in words for a person, and what to do about it."""

    words: str
    fix: str


def trouble(what: str, path: Path) -> Trouble | None:
    """The trouble of the disk under `path` (None: it takes writes, or cannot be asked: a
    missing folder is another check's to report)."""
    space = space_of(path)
    if space is None:
        return None
    if space.read_only:
        return Trouble(
            f"the {what} ({path}) is on a read-only filesystem",
            "check the disk (`dmesg`: a remount after I/O errors?), then remount it read-write",
        )
    if space.free_inodes == 0:
        return Trouble(
            f"the {what} ({path}) is on a disk with no free inodes left",
            "remove files on that disk (many small ones)",
        )
    if space.full:
        return Trouble(
            f"the {what} ({path}) is on a full disk: {human_bytes(space.free_bytes)} free "
            f"of {human_bytes(space.total_bytes)}",
            "free space on that disk",
        )
    return None


def troubles(places: dict[str, Path]) -> list[Trouble]:
    """`trouble` for each named place, once per filesystem (the vault and apps_dir are often
    on one disk: said for the first name; a read-only bind of one disk is another place)."""
    said: list[Trouble] = []
    seen: set[tuple[int, bool]] = set()
    for what, path in places.items():
        space = space_of(path)
        try:
            device = (os.stat(path).st_dev, space is not None and space.read_only)
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        found = trouble(what, path)
        if found is not None:
            said.append(found)
    return said


def human_bytes(n: int) -> str:
    """`0 B`, `512 KiB`, `3.2 MiB`, `41.0 GiB`."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "KiB" else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
