"""Durable, atomic filesystem primitives: the only place that knows about fsync and renameat2.

Every write we make to a vault goes through `write_atomic` (temp file on the same filesystem,
fsync, rename, fsync of the folder). Moves use `rename_noreplace` so a note is never overwritten,
and edits use `exchange` so a file a person put in place a moment ago is never silently replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import secrets
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc_renameat2: Any = getattr(_libc, "renameat2", None)
_libc_renamex_np: Any = getattr(_libc, "renamex_np", None)  # macOS: RENAME_SWAP=2, RENAME_EXCL=4


def fsync_dir(folder: Path) -> None:
    """Make a rename or create inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(
    tmp_dir: Path, data: bytes, mode: int = 0o644, prefix: str = "w", *, durable: bool = True
) -> Path:
    """Write `data` to a new (fsynced, if durable) file in `tmp_dir` with `mode`; return it.

    The file is a spare made earlier (see `make_spares`) when there is one: on some disks
    creating a file costs far more than writing one, and a spare keeps that off the path.
    """
    path = _take_spare(tmp_dir)
    if path is not None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:  # swept away: make a new one
            path = None
    if path is None:
        path = tmp_dir / f".{prefix}-{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:  # the machinery folder was deleted: make it again
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchmod(fd, stat.S_IMODE(mode))
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


_spares: dict[Path, list[Path]] = {}
_spares_lock = threading.Lock()


def _take_spare(tmp_dir: Path) -> Path | None:
    with _spares_lock:
        pool = _spares.get(tmp_dir)
        return pool.pop() if pool else None


def make_spares(tmp_dir: Path, keep: int) -> int:
    """Create empty temp files in `tmp_dir` until `keep` wait there; returns how many were made.

    Called by the service when idle; from then on `recycle` may keep files of `tmp_dir` as
    spares too. Spares are ours alone (mode 0600, known only to this process) and removed by
    `drop_spares` at stop, or by the start-up sweep of the temp folder after a crash.
    """
    with _spares_lock:
        missing = keep - len(_spares.get(tmp_dir, ()))
    made = []
    for _ in range(max(0, missing)):
        path = tmp_dir / f".s-{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except OSError:
            break  # no folder, a full disk: the writes make their own files
        made.append(path)
    with _spares_lock:
        _spares.setdefault(tmp_dir, []).extend(made)
    return len(made)


MAX_SPARES = 64
"""Spare temp files kept per temp folder; beyond that a displaced file is removed."""


def recycle(path: Path) -> None:
    """Keep a file we are done with (a note's previous version, swapped out) as a spare.

    Deleting and creating files is what makes some filesystems slow under a stream of edits (a
    journal-less ext4 skips every recently deleted inode when it allocates one), so the inode
    is emptied and reused for a later write instead, but only when nothing else can tell: it is
    a regular file of ours with one link and no extended attributes, and a write lease (granted
    only while no other process has it open at all) is held while it is emptied. Otherwise, or
    where leases do not exist, it is removed as before.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        path.unlink(missing_ok=True)
        return
    kept = False
    try:
        with _spares_lock:
            pool = _spares.get(path.parent)  # only a service keeps spares (see make_spares)
            room = pool is not None and len(pool) < MAX_SPARES
        st = os.fstat(fd)
        if (
            room
            and sys.platform.startswith("linux")
            and stat.S_ISREG(st.st_mode)
            and st.st_nlink == 1
            and st.st_uid == os.geteuid()
            and st.st_gid == os.getegid()
            and not os.listxattr(fd)
        ):
            try:
                # A lease break signals the holder: SIGURG is ignored by default (SIGIO kills).
                fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
            except OSError:
                pass  # someone has it open: it goes
            else:
                try:
                    os.ftruncate(fd, 0)
                    os.fchmod(fd, 0o600)
                    kept = True
                finally:
                    _release_lease(fd)
    except OSError:
        kept = False
    finally:
        os.close(fd)
    if not kept:
        path.unlink(missing_ok=True)
        return
    with _spares_lock:
        _spares.setdefault(path.parent, []).append(path)


def drop_spares(tmp_dir: Path) -> None:
    """Remove the spare temp files of `tmp_dir`."""
    with _spares_lock:
        pool = _spares.pop(tmp_dir, [])
    for path in pool:
        path.unlink(missing_ok=True)


def write_atomic(
    path: Path, data: bytes, tmp_dir: Path, mode: int | None = None, *, durable: bool = True
) -> None:
    """Replace (or create) `path` with `data` atomically (and durably), keeping its mode.

    `durable=False` skips both fsyncs: only for files we can rebuild from the notes (plans,
    Dashboard.md), where a crash costs a rebuild, not data.
    """
    if mode is None:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = 0o644
    tmp = write_temp(tmp_dir, data, mode, durable=durable)
    try:
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Create `path` atomically with `data`; FileExistsError if the name is taken."""
    tmp = write_temp(tmp_dir, data)
    try:
        rename_noreplace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """True when the kernel did it; False when renameat2 is not available here."""
    if _libc_renameat2 is not None:
        result = _libc_renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
        if result == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False
        raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if _libc_renamex_np is not None and sys.platform == "darwin":
        mac_flags = {_RENAME_NOREPLACE: 4, _RENAME_EXCHANGE: 2}[flags]
        result = _libc_renamex_np(os.fsencode(src), os.fsencode(dst), mac_flags)
        if result == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.ENOTSUP, errno.EINVAL):
            return False
        raise OSError(err, os.strerror(err), str(src), None, str(dst))
    return False


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, raising FileExistsError instead of ever replacing `dst`."""
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    os.link(src, dst)  # fails with FileExistsError when taken; atomic on POSIX filesystems
    os.unlink(src)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically. False when this filesystem cannot (then the caller replaces)."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def move_noreplace(src: Path, folder: Path, name: str | None = None) -> Path:
    """Move `src` into `folder` under its name, or `name (2).md`... when taken; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    target_name = name or src.name
    stem, dot, suffix = target_name.rpartition(".")
    if not dot or not stem:
        stem, suffix = target_name, ""
    for n in range(1, 10_000):
        candidate = folder / (target_name if n == 1 else f"{stem} ({n}){dot}{suffix}")
        try:
            rename_noreplace(src, candidate)
        except FileExistsError:
            continue
        fsync_dir(folder)
        if src.parent != folder:
            fsync_dir(src.parent)
        return candidate
    raise FileExistsError(f"no free name for {target_name!r} in {folder}")


def _take_read_lease(fd: int, deadline_s: float) -> bool:
    """Take a read lease on `fd` (opened read-only), waiting while a writer holds the file open.

    A read lease cannot be taken while any process has the file open for writing, and while we
    hold it an open-for-write blocks until we let go. Linux only; False where leases are not
    available (other systems, some filesystems) or the deadline passed.
    """
    if not sys.platform.startswith("linux"):
        return False
    end = time.monotonic() + deadline_s
    delay = 0.0005
    # A lease break signals the holder; SIGURG's default is to ignore, SIGIO's is to terminate.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
    while True:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
            return True
        except OSError as err:
            if err.errno != errno.EAGAIN or time.monotonic() >= end:
                return False
        time.sleep(delay)  # a writer holds the file open: wait for it to close
        delay = min(delay * 2, 0.02)


def _release_lease(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def wait_no_writers(fd: int, deadline_s: float = 2.0) -> bool:
    """Wait until no process has the file behind `fd` open for writing (see _take_read_lease)."""
    if _take_read_lease(fd, deadline_s):
        _release_lease(fd)
        return True
    return False


def lease_break_pending(fd: int) -> bool:
    """True when a process is blocked opening our leased file for writing (it waits for us)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_UNLCK
    except OSError:
        return False


def has_writers(path: Path) -> bool | None:
    """Whether some process has `path` open for writing right now (None: cannot tell here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not sys.platform.startswith("linux"):
            return None
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as err:
            return True if err.errno == errno.EAGAIN else None
        _release_lease(fd)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_lease(fd: int, deadline_s: float = 2.0) -> Iterator[bool]:
    """Hold off in-place writers of the file behind `fd` for the duration of the block."""
    held = _take_read_lease(fd, deadline_s)
    try:
        yield held
    finally:
        if held:
            _release_lease(fd)


def read_fd(fd: int) -> bytes:
    """The whole content of an open file, from its start."""
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)
