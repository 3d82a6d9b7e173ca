"""Added time of the service over a bare `claude -p` running the same scripted task, same argv.

    .venv/bin/python bench/claude_overhead.py [--pairs 30]

Both sides run the real Claude Code CLI (pinned, from scripts/setup.sh) against the fake Messages
API on 127.0.0.1 with the same script (a Write, then a final answer). The bare side runs the argv
the service builds, with the prompt file on stdin, and is timed from spawn to exit. The service
side is timed from the note's rename into Needs_Action to the note recorded in Done/. Pairs are
interleaved; the figure is the median (and p90) of the per-pair differences.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import Arrivals, claude_against, pct, service_in_thread, temp_vault  # noqa: E402

from ai_employee.base.config import load_config  # noqa: E402
from ai_employee.running.agents.base import RunSpec  # noqa: E402
from ai_employee.running.agents.claude import ClaudeAgent  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402

CLAUDE = ROOT / ".cache" / "claude-code" / "node_modules" / ".bin" / "claude"
NOTE = "---\ntitle: Overhead {i}\ntype: claude_app\nlanguage: txt\napp: app{i}\n---\nWrite it.\n"


def script(fake: FakeAnthropic) -> None:
    fake.enqueue(
        {
            "kind": "tool_use",
            "name": "Write",
            "input": {"file_path": "{cwd}/out.txt", "content": "hello\n"},
        },
        {"kind": "text", "text": "Wrote out.txt."},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()
    fake = FakeAnthropic().start()
    with tempfile.TemporaryDirectory() as tmp:
        claude_against(fake.url, Path(tmp))
        bare_ms, service_ms = [], []
        with temp_vault() as root:
            staging = root.parent / "staging"
            staging.mkdir()
            config = load_config(root, env={"AI_EMPLOYEE_CLAUDE_PATH": str(CLAUDE)})
            agent = ClaudeAgent(config)
            done = Arrivals(root / "Done")
            with service_in_thread(root, agent="claude", claude_path=str(CLAUDE)):
                for i in range(args.pairs):
                    # bare claude -p, the argv the service would build for this task
                    work = Path(tmp) / f"bare{i}"
                    work.mkdir()
                    prompt = Path(tmp) / f"prompt{i}.md"
                    prompt.write_text(f"# Task: Overhead {i}\n\nWrite it.\n")
                    spec = RunSpec(
                        f"bare{i}",
                        "claude_app",
                        prompt,
                        root,
                        work,
                        prompt,
                        1,
                        session_id=f"00000000-0000-4000-8000-{i:012d}",
                        handbook=(root / "Company_Handbook.md").read_text(),
                    )
                    script(fake)
                    t0 = time.monotonic()
                    with prompt.open("rb") as stdin:
                        run = subprocess.run(
                            agent.argv(spec),
                            stdin=stdin,
                            cwd=work,
                            capture_output=True,
                            check=False,
                            timeout=120,
                        )
                    bare_ms.append((time.monotonic() - t0) * 1000)
                    if run.returncode != 0 or not (work / "out.txt").exists():
                        raise RuntimeError(f"bare run failed: {run.stdout[-400:]!r}")
                    # the same task through the service
                    script(fake)
                    staged = staging / f"o{i}.md"
                    staged.write_text(NOTE.format(i=i))
                    t0 = time.monotonic_ns()
                    os.rename(staged, root / "Needs_Action" / f"o{i}.md")
                    arrived = done.wait(f"o{i}.md", 120)
                    service_ms.append((arrived - t0) / 1e6)
                    if not (root / "Done" / f"o{i}.md").exists():
                        raise RuntimeError(f"note {i} not in Done/")
    fake.stop()
    diffs = [s - b for s, b in zip(service_ms, bare_ms, strict=True)]
    print(f"{args.pairs} interleaved pairs, real Claude Code CLI vs the fake API, Write + answer")
    print(
        f"bare claude -p (spawn to exit):     median {pct(bare_ms, 50):7.1f} ms  "
        f"p90 {pct(bare_ms, 90):7.1f} ms"
    )
    print(
        f"service (drop to recorded in Done): median {pct(service_ms, 50):7.1f} ms  "
        f"p90 {pct(service_ms, 90):7.1f} ms"
    )
    print(
        f"added by the service, per pair:     median {pct(diffs, 50):7.1f} ms  "
        f"p90 {pct(diffs, 90):7.1f} ms  (target median <= 50 ms: "
        f"{'met' if pct(diffs, 50) <= 50 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
