#!/usr/bin/env python3
"""An agent for `agent = "command"`: the whole contract in one small program (docs/AGENTS.md).

    agent_command = "python3 /path/to/notes_agent.py {prompt_file} {workdir}"

It reads the prompt file the service wrote, does its "work" in the work dir (here: it writes
TASK.md with what was asked, and a line per run to runs.log), prints what it does (each line
goes to the task's transcript, the last ones to the note's `## Result`), and exits 0 for done.
Any other exit is a failure the service retries after a pause while attempts are left.
Replace the middle with a call to a real agent; keep the rest.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def section(prompt: str, heading: str) -> str:
    """The text under a `## heading` of the prompt, up to the next heading."""
    _, found, rest = prompt.partition(f"\n## {heading}\n")
    return rest.split("\n## ", 1)[0].strip() if found else ""


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: notes_agent.py PROMPT_FILE WORKDIR", file=sys.stderr)
        return 2  # a failure: the service retries, then fails the task with this line
    prompt_file, workdir = Path(argv[1]), Path(argv[2])
    prompt = prompt_file.read_text(encoding="utf-8")
    titles = [line[8:] for line in prompt.splitlines() if line.startswith("# Task: ")]
    title = titles[0] if titles else ""
    task_id = os.environ.get("AI_EMPLOYEE_TASK_ID", "")
    print(f"task {task_id}: {title}", flush=True)  # flushed: the page shows it at once
    if os.getcwd() != str(workdir.resolve()):
        print(f"agents start in their work dir; this is {os.getcwd()}", file=sys.stderr)
        return 1
    asked = section(prompt, "What was asked")
    (workdir / "TASK.md").write_text(f"# {title}\n\n{asked}\n", encoding="utf-8")
    print("wrote TASK.md", flush=True)
    with (workdir / "runs.log").open("a", encoding="utf-8") as log:
        log.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {task_id}\n")
    print(f"done: {len(asked.split())} words asked, kept in TASK.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
