"""Process groups: tell a process from a reused pid, stop a whole group, wait for any pid.

Used by a run to stop its agent (and the agent's children) and by the start-up recovery to
stop an agent a previous service left behind. Linux /proc and pidfd; no state.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections.abc import Callable

STOP_GRACE_SECONDS = 0.8
"""Between SIGTERM and SIGKILL when a run is stopped (cancel within a second)."""


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
        fields = raw.rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[19])


def stop_group(pgid: int, wait: Callable[[float], bool], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the group, wait up to `grace` for its leader, then SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    wait(grace)


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left in a group (its leader exited)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def with_env(entry: str) -> list[int]:
    """The processes whose environment holds `entry` ("NAME=value"), this one excepted (a
    process that cleared its environment, or changed that name, is not found)."""
    want, found = entry.encode(), []
    try:
        procs = os.listdir("/proc")
    except OSError:  # no /proc (macOS): nothing found
        return []
    for proc in procs:
        if not proc.isdigit() or int(proc) == os.getpid():
            continue
        try:
            with open(f"/proc/{proc}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    found.append(int(proc))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def stop_all(pids: list[int], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each, up to `grace` for them all to exit, then SIGKILL what is left (a process
    that ignores SIGTERM, in a session of its own, ends all the same)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids:
        if not wait_pid(pid, max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def wait_pid(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to exit (pidfd: no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return True
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            return bool(selector.select(timeout))
    finally:
        os.close(fd)
