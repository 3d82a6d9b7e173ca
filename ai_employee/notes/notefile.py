"""Notes on disk: safe reads, edits that never lose a person's concurrent write, moves.

The edit loop: read the note (after any in-place writer closed it), splice our keys in, write a temp
file, then *exchange* it with the note (renameat2 RENAME_EXCHANGE). The displaced file is checked:
if it is not exactly what we read, a person saved in between, and our keys are re-applied on their
version. Nothing is replaced blindly, and a note deleted or moved meanwhile is never recreated.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..base import fsops
from ..base.errors import NoteRefused, WriteConflict
from .taskfile import TaskNote, decode_note, edit_note_text, parse_note
from .vault import check_name, inside

LOCK_STRIPES = 16
"""Our writers of notes are serialised per stripe of file names."""

MAX_ROUNDS = 50
"""Edits retried on a note that keeps changing under us before giving up (nothing is lost)."""

SWAP_BACK_SECONDS = 5.0
"""How long we keep putting a person's newest save back while they keep saving (each save made
during a swap costs one more swap) before keeping it beside the note instead."""


class NoteGone(Exception):
    """The note was moved or deleted before we could write; it is not recreated."""


@dataclass(frozen=True)
class Snapshot:
    """What we read: the bytes and the file's identity, to recognise a later change."""

    data: bytes
    inode: int
    device: int
    mode: int
    mtime_ns: int

    @property
    def identity(self) -> tuple[int, int]:
        return (self.device, self.inode)


def check_path(path: Path, vault_root: Path) -> os.stat_result:
    """lstat a note path and refuse what is not a regular file inside the vault."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise
    if stat.S_ISLNK(st.st_mode):
        target = path.resolve()
        if not inside(target, vault_root):
            raise NoteRefused(f"symlink to {str(target)!r}, outside the vault; not followed")
        raise NoteRefused(
            f"symlink to {str(target)!r}; notes must be regular files (move the note itself here)"
        )
    if not stat.S_ISREG(st.st_mode):
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "FIFO, socket or device"
        raise NoteRefused(f"not a regular file (a {kind}); not opened")
    if not _folder_inside(path.parent, vault_root):
        raise NoteRefused("path resolves outside the vault")
    return st


@functools.lru_cache(maxsize=256)
def _folder_inside(folder: Path, vault_root: Path) -> bool:
    """Whether a folder resolves inside the vault (cached: folders are few and rarely relinked)."""
    return inside(folder, vault_root)


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped for something else since lstat
        os.close(fd)
        raise NoteRefused("not a regular file; not opened")
    return fd, st


def _snapshot(fd: int, st: os.stat_result, max_bytes: int, *, wait: bool = True) -> Snapshot:
    """Read the open note. `st` is its fstat at open; with `wait`, in-place writers are waited
    for and held off while we read (a read lease), and the file is looked at again. Without,
    the caller holds a read lease (what we read is then what stays; the size from `st` is only
    a hint, decode_note checks the bytes)."""
    if wait and st.st_size <= max_bytes:
        with fsops.read_lease(fd) as leased:
            # A writer blocked on the lease gets in the moment it is released: read before.
            return _snapshot(fd, os.fstat(fd) if leased else st, max_bytes, wait=False)
    if st.st_size > max_bytes:
        raise NoteRefused(
            f"note is {st.st_size:,} bytes, over max_note_bytes ({max_bytes:,}); split it or raise "
            "the limit"
        )
    data = fsops.read_fd(fd, st.st_size)
    return Snapshot(data, st.st_ino, st.st_dev, st.st_mode, st.st_mtime_ns)


def read_snapshot(path: Path, vault_root: Path, max_bytes: int) -> Snapshot:
    """The note's bytes, read once its in-place writers closed it. Raises NoteRefused."""
    check_path(path, vault_root)
    fd, st = _open_regular(path)
    try:
        return _snapshot(fd, st, max_bytes)
    finally:
        os.close(fd)


def read_note(path: Path, vault_root: Path, max_bytes: int) -> tuple[TaskNote, Snapshot]:
    """Read and parse a note. Raises NoteRefused (with the path) or FileNotFoundError."""
    try:
        snap = read_snapshot(path, vault_root, max_bytes)
    except NoteRefused as err:
        raise NoteRefused(err.reason, str(path)) from err
    return note_from_bytes(path, snap.data, max_bytes), snap


def peek_note(path: Path, vault_root: Path, max_bytes: int) -> tuple[TaskNote, Snapshot]:
    """Read and parse a note without waiting for its writers and without a lease, for readers
    that only show it (the web page): a writer is never held up, and a note caught half
    written is read again at the event its writer's close brings. Raises as `read_note`."""
    try:
        check_path(path, vault_root)
        fd, st = _open_regular(path)
        try:
            snap = _snapshot(fd, st, max_bytes, wait=False)
        finally:
            os.close(fd)
    except NoteRefused as err:
        raise NoteRefused(err.reason, str(path)) from err
    return note_from_bytes(path, snap.data, max_bytes), snap


def note_from_bytes(path: Path, data: bytes, max_bytes: int) -> TaskNote:
    """Parse a note's bytes (as read, or as we just placed them). Raises NoteRefused."""
    try:
        note = parse_note(decode_note(data, max_bytes), path.name)
        for key in ("app", "language"):  # they name the work dir: no path tricks
            if note.meta.get(key) not in (None, ""):
                check_name(key, note.meta[key])
        return note
    except NoteRefused as err:
        raise NoteRefused(err.reason, str(path)) from err


Transform = Callable[[str], str]


Signature = tuple[int, int, int]
"""What tells one version of a file from another: inode, size, mtime (a move keeps all three)."""


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Placed:
    """The file an edit put at the note's path, as `lstat` will show it until someone changes it.

    Taken from our temp file before the swap, never from the path after it: a person's save
    right after our swap must not be mistaken for our own write.
    """

    inode: int
    size: int
    mtime_ns: int
    data: bytes = field(repr=False, compare=False, default=b"")
    """The bytes placed (what the path holds while its signature is unchanged)."""

    @property
    def signature(self) -> Signature:
        return (self.inode, self.size, self.mtime_ns)


SyncDir = Callable[[Path], None]
"""Makes a rename inside a folder durable: at once (fsops.fsync_dir), or later, with the move
that follows (rewrite_and_move)."""


def update_note(
    path: Path,
    changes: Mapping[str, object | None],
    *,
    tmp_dir: Path,
    vault_root: Path,
    max_bytes: int,
    result: str | None = None,
) -> Placed | None:
    """Set our keys (None removes one) and maybe our Result section. None: nothing to change."""
    return rewrite_note(
        path,
        lambda text: edit_note_text(text, changes, result),
        tmp_dir=tmp_dir,
        vault_root=vault_root,
        max_bytes=max_bytes,
    )


def rewrite_note(
    path: Path,
    transform: Transform,
    *,
    tmp_dir: Path,
    vault_root: Path,
    max_bytes: int,
) -> Placed | None:
    """Apply `transform` to the note's text without ever losing a concurrent write.

    Returns what was put in place (durable: the folder is synced before this returns), or None
    when the transform changed nothing.
    """
    check_path(path, vault_root)
    with _writer_lock(tmp_dir.parent, path.name):
        return _rewrite_locked(path, transform, tmp_dir, max_bytes, fsops.fsync_dir)


def rewrite_and_move(
    path: Path,
    transform: Transform,
    destination: Callable[[], Path | None],
    *,
    tmp_dir: Path,
    vault_root: Path,
    max_bytes: int,
) -> tuple[Placed | None, Path | None]:
    """`rewrite_note`, then move the note into the folder `destination()` names (None: stay).

    One durable step: the edit and the move are made, then both folders are synced once, so
    a crash leaves the note as it was, edited where it was, or edited in its new folder.
    Returns what was placed and where the note is now (None: it vanished after the edit).

    A person's save between our edit and our move (an editor writing a stale buffer back as
    the run ends) is moved with the note: it is then edited again where it landed, decided
    on their version, since nobody watches the folders a finished note goes to.
    """
    check_path(path, vault_root)
    with _writer_lock(tmp_dir.parent, path.name):
        for _ in range(MAX_ROUNDS):
            placed = _rewrite_locked(path, transform, tmp_dir, max_bytes, _later)
            folder = destination()
            if folder is None or folder == path.parent:
                fsops.fsync_dir(path.parent)
                return placed, path
            try:
                moved = fsops.move_noreplace(path, folder)  # syncs both folders
            except FileNotFoundError:  # moved or deleted by a person since the edit
                fsops.fsync_dir(path.parent)
                return placed, None
            except BaseException:  # the edit stays where it is, durable; the move is retried
                with contextlib.suppress(OSError):
                    fsops.fsync_dir(path.parent)
                raise
            if placed is None or _still_placed(moved, placed):
                return placed, moved
            path = moved  # a person's save was moved: our end goes onto it, where it is now
    raise WriteConflict(f"{path}: the note kept changing; our edit was not applied")


def _still_placed(path: Path, placed: Placed) -> bool:
    """The file at `path` is the one we placed, untouched (a move keeps inode and mtime)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True  # gone since the move: nothing of ours to write again
    return signature_of(st) == placed.signature


def _later(folder: Path) -> None:
    """The edit's folder sync, left to the move that follows it (see rewrite_and_move)."""


def _rewrite_locked(
    path: Path, transform: Transform, tmp_dir: Path, max_bytes: int, sync_dir: SyncDir
) -> Placed | None:
    for _ in range(MAX_ROUNDS):
        outcome = _rewrite_once(path, transform, tmp_dir, max_bytes, sync_dir)
        if not isinstance(outcome, _Again):
            return outcome
    raise WriteConflict(f"{path}: the note kept changing; our edit was not applied")


_stripes: dict[Path, tuple[threading.Lock, int]] = {}
_stripes_guard = threading.Lock()


@contextlib.contextmanager
def _writer_lock(machinery: Path, name: str) -> Iterator[None]:
    """Serialise our own writers of a note (threads, the service and CLI commands).

    Only then does "the displaced file is not what we read" mean a *person* saved meanwhile.
    Locks are striped by file name, which a move between folders keeps: a thread lock within
    this process, a `flock` on `.ai-employee/locks/NN.lock` (kept open) between processes.
    """
    stripe = machinery / "locks" / f"{zlib.crc32(name.encode()) % LOCK_STRIPES:02d}.lock"
    with _stripes_guard:
        entry = _stripes.get(stripe)
        if entry is None:
            stripe.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(stripe, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            entry = _stripes[stripe] = (threading.Lock(), fd)
    thread_lock, fd = entry
    with thread_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def release_locks(machinery: Path) -> None:
    """Close the lock files `_writer_lock` keeps open for one vault (`.ai-employee/`): for a
    process that is done with a vault and goes on (the tests open thousands)."""
    with _stripes_guard:
        for stripe in [s for s in _stripes if s.parent.parent == machinery]:
            _, fd = _stripes.pop(stripe)
            os.close(fd)


class _Again:
    """A person saved between our read and our swap: start over on their version."""


_AGAIN = _Again()


def _rewrite_once(
    path: Path, transform: Transform, tmp_dir: Path, max_bytes: int, sync_dir: SyncDir
) -> Placed | _Again | None:
    """One attempt: what we placed, None (nothing to change), or _AGAIN. `sync_dir` makes the
    swap durable (the caller may do it later, once, with a move)."""
    fd, st = _open_regular(path)
    same_file_out = False
    try:
        # The lease holds off in-place writers while we read, transform and swap.
        with fsops.read_lease(fd) as leased:
            if leased:  # it may have waited for a writer: size and mode as they are now
                st = os.fstat(fd)
            base = _snapshot(fd, st, max_bytes, wait=False)
            new = _transformed(path, transform, base.data, max_bytes)
            if new == base.data:
                return None
            tmp = fsops.write_temp(tmp_dir, new, base.mode)
            st = os.lstat(tmp)  # ours alone until the swap: what we are about to place
            placed = Placed(st.st_ino, st.st_size, st.st_mtime_ns, new)
            try:
                swapped = fsops.exchange(tmp, path)
            except FileNotFoundError as err:
                tmp.unlink(missing_ok=True)
                raise NoteGone(str(path)) from err
            if not swapped:
                return placed if _replace_if_unchanged(tmp, path, base) else _AGAIN
            if leased:
                out = os.lstat(tmp)
                if fsops.lease_break_pending(fd):
                    # A writer opened the note while we held it and will write to the file we
                    # just swapped out: put it back before letting go, then start over on
                    # their save.
                    _swap_back(tmp, path, new, base.data, max_bytes)
                    return _AGAIN
                # The file we read has been under our lease since before we read it, and nobody
                # asked to write to it: if that very file is what came out, it holds what we
                # read. (Its inode cannot be reused meanwhile: we hold it open.) Only where
                # leases see every writer: on a local filesystem, not FUSE or a network mount.
                same_file_out = (out.st_dev, out.st_ino) == base.identity
                same_file_out = same_file_out and fsops.leases_trusted(fd, base.device)
        # A writer that reached our lease after the check above is let in by its release: if
        # the file is open for writing now, read it back the slow way (which waits for it).
        if same_file_out and not fsops.no_writers_now(fd):
            same_file_out = False
    finally:
        os.close(fd)
    return _keep_ours(tmp, path, base, placed, same_file_out, max_bytes, sync_dir)


def _transformed(path: Path, transform: Transform, data: bytes, max_bytes: int) -> bytes:
    try:
        return transform(decode_note(data, max_bytes)).encode("utf-8")
    except NoteRefused as err:
        raise NoteRefused(err.reason, str(path)) from err


def _keep_ours(
    tmp: Path,
    path: Path,
    base: Snapshot,
    placed: Placed,
    same_file_out: bool,
    max_bytes: int,
    sync_dir: SyncDir,
) -> Placed | _Again:
    """After the swap, `tmp` names what was at `path`: it is deleted when it is the very file
    we read (`same_file_out`, proven under the lease) or holds exactly what we read; anything
    else is a file saved by rename since our read, or one we could not lease, and goes back."""
    if not same_file_out:
        displaced = read_displaced(tmp, max_bytes)
        if displaced.identity != base.identity or displaced.data != base.data:
            _swap_back(tmp, path, placed.data, displaced.data, max_bytes)
            return _AGAIN
    tmp.unlink()
    sync_dir(path.parent)
    return placed


def read_displaced(path: Path, max_bytes: int) -> Snapshot:
    fd, st = _open_regular(path)
    try:
        return _snapshot(fd, st, max_bytes + 1)
    finally:
        os.close(fd)


def _swap_back(displaced: Path, path: Path, ours: bytes, theirs: bytes, max_bytes: int) -> None:
    """A person saved between our read and our swap: the newest of their versions goes back.

    `displaced` holds their save (`theirs`), `path` holds ours. Each round puts the newest
    version of theirs we know of at `path` and takes out what was there. What comes out is
    deleted only if it is exactly what we believed was there (ours, or a version of theirs that
    a newer one replaced); anything else was saved by a person since our last swap, so it is
    the newest and goes back in the next round. A read lease on the file at `path` holds off
    in-place writers during each swap, so an editor saving in place is never chased.
    """
    at_path, putting = ours, theirs
    give_up = time.monotonic() + SWAP_BACK_SECONDS
    first = True
    while first or time.monotonic() < give_up:
        if not first:  # what waits at `displaced` now (a version of theirs that came out)
            putting = read_displaced(displaced, max_bytes).data
        first = False
        try:
            fd, _ = _open_regular(path)
        except FileNotFoundError:  # the note was moved meanwhile: never lose their bytes
            fsops.rename_noreplace(displaced, path)
            fsops.fsync_dir(path.parent)
            return
        try:
            with fsops.read_lease(fd) as leased:  # waits while an editor writes it in place
                swapped = fsops.exchange(displaced, path)
                if swapped and leased and fsops.lease_break_pending(fd):
                    # An editor is about to write into the file we just took out: it goes back
                    # first, and the next round looks again once the editor has saved.
                    fsops.exchange(displaced, path)
                    continue
        except FileNotFoundError:
            fsops.rename_noreplace(displaced, path)
            fsops.fsync_dir(path.parent)
            return
        finally:
            os.close(fd)
        if not swapped:
            os.replace(displaced, path)
            fsops.fsync_dir(path.parent)
            return
        out = read_displaced(displaced, max_bytes).data
        if out == at_path:
            displaced.unlink()
            fsops.fsync_dir(path.parent)
            return
        at_path = putting  # `out` was saved since our last swap: it is the newest
    # Saved again and again for seconds while we swapped: keep that version beside the note.
    kept = fsops.move_noreplace(displaced, path.parent, f"{path.stem} (conflict){path.suffix}")
    raise WriteConflict(f"{path}: the note kept changing; a version was kept as {kept.name}")


def _replace_if_unchanged(tmp: Path, path: Path, expected: Snapshot) -> bool:
    """Fallback where exchange is not supported: replace only if the note is as we read it."""
    try:
        st = os.lstat(path)
        current = path.read_bytes()
    except FileNotFoundError as err:
        tmp.unlink(missing_ok=True)
        raise NoteGone(str(path)) from err
    if (st.st_dev, st.st_ino) != expected.identity or current != expected.data:
        tmp.unlink(missing_ok=True)
        return False
    os.replace(tmp, path)
    fsops.fsync_dir(path.parent)
    return True


@dataclass(frozen=True)
class NoteStore:
    """The notes of one vault: reads, edits and moves, with the vault's temp folder and limit."""

    vault_root: Path
    tmp_dir: Path
    max_bytes: int

    def read(self, path: Path) -> tuple[TaskNote, Snapshot]:
        return read_note(path, self.vault_root, self.max_bytes)

    def update(
        self, path: Path, changes: Mapping[str, object | None], result: str | None = None
    ) -> Placed | None:
        return update_note(
            path,
            changes,
            tmp_dir=self.tmp_dir,
            vault_root=self.vault_root,
            max_bytes=self.max_bytes,
            result=result,
        )

    def rewrite(self, path: Path, transform: Transform) -> Placed | None:
        return rewrite_note(
            path,
            transform,
            tmp_dir=self.tmp_dir,
            vault_root=self.vault_root,
            max_bytes=self.max_bytes,
        )

    def rewrite_and_move(
        self, path: Path, transform: Transform, destination: Callable[[], Path | None]
    ) -> tuple[Placed | None, Path | None]:
        return rewrite_and_move(
            path,
            transform,
            destination,
            tmp_dir=self.tmp_dir,
            vault_root=self.vault_root,
            max_bytes=self.max_bytes,
        )


def remove_if_unchanged(path: Path, seen: Snapshot, tmp_dir: Path) -> bool:
    """Remove a note only if it is still exactly the version `seen` (its text is kept
    elsewhere by the caller). It is first renamed aside, atomically, and checked there under a
    read lease: a save made since (by rename or in place) is put back, never deleted. True when
    it is gone."""
    try:
        fd, _ = _open_regular(path)
    except (FileNotFoundError, NoteRefused):
        return False
    aside = tmp_dir / f"removing-{path.name}"
    try:
        with fsops.read_lease(fd):
            try:
                fsops.rename_noreplace(path, aside)
            except FileNotFoundError:
                return False
            st = os.lstat(aside)
            same = (st.st_dev, st.st_ino) == seen.identity and (st.st_size, st.st_mtime_ns) == (
                len(seen.data),
                seen.mtime_ns,
            )
            if same:
                aside.unlink()
    finally:
        os.close(fd)
    if not same:  # saved again meanwhile: it goes back (beside the note if its name is taken)
        fsops.move_noreplace(aside, path.parent, path.name)
        return False
    fsops.fsync_dir(path.parent)
    return True


def move_note(path: Path, folder: Path) -> Path:
    """Move a note into `folder` with one rename, never overwriting; returns where it went."""
    try:
        return fsops.move_noreplace(path, folder)
    except FileNotFoundError as err:
        raise NoteGone(str(path)) from err
