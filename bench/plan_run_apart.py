"""A burst's two halves measured apart: planning alone, then running alone.

    .venv/bin/python bench/plan_run_apart.py [--n 1000] [--parts]   (BENCH_DIR=... picks the disk)

1,000 notes are renamed into Needs_Action while the daily budget is spent, so every note is
planned and queued but none starts: that is the main loop's planning rate. Then the budget is
freed and the queued runs drain (no-op agent, max_parallel 4): that is the running rate, with
only run-related work left for the main loop. Each prints the service's CPU per task. Together
they show which half bounds the burst (bench/runs.py) and what a split of the two would gain.
--parts also prints where a run's claim and record spend their wall time (bench/edit_parts.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import edit_parts
from common import BENCH_DIR, temp_vault
from runs import build_agent, burst_service, stage_burst


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def wait(condition: object, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:g} s")
        time.sleep(0.01)  # the benchmark's own progress check, not the service's


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--parts", action="store_true", help="time the claim's and record's steps")
    args = parser.parse_args()
    n = args.n
    report = edit_parts.install() if args.parts else None
    with tempfile.TemporaryDirectory() as tmp, temp_vault() as root:
        agent = build_agent(Path(tmp))
        os.environ["BENCH_LEDGER"] = str(root.parent / "ledger")
        moves = stage_burst(root, n)
        with burst_service(root, agent, daily_budget_usd="1") as service:
            service.executor.spent = {service.now().date().isoformat(): 1.0}  # held back
            u0, s0 = cpu()
            t0 = time.monotonic()
            for staged, target in moves:
                os.rename(staged, target)
            wait(lambda: service.scheduler.waiting() >= n, "plan")
            planned = time.monotonic() - t0
            u1, s1 = cpu()
            service.executor.spent = {}
            service.hints.put("go")
            t1 = time.monotonic()
            wait(lambda: service.executor.tally.succeeded >= n, "run")
            ran = time.monotonic() - t1
            u2, s2 = cpu()
    print(f"in {BENCH_DIR}, {n} notes, fsync on, no-op agent, max_parallel 4")
    print(
        f"planning alone: {n / planned:.0f} tasks/s; service CPU per task "
        f"{(u1 - u0 + s1 - s0) / n * 1000:.2f} ms ({(u1 - u0) / n * 1000:.2f} user)"
    )
    print(
        f"running alone:  {n / ran:.0f} tasks/s; service CPU per task "
        f"{(u2 - u1 + s2 - s1) / n * 1000:.2f} ms ({(u2 - u1) / n * 1000:.2f} user)"
    )
    if report is not None:
        print("wall time of a run's claim and record, by step:")
        print("\n".join(report()))


if __name__ == "__main__":
    main()
