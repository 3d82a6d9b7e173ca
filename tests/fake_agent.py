"""A tiny agent for tests, run as a real process by the command backend.

    python fake_agent.py TASK_ID WORKDIR PROMPT_FILE

What it does comes from a `behave:` line in the prompt (the note's body):
  ok (default)       write result.txt in the work dir, print a line, exit 0
  fail               print an error, exit 3
  fail-once          fail on the first attempt, succeed on the next (counted in the work dir)
  sleep SECONDS      print "working" then sleep (a long run; cancel and timeouts stop it)
  silent SECONDS     print nothing, sleep (the stall timer stops it)
  sleep-first SECONDS  sleep on the first attempt (a marker in the work dir), succeed after
  grandchild         start a child that sleeps and writes its pid to the work dir, then sleep
  gate PATH          print "waiting", wait (up to 60 s) until PATH exists, then as ok
  written-gate PATH  write result.txt first, then as gate (its work is done before the gate)
Every start and end is appended to $FAKE_LEDGER (task id, event, pid, monotonic ns), so tests can
count runs and check that two runs of one task never overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def ledger(event: str) -> None:
    path = os.environ.get("FAKE_LEDGER")
    if path:
        with open(path, "a") as handle:
            handle.write(f"{sys.argv[1]} {event} {os.getpid()} {time.monotonic_ns()}\n")


def main() -> int:
    task_id, workdir, prompt_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    prompt = prompt_file.read_text()
    behave = "ok"
    for line in prompt.splitlines():
        if line.startswith("behave:"):
            behave = line.split(":", 1)[1].strip()
    ledger("start")
    signal.signal(signal.SIGTERM, lambda *_: (ledger("end"), os._exit(143)))
    assert os.environ["AI_EMPLOYEE_TASK_ID"] == task_id
    assert "CLAUDECODE" not in os.environ
    assert Path.cwd() == workdir
    kind, _, arg = behave.partition(" ")
    try:
        if kind == "fail":
            print("something broke", flush=True)
            return 3
        if kind == "fail-once":
            marker = workdir / "attempted"
            if not marker.exists():
                marker.write_text("1")
                print("first attempt fails", flush=True)
                return 4
        if kind == "sleep-first":
            marker = workdir / "slept"
            if not marker.exists():
                marker.write_text("1")
                print("sleeping on the first attempt", flush=True)
                time.sleep(float(arg))
        if kind == "sleep":
            print("working", flush=True)
            time.sleep(float(arg))
        if kind == "silent":
            time.sleep(float(arg))
        if kind == "written-gate":
            (workdir / "result.txt").write_text(f"done {task_id}\n")
            kind = "gate"
        if kind == "gate":
            print("waiting", flush=True)
            deadline = time.monotonic() + 60
            while not Path(arg).exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # a test's gate: polled by this fake agent only
        if kind == "grandchild":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            (workdir / "grandchild.pid").write_text(str(child.pid))
            print("started a grandchild", flush=True)
            time.sleep(120)
        if not (workdir / "result.txt").exists():
            (workdir / "result.txt").write_text(f"done {task_id}\n")
        print(f"built it for {task_id}", flush=True)
        return 0
    finally:
        ledger("end")


if __name__ == "__main__":
    sys.exit(main())
