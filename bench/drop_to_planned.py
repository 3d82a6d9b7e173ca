"""Drop -> planned latency: the service beside a bare reference handler, interleaved, one process.

    .venv/bin/python bench/drop_to_planned.py [--n 1000]

Each note is written outside the vault and renamed into Needs_Action (how scripts and sync tools
deliver); the clock stops when the note's plan and `status: planned` are written (fsync'd).
The reference is the near-limit baseline: a bare watchdog handler that parses the note and writes
the plan and the status with fsync, nothing else. Drops alternate between the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import yaml
from watchdog.events import (
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import note_text, pct, service_in_thread, summary, temp_vault, watch_steps


def fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)


class Reference(FileSystemEventHandler):
    """Parse the note, write the plan and the status, with fsync: the least a planner must do."""

    def __init__(self, plans: Path) -> None:
        self.plans = plans
        self.done = threading.Event()
        self.stamp = 0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            path = Path(str(event.dest_path))
        elif isinstance(event, FileCreatedEvent):
            path = Path(str(event.src_path))
        else:
            return
        if path.suffix != ".md" or path.name.startswith("."):
            return
        text = path.read_text()
        _, front, body = text.split("---\n", 2)
        meta = yaml.load(front, Loader=yaml.CSafeLoader)
        if meta.get("status") == "planned":
            return
        fsync_write(
            self.plans / f"PLAN_{path.stem}.md", f"# Plan: {meta['title']}\n{body}".encode()
        )
        fsync_write(path, text.replace("---\n", "---\nstatus: planned\n", 1).encode())
        self.stamp = time.perf_counter_ns()
        self.done.set()


def fsync_cost_ms(root: Path, n: int = 200) -> float:
    """The machine's price of one durable small write (file fsync + folder fsync), p50."""
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fsync_write(root / f"probe{i}", b"x" * 300)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return pct(samples, 50)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    with temp_vault() as root, temp_vault() as ref_root:
        staging = root.parent / "staging"
        staging.mkdir()
        fsync_ms = fsync_cost_ms(staging)
        ref = Reference(ref_root / "Plans")
        observer = Observer()
        observer.schedule(ref, str(ref_root / "Needs_Action"), recursive=False)
        observer.start()
        planned = threading.Event()
        stamps: dict[str, int] = {}

        with service_in_thread(
            root, agent="command", agent_command="sleep 600", shutdown_grace_seconds="0"
        ) as service:

            def on_step(path: Path, step: object, task_id: str) -> None:
                if getattr(step, "action", None) == "plan":
                    stamps[path.name] = time.perf_counter_ns()
                    planned.set()

            watch_steps(service, on_step)
            ours, theirs = [], []
            for i in range(args.n):
                for target_root, latencies in ((root, ours), (ref_root, theirs)):
                    staged = staging / f"n{i}.md"
                    staged.write_text(note_text(i))
                    done = planned if target_root is root else ref.done
                    done.clear()
                    t0 = time.perf_counter_ns()
                    os.rename(staged, target_root / "Needs_Action" / f"n{i}.md")
                    if not done.wait(10):
                        raise RuntimeError(f"note {i} not planned in 10 s ({target_root})")
                    end = stamps[f"n{i}.md"] if target_root is root else ref.stamp
                    latencies.append((end - t0) / 1e6)
            overflows = service.stats.overflows
        observer.stop()
        observer.join()
    print("drop -> planned, notes renamed into Needs_Action, fsync on, interleaved")
    print(
        f"this disk: one durable small write (write, fsync, rename, fsync folder) p50 "
        f"{fsync_ms:.3f} ms; both sides make two"
    )
    print(summary("ai-employee service", ours))
    print(summary("reference (bare handler)", theirs))
    print(
        f"p50 ratio {pct(ours, 50) / pct(theirs, 50):.2f}x   "
        f"p99 ratio {pct(ours, 99) / pct(theirs, 99):.2f}x   overflows {overflows}"
    )
    print(
        f"targets: p50 <= 5 ms: {'met' if pct(ours, 50) <= 5 else 'MISSED'}; "
        f"p99 <= 5x reference p99: {'met' if pct(ours, 99) <= 5 * pct(theirs, 99) else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
