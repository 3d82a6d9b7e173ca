"""The web page's figures, each in an empty vault and in one whose Done/ holds `--done` notes.

    .venv/bin/python bench/web.py [--done 10000] [--renders 300] [--lines 100] [--creates 15]

- board render: GET / (the whole page, chart included) and GET /board (the fragment a live
  update fetches), from one keep-alive HTTP client, `--renders` times each;
- transcript line -> browser: a line appended to a running task's transcript, until Chromium's
  MutationObserver sees it on the task page (Python's and the browser's wall clocks, one host);
- create -> Done: the person clicks "create" on /new; a second tab on the board sees the card
  arrive in the Done column. The real service runs (`ai-employee run --dashboard`, a process),
  with a no-op agent (`true`) and the template planner.
Every figure comes from the same run, the two vaults side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct, summary, temp_vault

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fill_done(root: Path, n: int) -> None:
    """`n` finished notes in Done/ (with cost and completion), each with its plan."""
    done, plans = root / "Done", root / "Plans"
    for i in range(n):
        day = 1 + i % 28
        (done / f"old {i:06d}.md").write_text(
            f"---\ntitle: Old task {i}\ntype: claude_app\npriority: normal\ntask_id: old{i:06d}\n"
            f"status: done\nplan: '[[PLAN_old {i:06d} (old{i:06d})]]'\ncost_usd: 0.0{i % 9 + 1}\n"
            f"completed_at: 2026-11-{day:02d}T10:00:00Z\n---\nDid thing {i}.\n\n## Result\n\nok\n"
        )
        (plans / f"PLAN_old {i:06d} (old{i:06d}).md").write_text(
            f"---\ntask_id: old{i:06d}\n---\n## Steps\n1. thing {i}\n"
        )


def start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ) | {
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": "true",
        "AI_EMPLOYEE_DASHBOARD_PORT": "0",
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run", "--dashboard", "--vault", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        match = re.search(rb"dashboard: (http://\S+)", raw)
        if match:
            base = match.group(1).decode().rstrip("/")
            break
    else:
        raise RuntimeError(f"the service did not start: exit {proc.wait()}")
    deadline = time.monotonic() + 120
    while not httpx2.get(f"{base}/status").json()["running"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not take the lock")
        time.sleep(0.05)
    return proc, base


def renders(base: str, n: int) -> tuple[list[float], list[float]]:
    page, fragment = [], []
    with httpx2.Client() as client:
        for path, into in (("/", page), ("/board", fragment)):
            for _ in range(5):
                client.get(base + path)  # warm
            for _ in range(n):
                t0 = time.perf_counter()
                response = client.get(base + path)
                into.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
    return page, fragment


WATCH_TURNS = """() => {
  window.seen = {};
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    for (const pre of document.querySelectorAll('#turns pre')) {
      const m = /^mark-(\\d+)$/.exec(pre.textContent);
      if (m && !(m[1] in window.seen)) window.seen[m[1]] = now;
    }
  }).observe(document.getElementById('turns'), {childList: true, subtree: true});
}"""


def transcript_lines(browser: Browser, root: Path, base: str, n: int) -> list[float]:
    """A task that is running (status executing, with a transcript) gets lines appended."""
    task_id = "livelive"
    (root / "Done" / "Live.md").write_text(
        f"---\ntitle: Live\ntask_id: {task_id}\nstatus: done\n---\nlive\n"
    )
    path = root / "Logs" / "tasks" / f"{task_id}.jsonl"
    path.write_text(json.dumps({"ts": "", "kind": "start", "attempt": 1}) + "\n")
    page = browser.new_page()
    deadline = time.monotonic() + 30
    while page.goto(f"{base}/task/{task_id}").status != 200:  # the page's view has it
        if time.monotonic() > deadline:
            raise RuntimeError("the task page did not appear")
        time.sleep(0.05)
    page.wait_for_function("document.getElementById('live-state').textContent.includes('live')")
    page.evaluate(WATCH_TURNS)
    latencies = []
    with path.open("a") as handle:
        for i in range(n):
            written = time.time() * 1000
            handle.write(json.dumps({"ts": "", "kind": "out", "line": f"mark-{i}"}) + "\n")
            handle.flush()
            page.wait_for_function(f"window.seen['{i}'] !== undefined", timeout=10_000)
            latencies.append(page.evaluate(f"window.seen['{i}']") - written)
    page.close()
    return latencies


WATCH_DONE = """() => {
  new MutationObserver(() => {
    if (window.doneAt !== undefined || !window.want) return;
    for (const a of document.querySelectorAll('[data-column=done] .card .title')) {
      if (a.textContent === window.want) window.doneAt = performance.timeOrigin + performance.now();
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


def creates(browser: Browser, base: str, n: int) -> list[float]:
    board = browser.new_page()
    form = browser.new_page()
    board.goto(base + "/")
    board.wait_for_function("document.getElementById('live-state') !== undefined")
    board.evaluate(WATCH_DONE)
    latencies = []
    for i in range(n):
        title = f"Bench create {i} {time.monotonic_ns()}"
        board.evaluate("(title) => { window.doneAt = undefined; window.want = title; }", title)
        form.goto(base + "/new")
        form.fill("input[name=title]", title)
        clicked = form.evaluate("performance.timeOrigin + performance.now()")
        form.click("#create")
        board.wait_for_function("window.doneAt !== undefined", timeout=60_000)
        latencies.append(board.evaluate("window.doneAt") - clicked)
    board.close()
    form.close()
    return latencies


def measure(done: int, args: argparse.Namespace, browser: Browser) -> dict[str, list[float]]:
    with temp_vault() as root:
        fill_done(root, done)
        proc, base = start(root)
        try:
            page, fragment = renders(base, args.renders)
            lines = transcript_lines(browser, root, base, args.lines)
            made = creates(browser, base, args.creates)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return {"board page": page, "board fragment": fragment, "line -> browser": lines,
            "create -> Done": made}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--done", type=int, default=10_000)
    parser.add_argument("--renders", type=int, default=300)
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--creates", type=int, default=15)
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            results = {0: measure(0, args, browser), args.done: measure(args.done, args, browser)}
        finally:
            browser.close()
    for done, figures in results.items():
        print(f"-- {done:,} notes in Done/")
        for name, ms in figures.items():
            print(summary(name, ms))
    print("-- ratio (p50, big vault / empty vault)")
    for name in results[0]:
        print(f"{name:<34} {pct(results[args.done][name], 50) / pct(results[0][name], 50):.2f}x")


if __name__ == "__main__":
    main()
