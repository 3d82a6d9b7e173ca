"""Start with 10,000 notes in Done/: time to ready; then idle: CPU time and RSS.

    .venv/bin/python bench/startup_idle.py [--done 10000] [--idle 60] [--plans] [--series N]

`--series N`: the same vault is measured twice, side by side: as it is, then with N series notes
in Recurring/ whose next times are hours away (intervals of 3 to 12 h and daily cron times three
or more hours ahead); a series must cost nothing while it waits.

`--plans` gives each finished note its plan, headed by its task's record as the service writes
it (`PLAN_<note> (<task_id>).md`): a vault that has lived with the service (the service reads
every plan's head at start).

Runs the real `ai-employee run` as a child process. "Ready" is the first reconcile finished (the
"service ready" log line), timed from the process's start; CPU time and RSS are read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import temp_vault

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write_series(root: Path, n: int) -> None:
    """n series notes whose next times are hours away (3 h or more from now)."""
    hour = (time.localtime().tm_hour + 4) % 24
    for i in range(n):
        every = f"{3 + i % 10}h" if i % 2 else f'"{i % 60} {hour} * * *"'
        (root / "Recurring" / f"series {i}.md").write_text(
            f"---\ntitle: series {i}\nevery: {every}\ntype: claude_app\n---\nDo it.\n"
        )


def start(root: Path) -> tuple[subprocess.Popen[str], float, dict[str, object]]:
    """`ai-employee run` on the vault, once ready: the process, seconds to ready, the line."""
    env = {**os.environ, "AI_EMPLOYEE_VAULT": str(root)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"service ready"' in line:
            return proc, time.monotonic() - started, json.loads(line)
    raise RuntimeError(f"service exited: {proc.wait()}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(30)
    assert proc.stderr is not None
    proc.stderr.close()


def measure(
    args: argparse.Namespace, series: int
) -> tuple[float, dict[str, object], float, float, str]:
    """Ready time (s), the ready line, idle CPU (s) over args.idle, RSS (MB), and (with
    series) how a second start of the same vault went."""
    with temp_vault() as root:
        done = root / "Done"
        for i in range(args.done):
            (done / f"finished {i}.md").write_text(
                f"---\ntitle: finished {i}\nstatus: done\ntask_id: d{i:07d}\n---\nDone.\n"
            )
            if args.plans:
                (root / "Plans" / f"PLAN_finished {i} (d{i:07d}).md").write_text(
                    f'---\ntask_id: d{i:07d}\nnote: "finished {i}.md"\n'
                    f'where: "Done/finished {i}.md"\nbody_sha256: {i:032x}\nstatus: done\n'
                    f'title: "finished {i}"\ntask: "[[finished {i}]]"\ntype: claude_app\n---\n'
                    f"# Plan: finished {i}\n\n"
                    "## Steps\n- [ ] Build it\n- [ ] Test it\n"
                )
        write_series(root, series)
        second = ""
        proc, ready, entry = start(root)
        time.sleep(2)  # the first look's writes (each series' next time) settle
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(args.idle)  # the measurement itself: nothing happens for this long
        cpu1 = cpu_seconds(proc.pid)
        rss = rss_mb(proc.pid)
        stop(proc)
        if series:
            timed = sum("next_at:" in p.read_text() for p in (root / "Recurring").iterdir())
            if timed != series:
                raise RuntimeError(f"only {timed} of {series} series have a next time")
            again, ready_again, line = start(root)
            stop(again)
            second = (
                f"  a second start of that vault (the series' keys written): ready in "
                f"{ready_again * 1000:.0f} ms ({line['result']})"
            )
    return ready, entry, cpu1 - cpu0, rss, second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--done", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--plans", action="store_true", help="a plan for each finished note")
    parser.add_argument("--series", type=int, default=0, help="compare with N series waiting")
    args = parser.parse_args()
    plans = ", each with its plan" if args.plans else ""
    runs = [0, args.series] if args.series else [0]
    for series in runs:
        ready, entry, cpu, rss, second = measure(args, series)
        with_series = f", {series:,} series in Recurring/ hours away" if series else ""
        print(f"vault with {args.done:,} notes in Done/{plans}{with_series}")
        print(
            f"  process start -> ready: {ready * 1000:.0f} ms "
            f"(first reconcile itself: {entry['result']})"
        )
        print(f"  idle {args.idle:.0f} s: CPU time {cpu:.3f} s, RSS {rss:.1f} MB")
        print(
            f"  targets: ready <= 1 s: {'met' if ready <= 1 else 'MISSED'}; "
            f"idle CPU <= 0.1 s: {'met' if cpu <= 0.1 else 'MISSED'}; "
            f"RSS <= 80 MB: {'met' if rss <= 80 else 'MISSED'}"
        )
        if second:
            print(second)


if __name__ == "__main__":
    main()
