"""The cost of a commit per round: drop -> Done with a no-op agent on an app of 10,000 files.

    .venv/bin/python bench/commits.py [--files 10000] [--n 100]
    git worktree add /tmp/old <commit before the commits>
    BENCH=commits.py bash bench/ab.sh /tmp/old 3 --n 100      # with commits against without

Every task works on one app (`language: txt`, `app: big`) whose work dir holds `--files` small
files; the agent changes one line of one file (`sh -c 'echo ... >> log.txt'`), so each round
makes a real commit in a work dir of that size. The first task (the app's first commit of
every file) is a warm-up, not measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, Arrivals, pct, service_in_thread, summary, temp_vault

AGENT = "sh -c 'echo \"$AI_EMPLOYEE_TASK_ID\" >> log.txt'"


def note(i: int) -> str:
    return f"---\ntitle: Bench {i}\ntype: claude_app\nlanguage: txt\napp: big\n---\nAdd a line.\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    with temp_vault() as root:
        app = root.parent / "apps" / "txt" / "big"
        for i in range(args.files):
            folder = app / f"d{i // 500:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i:05d}.txt").write_text(f"file {i}\n")
        staging = root.parent / "staging"
        staging.mkdir()
        done = Arrivals(root / "Done")
        to_done = []
        with service_in_thread(root, agent="command", agent_command=AGENT, settle_seconds="0.2"):
            for i in range(args.n + 1):
                staged = staging / f"c{i}.md"
                staged.write_text(note(i))
                t0 = time.monotonic_ns()
                os.rename(staged, root / "Needs_Action" / f"c{i}.md")
                arrived = done.wait(f"c{i}.md", 120)
                if i:  # the first: the app's first commit of every file
                    to_done.append((arrived - t0) / 1e6)
        done.close()
        commits = (app / ".git").is_dir()
    print(
        f"commits in {BENCH_DIR}: a work dir of {args.files} files, "
        f"{'a commit per round' if commits else 'no repository (a tree before the commits)'}"
    )
    print(summary("drop -> Done", to_done))
    print(f"  p50 {pct(to_done, 50):.1f} ms, p99 {pct(to_done, 99):.1f} ms")


if __name__ == "__main__":
    main()
