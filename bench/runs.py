"""Run benchmarks with a no-op agent (a tiny C program that takes the time first thing).

    .venv/bin/python bench/runs.py [--n 1000] [--burst 1000] [--only sequential|burst]

1. planned -> agent started: the plan step's time in the service vs the agent's own clock
   reading (both CLOCK_MONOTONIC), one note at a time.
2. drop -> Done: a note renamed into Needs_Action until it arrives in Done/ (seen by an inotify
   watch of the benchmark's own).
3. burst: `--burst` notes renamed into Needs_Action at once, max_parallel 4, fsync on; every
   note must end in Done/ and the agent must have run exactly once per task.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DIR,
    Arrivals,
    create_cost_us,
    journal_commits,
    note_text,
    pct,
    service_in_thread,
    summary,
    temp_vault,
    watch_steps,
)
from drop_to_planned import fsync_cost_ms


def build_agent(workdir: Path) -> Path:
    """The no-op agent, linked statically where the C library allows: its clock is then read
    as soon as the exec is done, without the dynamic loader's ~0.2 ms in between."""
    binary = workdir / "noop_agent"
    source = Path(__file__).with_name("noop_agent.c")
    static = subprocess.run(
        ["cc", "-O2", "-static", "-o", str(binary), str(source)], capture_output=True
    )
    if static.returncode != 0:
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def sequential(agent: Path, n: int) -> tuple[list[float], list[float]]:
    with temp_vault() as root:
        ledger = root.parent / "ledger"
        os.environ["BENCH_LEDGER"] = str(ledger)
        staging = root.parent / "staging"
        staging.mkdir()
        planned_at: dict[str, int] = {}
        done = Arrivals(root / "Done")
        with service_in_thread(
            root, agent="command", agent_command=f"{agent} {{task_id}}", settle_seconds="0.2"
        ) as service:

            def on_step(path: Path, step: object, task_id: str) -> None:
                if getattr(step, "action", None) == "plan":
                    planned_at[task_id] = time.monotonic_ns()

            watch_steps(service, on_step)
            to_start, to_done = [], []
            for i in range(n):
                staged = staging / f"s{i}.md"
                staged.write_text(note_text(i))
                t0 = time.monotonic_ns()
                os.rename(staged, root / "Needs_Action" / f"s{i}.md")
                arrived = done.wait(f"s{i}.md", 20)
                to_done.append((arrived - t0) / 1e6)
            starts = {}
            for line in ledger.read_text().splitlines():
                task_id, ns = line.split()
                starts[task_id] = int(ns)
            to_start = [(starts[t] - planned_at[t]) / 1e6 for t in planned_at]
        done.close()
    return to_start, to_done


def stage_burst(root: Path, n: int) -> list[tuple[Path, Path]]:
    """n notes written beside the vault, and where each is to be renamed: (staged, target)."""
    staging = root.parent / "staging"
    staging.mkdir()
    moves = []
    for i in range(n):
        staged = staging / f"b{i:04d}.md"
        staged.write_text(note_text(i))
        moves.append((staged, root / "Needs_Action" / staged.name))
    return moves


def burst_service(root: Path, agent: Path, **extra: str) -> contextlib.AbstractContextManager[Any]:
    """The service as every burst runs it: the no-op agent, max_parallel 4."""
    return service_in_thread(
        root,
        agent="command",
        agent_command=f"{agent} {{task_id}}",
        max_parallel="4",
        settle_seconds="0.2",
        **extra,
    )


def burst(agent: Path, n: int) -> None:
    with temp_vault() as root:
        ledger = root.parent / "ledger"
        os.environ["BENCH_LEDGER"] = str(ledger)
        moves = stage_burst(root, n)
        with burst_service(root, agent) as service:
            create_us = create_cost_us(root / ".ai-employee" / "tmp")
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            commits0 = journal_commits(root)
            done = Arrivals(root / "Done")
            t0 = time.monotonic()
            for staged, target in moves:
                os.rename(staged, target)
            renamed = time.monotonic() - t0
            done.wait_count(n, 300)
            drained = time.monotonic() - t0
            done.close()
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            commits1 = journal_commits(root)
            stats = service.stats
        in_done = sum(1 for _ in (root / "Done").glob("b*.md"))
        runs = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    once = sum(1 for c in runs.values() if c == 1)
    print(
        f"burst in {BENCH_DIR}: creating a small file there costs {create_us:.0f} us (p50); "
        f"{n} notes renamed in {renamed * 1000:.0f} ms; all in Done/ after "
        f"{drained:.2f} s -> {n / drained:.0f} tasks/s (target >= 200)"
    )
    print(
        f"  in Done/: {in_done}/{n}; agent runs: {sum(runs.values())} for {len(runs)} tasks, "
        f"{once} exactly once; overflows {stats.overflows}, rescans {stats.rescans}"
    )
    user = cpu1.ru_utime - cpu0.ru_utime
    system = cpu1.ru_stime - cpu0.ru_stime
    print(
        f"  service CPU per task: {(user + system) / n * 1000:.2f} ms "
        f"({user / n * 1000:.2f} user + {system / n * 1000:.2f} system; the agents not counted)"
    )
    if commits0 is not None and commits1 is not None:
        print(
            f"  journal commits: {commits1 - commits0} ({(commits1 - commits0) / n:.2f} per task, "
            f"{(commits1 - commits0) / drained:.0f}/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--only", choices=["sequential", "burst"], help="run one part")
    args = parser.parse_args()
    # The burst runs first: on a journal-less ext4 the thousands of files a finished part
    # deletes make creating files slow for the next few minutes (see create_cost_us).
    with tempfile.TemporaryDirectory() as tmp:
        agent = build_agent(Path(tmp))
        fsync_ms = fsync_cost_ms(Path(tmp))
        if args.only != "sequential":
            burst(agent, args.burst)
        if args.only == "burst":
            return
        to_start, to_done = sequential(agent, args.n)
        print("no-op agent (C, takes CLOCK_MONOTONIC first), one note at a time, fsync on")
        print(f"this disk now: one durable small write (file + folder fsync) p50 {fsync_ms:.3f} ms")
        print(summary("planned -> agent started", to_start))
        print(summary("drop -> Done", to_done))
        print(
            f"targets: planned->started p50 <= 5 ms: "
            f"{'met' if pct(to_start, 50) <= 5 else 'MISSED'}; drop->Done p50 <= 20 ms: "
            f"{'met' if pct(to_done, 50) <= 20 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
