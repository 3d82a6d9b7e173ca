"""Where a run's claim and record spend their wall time (used by plan_run_apart.py --parts).

Wraps the edit's steps (fsops and notefile functions, looked up at call time) with timers that
count only inside Executor._claim and Executor.record, per thread. Wall time, not CPU: under
load a syscall's time includes the wait for the interpreter lock and for a core. A step inside
another is counted in both (the move's two folder fsyncs are also under "fsync_dir").
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from ai_employee import executor, fsops, notefile

STEPS = {
    fsops: [
        "write_temp",
        "fsync_dir",
        "exchange",
        "no_writers_now",
        "move_noreplace",
        "ensure_dir",
    ],
    notefile: ["_open_regular", "_snapshot"],
}
"""The steps timed: temp file (with its fsync), folder fsync, swap, lease check, move, mkdir,
open and read of the note."""


def install() -> Callable[[], list[str]]:
    """Wrap the steps; returns a function that reports them (one line per phase and step)."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    local = threading.local()

    def timed(phase_of: Callable[[], str | None], label: str, func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                phase = phase_of()
                if phase is not None:
                    entry = totals[(phase, label)]
                    entry[0] += 1
                    entry[1] += time.perf_counter() - start

        return wrapper

    for module, names in STEPS.items():
        for name in names:
            setattr(
                module,
                name,
                timed(lambda: getattr(local, "phase", None), name, getattr(module, name)),
            )

    def phase(name: str, func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            local.phase = name
            try:
                return timed(lambda: name, "whole", func)(*args, **kwargs)
            finally:
                local.phase = None

        return wrapper

    executor.Executor._claim = phase("claim", executor.Executor._claim)  # type: ignore[method-assign]
    executor.Executor.record = phase("record", executor.Executor.record)  # type: ignore[method-assign]

    original_lock = notefile._writer_lock

    @contextlib.contextmanager
    def writer_lock(machinery: Any, name: str) -> Iterator[None]:
        start = time.perf_counter()
        with original_lock(machinery, name):
            current = getattr(local, "phase", None)
            if current is not None:
                entry = totals[(current, "lock wait")]
                entry[0] += 1
                entry[1] += time.perf_counter() - start
            yield

    notefile._writer_lock = writer_lock  # type: ignore[assignment]

    def report() -> list[str]:
        return [
            f"  {phase_name:<6} {label:<15} {count:>5.0f} calls, "
            f"mean {1000 * seconds / count:6.2f} ms"
            for (phase_name, label), (count, seconds) in sorted(totals.items())
            if count
        ]

    return report
