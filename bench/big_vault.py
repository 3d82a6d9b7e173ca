"""The service's CPU per task in a vault with many finished notes, against an empty vault.

    .venv/bin/python bench/big_vault.py [--done 100000] [--tasks 40] [--rate 4]

The service runs as a real process (`python -m ai_employee run`, whichever ai_employee the
PYTHONPATH gives, so `bench/ab.sh` can run it on two trees). Tasks are renamed into
Needs_Action/ at `--rate` per second; a no-op agent runs each. The service's own CPU (its
utime + stime from /proc, the agents not counted) from the first drop until the last task is
in Done/, divided by the tasks, is compared between an empty vault and one whose Done/ holds
`--done` notes (each with its plan in Plans/, as a real vault has). Target: within 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, note_text, temp_vault

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, not the children


def ready(root: Path) -> bool:
    """The service logged "service ready" (its first reconcile is done)."""
    return any('"service ready"' in p.read_text() for p in (root / "Logs").glob("*.jsonl"))


def fill_done(root: Path, n: int) -> None:
    """n finished notes in Done/ and their plans in Plans/, written directly."""
    done, plans = root / "Done", root / "Plans"
    for i in range(n):
        (done / f"old {i:06d}.md").write_text(
            f"---\ntitle: Old {i}\ntype: claude_app\ntask_id: old{i:06d}\nstatus: done\n"
            f"plan: '[[PLAN_old {i:06d}]]'\n---\nDone long ago.\n\n## Result\n\n**success**\n"
        )
        (plans / f"PLAN_old {i:06d}.md").write_text(f"---\ntask_id: old{i:06d}\n---\nplan\n")


def measure(done_notes: int, tasks: int, rate: float) -> tuple[float, float]:
    """(CPU ms per task, seconds to start) for one vault."""
    with temp_vault() as root:
        fill_done(root, done_notes)
        staging = root.parent / "staging"
        staging.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AI_EMPLOYEE_")},
            "AI_EMPLOYEE_VAULT": str(root),
            "AI_EMPLOYEE_AGENT": "command",
            "AI_EMPLOYEE_AGENT_COMMAND": shutil.which("true") or "/bin/true",
            "AI_EMPLOYEE_SETTLE_SECONDS": "0.2",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "run"],
            env=env,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            t0 = time.monotonic()
            while not ready(root):  # the first reconcile is done
                if proc.poll() is not None or time.monotonic() - t0 > 300:
                    raise RuntimeError("the service did not start")
                time.sleep(0.05)  # the benchmark's own wait, not the service's
            ready_s = time.monotonic() - t0
            time.sleep(2.0)  # let the start-up work settle before counting
            names = [f"t{i:03d}.md" for i in range(tasks)]
            for name in names:
                (staging / name).write_text(note_text(0))
            cpu0 = cpu_seconds(proc.pid)
            start = time.monotonic()
            for i, name in enumerate(names):
                time.sleep(max(0.0, start + i / rate - time.monotonic()))  # the drop rate
                os.rename(staging / name, root / "Needs_Action" / name)
            deadline = time.monotonic() + 120
            while not all((root / "Done" / n).exists() for n in names):
                if time.monotonic() > deadline:
                    raise RuntimeError("the tasks did not finish")
                time.sleep(0.05)
            time.sleep(1.5)  # the last redraw of Dashboard.md belongs to these tasks too
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return cpu / tasks * 1000, ready_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--done", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rate", type=float, default=4.0, help="tasks dropped per second")
    args = parser.parse_args()
    empty, empty_ready = measure(0, args.tasks, args.rate)
    big, big_ready = measure(args.done, args.tasks, args.rate)
    print(
        f"service CPU per task, {args.tasks} tasks at {args.rate:g}/s, in {BENCH_DIR}: "
        f"empty vault {empty:.2f} ms, {args.done:,} notes in Done/ {big:.2f} ms "
        f"-> {big / empty:.2f}x (target <= 1.5x); ready in {empty_ready:.2f} s and "
        f"{big_ready:.2f} s"
    )


if __name__ == "__main__":
    main()
