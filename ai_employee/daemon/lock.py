"""The service's lock: one service per vault, and who holds it, seen without taking it.

`.ai-employee/lock` is held with flock for the life of the service and names its holder
(`pid 123 since 2026-12-06T10:00:00Z`). Others (the web page, `status`) never take it, not even
for a moment (a service starting then would see it held and exit): on Linux, `/proc/locks` says
whether anyone holds a lock on the file's inode; elsewhere the pid it names must be alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..base import fsops
from ..base.errors import LockHeld
from ..notes.vault import Vault

_HOLDER = re.compile(r"pid (\d+) since (\S+)")
PROC_LOCKS = Path("/proc/locks")


@contextlib.contextmanager
def service_lock(vault: Vault) -> Iterator[None]:
    """Hold `.ai-employee/lock` (flock) for the life of the service; name the holder if taken."""
    vault.machinery.mkdir(parents=True, exist_ok=True)
    fd = os.open(vault.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(
                f"another ai-employee service already runs on {vault.root} ({holder}); "
                "stop it first (one service per vault)"
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode(), 0
        )
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Holder:
    """The service that holds a vault's lock."""

    pid: int | None
    since: datetime | None


def held_by(vault: Vault) -> Holder | None:
    """The service that holds the vault's lock now (None: no service runs on it)."""
    text = fsops.read_regular(vault.lock_file, 200).decode("utf-8", "replace")
    match = _HOLDER.search(text)
    pid = int(match.group(1)) if match else None
    locked = _locked(vault.lock_file)
    running = locked if locked is not None else (pid is not None and _alive(pid))
    if not running:
        return None
    return Holder(pid, _parse_time(match.group(2)) if match else None)


def _locked(path: Path) -> bool | None:
    """Whether /proc/locks lists a lock on this file; None where it cannot be told."""
    try:
        st = path.stat()
        text = PROC_LOCKS.read_text()
    except OSError:
        return None
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    wanted = {f"{major:02x}:{minor:02x}:{st.st_ino}", f"{major}:{minor}:{st.st_ino}"}
    return any(len(f) > 5 and f[5] in wanted for f in (line.split() for line in text.splitlines()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
