"""The pictures in docs/img/ (the README and docs/WEB.md show them), made for real: a demo vault,
`ai-employee run --dashboard` with scripts/demo_agent.py as the agent, and headless Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

DONE = [
    ("Add a --json flag to the report tool", "claude_task", 0.21),
    ("Fix the date parsing in importer", "claude_code", 0.08),
    ("Write a README for the CSV cleaner", "claude_task", 0.05),
    ("Port the backup script to Python", "claude_app", 0.34),
    ("Unit tests for the invoice module", "claude_code", 0.17),
    ("Rename the config keys", "claude_task", 0.04),
    ("Static site generator for the notes", "claude_app", 0.52),
    ("Dark mode for the timer app", "claude_app", 0.29),
]


def demo_vault(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "ai_employee", "init", "--vault", str(root)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    now = datetime.now(UTC)
    for i, (title, kind, cost) in enumerate(DONE):
        when = (now - timedelta(days=i % 6, hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        (root / "Done" / f"{title}.md").write_text(
            f"---\ntitle: {title}\ntype: {kind}\npriority: normal\ntask_id: done{i:04d}\n"
            f"status: done\ncost_usd: {cost}\nduration_s: {40 + i * 7}\nattempts: 1\n"
            f"completed_at: {when}\n---\nAs asked.\n\n## Result\n\nDone.\n"
        )
    (root / "Failed" / "Migrate the photo library.md").write_text(
        "---\ntitle: Migrate the photo library\ntype: claude_task\npriority: high\n"
        "task_id: fail0001\nstatus: failed\nattempts: 3\ncost_usd: 0.12\n"
        "error: 'agent exited 1: disk quota exceeded in apps/tasks/fail0001'\n---\nMove them.\n"
    )
    (root / "Needs_Action" / "Tidy the downloads folder.md").write_text(
        "---\ntitle: Tidy the downloads folder\ntype: claude_task\npriority: low\n---\n"
        "Sort files into folders by type.\n"
    )
    (root / "Recurring" / "Weekly briefing.md").write_text(
        '---\ntitle: Weekly briefing\nevery: "0 8 * * 1"\ntype: claude_task\n---\n'
        "Summarise last week's commits in apps/.\n"
    )
    (root / "Recurring" / "Check the backups.md").write_text(
        "---\ntitle: Check the backups\nevery: 6h\ntype: claude_code\n---\n"
        "Restore the newest backup into a temp dir and compare.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aie-shots-") as tmp:
        root = Path(tmp) / "vault"
        demo_vault(root)
        agent = (
            f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'demo_agent.py'))} {{workdir}}"
        )
        env = dict(os.environ) | {
            "AI_EMPLOYEE_AGENT": "command",
            "AI_EMPLOYEE_AGENT_COMMAND": agent,
            "AI_EMPLOYEE_DASHBOARD_PORT": "0",
            "AI_EMPLOYEE_DAILY_BUDGET_USD": "1.0",
            "AI_EMPLOYEE_AUTO_EXECUTE_TYPES": "claude_app,claude_code",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "run", "--dashboard", "--vault", str(root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stderr is not None
        base = ""
        for raw in proc.stderr:
            match = re.search(rb"dashboard: (http://\S+)", raw)
            if match:
                base = match.group(1).decode().rstrip("/")
                break
        try:
            (root / "Needs_Action" / "Build a greeter CLI.md").write_text(
                "---\ntitle: Build a greeter CLI\ntype: claude_app\nlanguage: python\n"
                "app: greeter\nreview: true\n---\n"
                "A command `greeter NAME` that prints a greeting, with a test.\n"
            )
            (root / "Needs_Action" / "Document the greeter.md").write_text(
                "---\ntitle: Document the greeter\ntype: claude_task\n"
                'after: "[[Build a greeter CLI]]"\n---\nA README for the greeter.\n'
            )
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=FLAGS
                )
                page = browser.new_page(viewport={"width": 1500, "height": 900})
                page.goto(base + "/")
                page.wait_for_selector("[data-column=running] .card")
                page.wait_for_selector("[data-column=waiting] .card")
                page.wait_for_selector(".card .waits")
                time.sleep(0.5)  # the live fragment settles; a picture, not a test
                page.screenshot(path=str(args.out / "board.png"), full_page=True)
                page.click("[data-column=running] .card .title")
                page.wait_for_selector("text=It runs. Now a test")
                page.screenshot(path=str(args.out / "task-live.png"), full_page=True)
                page.goto(base + "/")
                page.click("[data-column=waiting] .card .title")
                page.wait_for_selector("button[data-act=approve]")
                page.screenshot(path=str(args.out / "approval.png"), full_page=True)
                phone = browser.new_context(
                    viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
                ).new_page()
                phone.goto(base + "/")
                phone.wait_for_selector("[data-column=waiting] .card")
                time.sleep(0.5)
                phone.screenshot(path=str(args.out / "board-phone.png"))  # the first screen
                for work in (Path(tmp) / "apps").glob("*/*"):
                    (work / "go").touch()
                reviewed = root / "Pending_Approval" / "Build a greeter CLI.md"
                for _ in range(300):  # the run ends: its work waits for review
                    if reviewed.exists() and "status: in_review" in reviewed.read_text():
                        break
                    time.sleep(0.1)
                task_id = re.search(r"task_id: (\w+)", reviewed.read_text())
                assert task_id is not None
                page.goto(f"{base}/task/{task_id.group(1)}")
                page.wait_for_selector("#changes")
                page.screenshot(path=str(args.out / "review.png"), full_page=True)
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    for name in ("board", "task-live", "approval", "board-phone", "review"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
