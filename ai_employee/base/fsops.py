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
import itertools
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


_temp_names = itertools.count()
_temp_tag = secrets.token_hex(3)
"""Temp names are this process's tag, its pid and a counter: unique without a random read per
file (O_EXCL still refuses a name left by a crashed process; the next number is taken)."""


def ensure_dir(folder: Path) -> None:
    """Make `folder` (and its parents) if missing: one mkdir call when it is already there.
    Something else by that name (a file) is an error, not a folder."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise NotADirectoryError(
                errno.ENOTDIR, "exists and is not a folder", str(folder)
            ) from None
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)


def touch(path: Path) -> None:
    """Create `path` empty if missing (its folder too); never truncate what is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    os.close(fd)


def write_temp(
    tmp_dir: Path, data: bytes, mode: int = 0o644, prefix: str = "w", *, durable: bool = True
) -> Path:
    """Write `data` to a new (fsynced, if durable) file in `tmp_dir` with `mode`; return it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        path = tmp_dir / f".{prefix}-{_temp_tag}{os.getpid()}-{next(_temp_names)}.tmp"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        except FileNotFoundError:  # the machinery folder was deleted: make it again
            tmp_dir.mkdir(parents=True, exist_ok=True)
            continue
        break
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
        except FileNotFoundError:
            if folder.is_dir() or not os.path.lexists(src):
                raise
            folder.mkdir(parents=True, exist_ok=True)  # the folder was deleted: make it again
            try:
                rename_noreplace(src, candidate)
            except FileExistsError:  # taken the moment the folder came back
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
    # A lease break signals the holder with SIGIO, whose default is to terminate: unless our
    # handler is installed (quiet_lease_breaks), ask for SIGURG (ignored by default) instead.
    if signal.getsignal(signal.SIGIO) is not _lease_broken:
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


def _lease_broken(signum: int, frame: object) -> None:
    """SIGIO: a process wants to write a file we hold a lease on; we look with F_GETLEASE."""


def quiet_lease_breaks() -> None:
    """Call once from the main thread: lease breaks then need no per-file signal setting.

    A handler (not SIG_IGN) so that agent processes, which exec, start with SIGIO's default.
    """
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGIO, _lease_broken)


def _release_lease(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def no_writers_now(fd: int) -> bool:
    """True when no process has the file behind `fd` (opened read-only) open for writing."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    _release_lease(fd)
    return True


_LOCAL_FS_MAGIC = frozenset(
    {
        0xEF53,  # ext2/3/4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0x01021994,  # tmpfs
        0xF2F52010,  # f2fs
    }
)
_local_devices: dict[int, bool] = {}


class _StatFs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def leases_trusted(fd: int, dev: int) -> bool:
    """Whether the filesystem of `fd` is local, where a lease sees every writer of a file.

    On FUSE (sshfs, rclone, virtiofs) or a network mount a file can change without the
    lease's knowledge; there a swapped-out version is read back, not trusted by its inode.
    `dev` is the file's st_dev (the answer is remembered per device).
    """
    known = _local_devices.get(dev)
    if known is None:
        buf = _StatFs()
        fstatfs = getattr(_libc, "fstatfs", None)
        known = bool(
            sys.platform.startswith("linux")
            and fstatfs is not None
            and fstatfs(fd, ctypes.byref(buf)) == 0
            and (buf.f_type & 0xFFFFFFFF) in _LOCAL_FS_MAGIC
        )
        _local_devices[dev] = known
    return known


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


def read_fd(fd: int, size_hint: int = 0) -> bytes:
    """The whole content of an open file, from its start (`size_hint`: its size by fstat)."""
    first = os.pread(fd, size_hint + 1, 0) if size_hint > 0 else b""
    if len(first) == size_hint > 0:
        return first  # all the size promised, and not a byte more: that was all of it
    chunks: list[bytes] = [first]
    offset = len(first)
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


PLAIN_FILE_LIMIT = 8 * 1024 * 1024
"""The most `read_plain_text` reads: our plans and the handbook are small."""


def read_plain_text(path: Path, errors: str = "strict") -> str:
    """A regular file's text (a symlink to one is followed), never blocking on a FIFO or a
    device: anything else is IsADirectoryError or OSError, as a missing file is
    FileNotFoundError. For the files the service reads in its own threads (plans, the handbook),
    where a FIFO put in their place would hang the thread for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = os.pread(fd, PLAIN_FILE_LIMIT, 0)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors)


def read_regular(path: Path, limit: int, from_end: bool = False) -> bytes:
    """Up to `limit` bytes of a regular file (its last ones with `from_end`), never through a
    symlink, never blocking on a FIFO; b"" for anything else or an error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return b""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b""
        if from_end and st.st_size > limit:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        chunks = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)
