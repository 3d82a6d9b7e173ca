"""Where planned -> agent started goes: each stage timed, one note at a time (no-op agent).

    .venv/bin/python bench/run_stages.py [--n 200]

Stages (the service's own functions, wrapped here to take the time):
  planned -> queued run handed over   the main loop decides `run` and starts the run's thread
  handed over -> claim begins         the thread starts
  claim                               re-read, prompt if the agent reads one, the durable edit
  claim done -> Popen called           the transcript, the agent's argv and environment
  Popen called -> Popen returned       fork, exec (Python's Popen returns once the exec is done)
and the whole of planned -> agent started (the agent's own clock), as bench/runs.py measures it.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct
from drop_to_planned import fsync_cost_ms
from runs import build_agent, sequential

from ai_employee import agentproc, executor, reconcile

marks: dict[str, dict[str, int]] = {}


def mark(task_id: str, stage: str) -> None:
    marks.setdefault(task_id, {}).setdefault(stage, time.monotonic_ns())


def instrument() -> None:
    plan, start, claim = (
        reconcile.Reconciler._plan,
        executor.Executor.start,
        executor.Executor._claim,
    )

    def timed_plan(self: Any, path: Any, note: Any, task_type: Any, task_id: str, *a: Any) -> Any:
        result = plan(self, path, note, task_type, task_id, *a)
        mark(task_id, "planned")
        return result

    def timed_start(self: Any, request: Any, path: Any) -> Any:
        mark(request.task_id, "handed over")
        return start(self, request, path)

    def timed_claim(self: Any, request: Any, path: Any) -> Any:
        mark(request.task_id, "claim begins")
        spec = claim(self, request, path)
        mark(request.task_id, "claim done")
        return spec

    class TimedPopen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            task_id = str(args[-1])
            mark(task_id, "Popen called")
            super().__init__(args, *a, **kw)
            mark(task_id, "Popen returned")

    agentproc.subprocess.Popen = TimedPopen  # type: ignore[misc]
    reconcile.Reconciler._plan = timed_plan  # type: ignore[method-assign]
    executor.Executor.start = timed_start  # type: ignore[method-assign]
    executor.Executor._claim = timed_claim  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    instrument()
    with tempfile.TemporaryDirectory() as tmp:
        agent = build_agent(Path(tmp))
        fsync_ms = fsync_cost_ms(Path(tmp))
        to_start, _ = sequential(agent, args.n)
    print(f"this disk now: one durable small write (file + folder fsync) p50 {fsync_ms:.3f} ms")
    print(f"planned -> agent started: p50 {pct(to_start, 50):.3f} ms (n={len(to_start)})")
    stages = [
        "planned",
        "handed over",
        "claim begins",
        "claim done",
        "Popen called",
        "Popen returned",
    ]
    for first, second in itertools.pairwise(stages):
        spans = [
            (m[second] - m[first]) / 1e6 for m in marks.values() if {first, second} <= m.keys()
        ]
        print(f"{first} -> {second}: p50 {pct(spans, 50):.3f} ms, p90 {pct(spans, 90):.3f} ms")


if __name__ == "__main__":
    main()
