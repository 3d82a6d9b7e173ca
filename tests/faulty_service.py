"""`ai-employee run` with faults a test or a benchmark injects from outside: killed with
SIGKILL (or an OSError raised) at its N-th durable step, and a clock that jumps.

    CRASH_AT=N [CRASH_HOW=kill|raise|enospc] CRASH_TRACE=FILE python faulty_service.py run ...
    CLOCK_OFFSET_FILE=FILE python faulty_service.py run ...

A durable step is the moment before, and the moment after, each call that makes something
last: a temporary file written (and synced), an exchange, a rename, a move, a folder synced,
a file created in place (base/fsops.py), and each git command (a round's commit is `git add`
then `git commit`). Dashboard.md's redraws are left out (they are rebuilt, and their timing
varies). Steps are numbered from 1 as they come; every step is appended to CRASH_TRACE (the
step the process dies at last, `kill` or `raise` before it), so a test knows how many there
were and where each crash fell. `CRASH_AT=0` crashes nowhere (a trace run). For the tests
only: nothing in the package knows of it.

The clock: the service's wall clock (`Service(now=...)`, which every decision reads) is the
real one plus the seconds written in CLOCK_OFFSET_FILE, read at each call: writing 3600 there
is a jump an hour ahead (a laptop waking), -3600 an hour back (a correction). Monotonic time,
which the service's timers run on, does not jump, as on a real machine.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ai_employee.base import fsops
from ai_employee.daemon import service
from ai_employee.running import workrepo
from ai_employee.surfaces.cli import main

AT = int(os.environ.get("CRASH_AT", "0"))
HOW = os.environ.get("CRASH_HOW", "kill")
TRACE = os.environ.get("CRASH_TRACE")
_lock = threading.Lock()
_count = 0


def _where(args: tuple[Any, ...]) -> str:
    paths = [str(a) for a in args if isinstance(a, (str, Path))]
    return " ".join(paths[:2])[-200:]


def _step(moment: str, name: str, args: tuple[Any, ...]) -> None:
    global _count
    with _lock:
        _count += 1
        number = _count
        line = f"{number} {moment} {name} {_where(args)}"
        crash = number == AT
        if TRACE:
            with open(TRACE, "a") as out:
                out.write(f"{line}{' <- ' + HOW if crash else ''}\n")
    if not crash:
        return
    if HOW == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = errno.ENOSPC if HOW == "enospc" else errno.EIO  # a full disk, or any I/O error
    raise OSError(code, f"{os.strerror(code)} (faulty_service: step {number})")


def _wrapped(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def durable(*args: Any, **kwargs: Any) -> Any:
        _step("before", name, args)
        result = call(*args, **kwargs)
        _step("after", name, args)
        return result

    return durable


_in_dashboard = threading.local()


def _dashboard_aware(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def write_atomic(path: Path, *args: Any, **kwargs: Any) -> Any:
        if "Dashboard.md" not in str(path):
            return call(path, *args, **kwargs)
        _in_dashboard.on = True
        try:
            return call(path, *args, **kwargs)
        finally:
            _in_dashboard.on = False

    return write_atomic


def _unless_dashboard(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    counted = _wrapped(name, call)

    @functools.wraps(call)
    def durable(*args: Any, **kwargs: Any) -> Any:
        if getattr(_in_dashboard, "on", False):
            return call(*args, **kwargs)
        return counted(*args, **kwargs)

    return durable


for _name in (
    "write_temp",
    "exchange",
    "rename_noreplace",
    "move_noreplace",
    "fsync_dir",
    "create_exclusive",
):
    setattr(fsops, _name, _unless_dashboard(_name, getattr(fsops, _name)))
fsops.write_atomic = _dashboard_aware(fsops.write_atomic)
workrepo.run_git = _wrapped("git", workrepo.run_git)

OFFSET = os.environ.get("CLOCK_OFFSET_FILE")


def _offset_now() -> datetime:
    try:
        offset = float(Path(OFFSET or "").read_text() or 0)
    except (OSError, ValueError):
        offset = 0.0
    return datetime.now(UTC) + timedelta(seconds=offset)


if OFFSET:
    _init = service.Service.__init__

    @functools.wraps(_init)
    def _with_clock(self: service.Service, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("now", _offset_now)
        _init(self, *args, **kwargs)

    service.Service.__init__ = _with_clock  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
