"""The review page's figures: a task whose change is `--lines` lines over `--files` files.

    .venv/bin/python bench/review_page.py [--files 50] [--lines 5000] [--renders 50] [--rounds 30]

- task page render: GET /task/<id> of a task in review (its Changes: every file's diff,
  highlighted), from one keep-alive HTTP client, `--renders` times;
- raw diff: GET /diff/<id> of the same change;
- commit -> browser: a running task's round is committed (WorkRepo.commit_round, then its
  transcript's `commit` line, as rounds.py does) and Chromium's MutationObserver sees the
  round's new file in the page's Changes (Python's and the browser's wall clocks, one host).
The page is served in this process (`serve_in_thread`, as `ai-employee dashboard` does), with no
service running, so the running task stays as it is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx2
from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summary, temp_vault
from web import FLAGS

from ai_employee.base.config import load_config
from ai_employee.running.workrepo import WorkRepo
from ai_employee.surfaces.web.server import serve_in_thread


def a_change(work: Path, files: int, lines: int) -> tuple[str, str]:
    """`files` files of 200 lines committed as the base, then `lines` of their lines replaced
    (so the diff has `lines` additions and as many removals), committed as one round."""
    for i in range(files):
        (work / f"src{i:02d}.py").write_text("".join(f"value_{j} = {j}\n" for j in range(200)))
    repo = WorkRepo(work, "Review bench", "reviewbn", 1 << 30)
    base = repo.begin(None)
    per_file = lines // files
    for i in range(files):
        path = work / f"src{i:02d}.py"
        old = path.read_text().splitlines(keepends=True)
        new = [f"changed_{j} = '<{j}>'  # a comment\n" for j in range(per_file)]
        path.write_text("".join(new + old[per_file:]))
    repo.commit_round(1, 1)
    return base, repo.changes(base).head


def renders(base_url: str, path: str, n: int) -> list[float]:
    times = []
    with httpx2.Client() as client:
        for _ in range(3):
            client.get(base_url + path)  # warm
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get(base_url + path)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.status_code
    return times


WATCH_FILES = """() => {
  window.seen = {};
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    for (const d of document.querySelectorAll('details.file')) {
      const m = /^round(\\d+)\\.txt$/.exec(d.dataset.path);
      if (m && !(m[1] in window.seen)) window.seen[m[1]] = now;
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


def commits_to_page(browser: Browser, root: Path, work: Path, base_url: str, n: int) -> list[float]:
    """A running task in `work`; each round writes round<i>.txt, is committed, and its
    transcript says so: until the page shows that file in its Changes."""
    task_id = "runround"
    transcript = root / "Logs" / "tasks" / f"{task_id}.jsonl"
    repo = WorkRepo(work, "Running", task_id, 1 << 30)
    base = repo.begin(None)
    transcript.write_text(
        json.dumps({"ts": "", "kind": "base", "sha": base})
        + "\n"
        + json.dumps({"ts": "", "kind": "start", "attempt": 1})
        + "\n"
    )
    (root / "Needs_Action" / "Running.md").write_text(
        f"---\ntitle: Running\ntask_id: {task_id}\nstatus: executing\nlanguage: txt\n"
        f"app: live\nstarted_at: 2026-12-06T10:00:00Z\n---\nrun\n"
    )
    page = browser.new_page()
    deadline = time.monotonic() + 30
    while page.goto(f"{base_url}/task/{task_id}").status != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the task page did not appear")
        time.sleep(0.05)
    page.wait_for_function("document.getElementById('live-state').textContent.includes('live')")
    page.evaluate(WATCH_FILES)
    latencies = []
    with transcript.open("a") as handle:
        for i in range(n):
            (work / f"round{i}.txt").write_text(f"round {i}\n")
            committed = repo.commit_round(1, i + 1)
            made = time.time() * 1000
            line = {"ts": "", "kind": "commit", "round": i + 1, "sha": committed.sha}
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            page.wait_for_function(f"window.seen['{i}'] !== undefined", timeout=10_000)
            latencies.append(page.evaluate(f"window.seen['{i}']") - made)
    page.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    with temp_vault() as root:
        apps = root.parent / "apps"
        review = apps / "txt" / "review"
        review.mkdir(parents=True)
        live = apps / "txt" / "live"
        live.mkdir(parents=True)
        base, head = a_change(review, args.files, args.lines)
        (root / "Pending_Approval" / "Review.md").write_text(
            f"---\ntitle: Review\ntask_id: reviewbn\nstatus: in_review\nlanguage: txt\n"
            f"app: review\nbase_commit: {base}\nhead_commit: {head}\n---\nreview\n"
        )
        config = load_config(root, env={})
        running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
        try:
            url = f"http://127.0.0.1:{running.address.port}"
            deadline = time.monotonic() + 30
            while httpx2.get(f"{url}/task/reviewbn").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the task page did not appear")
                time.sleep(0.05)
            page = httpx2.get(f"{url}/task/reviewbn").text
            shown = page.count('<details class="file"')
            assert shown == args.files, f"{shown} files shown"
            task_page = renders(url, "/task/reviewbn", args.renders)
            raw = renders(url, f"/diff/reviewbn?base={base}&head={head}", args.renders)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=FLAGS
                )
                try:
                    rounds = commits_to_page(browser, root, live, url, args.rounds)
                finally:
                    browser.close()
        finally:
            running.stop()
    print(
        f"a change of {args.lines:,} lines (+{args.lines:,} -{args.lines:,}) over {args.files} "
        f"files, {len(page):,} bytes of page"
    )
    print(summary("task page (Changes)", task_page))
    print(summary("raw diff", raw))
    print(summary("commit -> browser", rounds))


if __name__ == "__main__":
    main()
