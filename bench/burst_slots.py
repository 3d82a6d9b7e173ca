"""Which side bounds a burst: the main loop's planning, or the run slots?

    .venv/bin/python bench/burst_slots.py [--burst 1000]   (BENCH_DIR=... picks the disk)

Runs bench/runs.py's burst (no-op agent, max_parallel 4, fsync on) with timestamps taken at
each step of every run's slot: handed to a thread, claim begun and done, Popen begun and done,
agent gone, slot freed by the main loop. It prints each step's p50/mean/p90, the mean time a
slot is held (4 slots / that = the rate the slots allow), and how many planned tasks were
waiting for a slot at each start. A backlog of 1 at every start means each task started as
soon as it was planned: the slots were waiting for the main loop, not the other way round.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct
from runs import build_agent, burst

from ai_employee import agentproc, executor, reconcile, service

STEPS = ["handed", "claim begun", "claimed", "popen begun", "popen done", "agent gone", "freed"]
marks: dict[str, dict[str, int]] = {}
plans: list[int] = []


def mark(task_id: str, step: str) -> None:
    marks.setdefault(task_id, {})[step] = time.perf_counter_ns()


def around(cls: Any, name: str, key: Callable[..., str], before: str, after: str = "") -> None:
    """Wrap cls.name so that `before` (and `after`) are marked for the task `key` names."""
    original = getattr(cls, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        task_id = key(*args)
        mark(task_id, before)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                mark(task_id, after)

    setattr(cls, name, wrapped)


def instrument() -> None:
    around(executor.Executor, "start", lambda self, request, path: request.task_id, "handed")
    around(
        executor.Executor,
        "_claim",
        lambda self, request, path: request.task_id,
        "claim begun",
        "claimed",
    )
    around(executor.Executor, "_agent_done", lambda self, run, outcome: run.task_id, "agent gone")
    around(service.Service, "_free_slot", lambda self, run: run.task_id, "freed")

    class TimedPopen(agentproc.subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            task_id = threading.current_thread().name.removeprefix("run-")
            mark(task_id, "popen begun")
            super().__init__(*args, **kwargs)
            mark(task_id, "popen done")

    agentproc.subprocess.Popen = TimedPopen  # type: ignore[misc]
    original_plan = reconcile.Reconciler._plan

    def plan(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_plan(self, *args, **kwargs)
        plans.append(time.perf_counter_ns())
        return result

    reconcile.Reconciler._plan = plan  # type: ignore[method-assign]


def report() -> None:
    runs = [m for m in marks.values() if all(step in m for step in STEPS)]
    print(f"slot steps of {len(runs)} runs (ms)")
    for a, b in itertools.pairwise(STEPS):
        gaps = [(m[b] - m[a]) / 1e6 for m in runs]
        print(
            f"  {a:>12} -> {b:<12} p50 {pct(gaps, 50):6.2f}  mean {statistics.fmean(gaps):6.2f}"
            f"  p90 {pct(gaps, 90):6.2f}"
        )
    held = statistics.fmean((m["freed"] - m["handed"]) / 1e6 for m in runs)
    print(f"  a slot is held {held:.2f} ms on average: 4 slots allow {4000 / held:.0f} tasks/s")
    starts = sorted(m["handed"] for m in runs)
    plans.sort()
    backlog = [bisect.bisect_right(plans, t) - i for i, t in enumerate(starts)]
    print(
        f"planned tasks waiting at each start: p10 {pct(backlog, 10)}, p50 {pct(backlog, 50)},"
        f" p90 {pct(backlog, 90)}, max {max(backlog)} (1 = started as soon as planned)"
    )
    spans = (plans[-1] - plans[0]) / 1e9, (starts[-1] - starts[0]) / 1e9
    print(f"first to last plan {spans[0]:.2f} s; first to last start {spans[1]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    instrument()
    with tempfile.TemporaryDirectory() as tmp:
        burst(build_agent(Path(tmp)), args.burst)
    report()


if __name__ == "__main__":
    main()
