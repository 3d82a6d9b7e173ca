"""Tasks that wait for others (`after:`), with a no-op agent (a tiny C program that takes the time
first thing).

    .venv/bin/python bench/dependencies.py [--pairs 50] [--chain 200]

1. release: a task B (`after: A`) waits; then A is dropped. Measured: from A's note arriving in
   Done/ (an inotify watch of the benchmark's own) to B's agent starting (its own clock reading,
   CLOCK_MONOTONIC, in the ledger). One pair at a time.
2. chain: `--chain` notes, each `after:` the one before, dropped at once (the last first, so a
   dependency is often missing when its dependent is first seen), max_parallel 4: every task
   must be done, each started after the one before it reached Done/, none early.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Arrivals, service_in_thread, summary, temp_vault
from runs import build_agent


def note(title: str, after: str | None = None) -> str:
    after_line = f'after: "[[{after}]]"\n' if after else ""
    return f"---\ntitle: {title}\ntype: claude_app\n{after_line}---\nDo {title}.\n"


def ledger_starts(ledger: Path) -> dict[str, int]:
    starts = {}
    for line in ledger.read_text().splitlines():
        task_id, ns = line.split()
        starts.setdefault(task_id, int(ns))
    return starts


def task_id_of(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("task_id:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no task_id in {path}")


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.002)


def release(agent: Path, pairs: int) -> list[float]:
    with temp_vault() as root:
        ledger = root.parent / "ledger"
        os.environ["BENCH_LEDGER"] = str(ledger)
        staging = root.parent / "staging"
        staging.mkdir()
        done = Arrivals(root / "Done")
        latencies = []
        with service_in_thread(
            root, agent="command", agent_command=f"{agent} {{task_id}}", settle_seconds="0.2"
        ):
            for i in range(pairs):
                a, b = f"a{i}", f"b{i}"
                (staging / f"{b}.md").write_text(note(b, after=a))
                os.rename(staging / f"{b}.md", root / "Needs_Action" / f"{b}.md")
                waiting = root / "Needs_Action" / f"{b}.md"
                wait_for(lambda w=waiting: "waiting_for:" in w.read_text(), 10, f"{b} waiting")
                (staging / f"{a}.md").write_text(note(a))
                os.rename(staging / f"{a}.md", root / "Needs_Action" / f"{a}.md")
                a_done = done.wait(f"{a}.md", 20)
                done.wait(f"{b}.md", 20)
                b_id = task_id_of(root / "Done" / f"{b}.md")
                latencies.append((ledger_starts(ledger)[b_id] - a_done) / 1e6)
        done.close()
    return latencies


def chain(agent: Path, n: int) -> None:
    with temp_vault() as root:
        ledger = root.parent / "ledger"
        os.environ["BENCH_LEDGER"] = str(ledger)
        staging = root.parent / "staging"
        staging.mkdir()
        names = [f"c{i:03d}" for i in range(n)]
        for i, name in enumerate(names):
            (staging / f"{name}.md").write_text(note(name, names[i - 1] if i else None))
        done = Arrivals(root / "Done")
        with service_in_thread(
            root,
            agent="command",
            agent_command=f"{agent} {{task_id}}",
            settle_seconds="0.2",
            max_parallel="4",
        ):
            t0 = time.monotonic()
            for name in reversed(names):
                os.rename(staging / f"{name}.md", root / "Needs_Action" / f"{name}.md")
            done.wait_count(n, 600)
            elapsed = time.monotonic() - t0
        done.close()
        ids = [task_id_of(root / "Done" / f"{name}.md") for name in names]
        starts = ledger_starts(ledger)
        runs = len(ledger.read_text().splitlines())
        arrived = [done.seen[f"{name}.md"] for name in names]
    order = sorted(ids, key=lambda t: starts[t])
    early = sum(1 for i in range(1, n) if starts[ids[i]] <= arrived[i - 1])
    gaps = [(starts[ids[i]] - arrived[i - 1]) / 1e6 for i in range(1, n)]
    print(
        f"chain of {n} (each after the one before, dropped last first, max_parallel 4): "
        f"{len(arrived)}/{n} done in {elapsed:.2f} s; agent runs {runs} for {len(starts)} "
        f"tasks; started in chain order: {'yes' if order == ids else 'NO'}; "
        f"started before the one before was in Done/: {early}"
    )
    print(summary("  previous in Done/ -> next started", gaps))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--chain", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agent = build_agent(Path(tmp))
        latencies = release(agent, args.pairs)
        print("no-op agent (C, takes CLOCK_MONOTONIC first); B waits `after:` A, then A drops")
        print(summary("A in Done/ -> B's agent started", latencies))
        p50 = sorted(latencies)[len(latencies) // 2]
        print(f"target: p50 <= 50 ms: {'met' if p50 <= 50 else 'MISSED'}")
        chain(agent, args.chain)


if __name__ == "__main__":
    main()
