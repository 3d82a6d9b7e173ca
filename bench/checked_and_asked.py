"""The figures of checked work, permission requests and usage limits, with the real Claude CLI.

    .venv/bin/python bench/checked_and_asked.py [--reset-seconds 60]

The service runs in a thread on a temp vault; the real Claude Code CLI (pinned, from
scripts/setup.sh) talks to the fake Messages API on 127.0.0.1 with a script per scenario:

1. verify: a first round that writes a broken app.py, a second that fixes it (done, 2 rounds,
   both costs); and a task whose check never passes (failed after max_rounds);
2. asks: a refused `python3 build.py` (Pending_Approval/), approved with `ai-employee approve`,
   resumed in the same session with that command allowed; a second task's request rejected;
3. usage limit: logged in with CLAUDE_CODE_OAUTH_TOKEN, the first request answered with the
   API's usage-limit 429 whose reset is `--reset-seconds` ahead, three tasks queued: attempts,
   and when each run started, against `resetsAt`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import claude_against  # noqa: E402

from ai_employee.notes.vault import Folder, Vault, init_vault  # noqa: E402
from tests.claude_harness import bash, text, write  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.service_harness import running_service, svc_config, wait_status  # noqa: E402

CLAUDE = ROOT / ".cache" / "claude-code" / "node_modules" / ".bin" / "claude"
APP = "---\ntitle: {title}\ntype: claude_app\nlanguage: py\napp: {app}\n{more}---\n{body}\n"


def drop(vault: Vault, name: str, body: str) -> Path:
    staging = vault.root.parent / "staging"
    staging.mkdir(exist_ok=True)
    (staging / name).write_text(body)
    target = vault.folder(Folder.NEEDS_ACTION) / name
    os.rename(staging / name, target)
    return target


def person(cli: list[str], verb: str, task_id: str, vault: Vault) -> None:
    """`ai-employee VERB TASK` as a person types it; its error said if it fails."""
    done = subprocess.run(
        [*cli, verb, task_id, "--vault", str(vault.root)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"ai-employee {verb} {task_id}: exit {done.returncode}: {done.stderr}")


def show(name: str, meta: dict[str, Any], *keys: str) -> None:
    print(f"{name}: " + " ".join(f"{k}={meta.get(k)!r}" for k in keys))


def records(vault: Vault, task_id: str) -> list[dict[str, Any]]:
    path = vault.transcripts / f"{task_id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def round_costs(vault: Vault, task_id: str) -> list[float]:
    costs = []
    for r in records(vault, task_id):
        if r["kind"] == "out" and '"type":"result"' in r["line"]:
            costs.append(float(json.loads(r["line"]).get("total_cost_usd") or 0))
    return costs


def config(vault: Vault, **more: object) -> Any:
    return svc_config(
        vault,
        agent="claude",
        claude_path=str(CLAUDE),
        retry_initial_seconds=0,
        retry_max_seconds=0,
        **more,
    )


def scenario_verify(vault: Vault, fake: FakeAnthropic) -> None:
    print("== 1. verify: rounds in one session")
    fake.enqueue(
        write("app.py", "print('ok'\n"),
        text("Wrote app.py."),
        write("app.py", "print('ok')\n"),
        text("Fixed it."),
        write("never.py", "raise SystemExit('still broken')\n"),
        text("Done."),
        text("It works, I think."),
        text("Surely now."),
    )
    with running_service(config(vault)):
        drop(
            vault,
            "Two.md",
            APP.format(title="Two", app="two", more="verify: python3 app.py\n", body="x"),
        )
        two = wait_status(vault.folder(Folder.DONE) / "Two.md", "done", 120)
        drop(
            vault,
            "Never.md",
            APP.format(title="Never", app="never", more="verify: python3 never.py\n", body="x"),
        )
        never = wait_status(vault.folder(Folder.FAILED) / "Never.md", "failed", 120)
    costs = round_costs(vault, two.task_id)
    sessions = {r["session_id"] for r in records(vault, two.task_id) if r["kind"] == "start"}
    show("Two.md", two.meta, "status", "rounds", "attempts", "cost_usd")
    print(f"  round costs {[f'{c:.6f}' for c in costs]}, sum {sum(costs):.6f}")
    print(f"  sessions used: {len(sessions)}")
    show("Never.md", never.meta, "status", "rounds", "attempts", "error")


def scenario_asks(vault: Vault, fake: FakeAnthropic) -> None:
    print("== 2. permission requests")
    fake.enqueue(
        write("build.py", "open('out.txt', 'w').write('built')\n"),
        bash("python3 build.py"),
        text("Please allow `python3 build.py`."),
    )
    cli = [sys.executable, "-m", "ai_employee"]
    with running_service(config(vault)):
        drop(vault, "Asks.md", APP.format(title="Asks", app="asks", more="", body="Build it."))
        held = wait_status(
            vault.folder(Folder.PENDING_APPROVAL) / "Asks.md", "pending_approval", 120
        )
        show("Asks.md in Pending_Approval/", held.meta, "status", "attempts", "requested_tools")
        asked_line = next(line for line in held.body.splitlines() if line.startswith("- Bash"))
        print(f"  Result shows: {asked_line}")
        fake.enqueue(bash("python3 build.py"), text("Built out.txt."))
        person(cli, "approve", held.task_id, vault)
        done = wait_status(vault.folder(Folder.DONE) / "Asks.md", "done", 120)
        fake.enqueue(bash("npm install"), text("I need npm install."))
        drop(vault, "Npm.md", APP.format(title="Npm", app="npm", more="", body="x"))
        npm = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Npm.md", "pending_approval", 120)
        person(cli, "reject", npm.task_id, vault)
        rejected = wait_status(vault.folder(Folder.REJECTED) / "Npm.md", "rejected", 60)
    starts = [r for r in records(vault, done.task_id) if r["kind"] == "start"]
    resumed = starts[-1]
    argv = resumed["argv"]
    allowed = [argv[i + 1] for i, a in enumerate(argv) if a == "--allowedTools"]
    out = (vault.root.parent / "apps" / "py" / "asks" / "out.txt").read_text()
    show("Asks.md approved", done.meta, "status", "attempts", "granted_tools")
    same = starts[0]["session_id"] == resumed["session_id"]
    print(f"  resumed={resumed['resume']} same session={same} --allowedTools {allowed}")
    print(f"  out.txt (written by the allowed command): {out!r}")
    show("Npm.md rejected", rejected.meta, "status", "granted_tools")
    print(f"  in Rejected/: {(vault.folder(Folder.REJECTED) / 'Npm.md').exists()}")


def scenario_limit(vault: Vault, fake: FakeAnthropic, reset_seconds: int) -> None:
    print(f"== 3. usage limit, reset {reset_seconds} s ahead, three tasks queued")
    os.environ.pop("ANTHROPIC_API_KEY", None)
    os.environ["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-bench"
    resets_at = int(time.time()) + reset_seconds
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(resets_at),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }
    fake.enqueue(
        {
            "kind": "error",
            "status": 429,
            "type": "rate_limit_error",
            "message": "limit",
            "headers": headers,
        }
    )
    fake.enqueue(*(text(f"done {n}") for n in range(3)))
    names = [f"Limit{n}.md" for n in (1, 2, 3)]
    before = len(fake.main_requests())
    t0 = time.time()
    with running_service(config(vault, max_attempts=1)):
        for name in names:
            drop(vault, name, APP.format(title=name[:-3], app=name[:-3].lower(), more="", body="x"))
        dash_line = ""
        deadline = time.monotonic() + 30
        while not dash_line and time.monotonic() < deadline:
            dash_line = next(
                (
                    line
                    for line in vault.dashboard.read_text().splitlines()
                    if "paused until" in line
                ),
                "",
            )
            time.sleep(0.2)
        status = subprocess.run(
            [sys.executable, "-m", "ai_employee", "status", "--vault", str(vault.root)],
            capture_output=True,
            text=True,
        )
        done = [
            wait_status(vault.folder(Folder.DONE) / n, "done", reset_seconds + 120) for n in names
        ]
    reset = datetime.fromtimestamp(resets_at, UTC)
    print(f"resetsAt {reset:%H:%M:%S} UTC; tasks dropped {t0 - resets_at:+.1f} s before it")
    print(f"Dashboard.md: {dash_line.strip()}")
    paused = [line for line in status.stdout.splitlines() if "paused" in line]
    print(f"ai-employee status: {paused[0] if paused else '(no pause line)'}")
    for name, d in zip(names, done, strict=True):
        starts = [r["ts"] for r in records(vault, d.task_id) if r["kind"] == "start"]
        rel = [f"{datetime.fromisoformat(s).timestamp() - resets_at:+.1f} s" for s in starts]
        show(name, d.meta, "status", "attempts")
        print(f"  its runs started at (against resetsAt): {rel}")
    reqs = fake.main_requests()[before:]
    print(
        "API requests (vs resetsAt): "
        + ", ".join(f"{r['t'] - resets_at:+.1f} s ({r['step']})" for r in reqs)
    )
    print(f"scenario took {time.time() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reset-seconds", type=int, default=60)
    args = parser.parse_args()
    if not CLAUDE.exists():
        raise SystemExit(f"{CLAUDE} is missing: run scripts/setup.sh")
    fake = FakeAnthropic().start()
    with tempfile.TemporaryDirectory(prefix="aie-bench-") as tmp:
        claude_against(fake.url, Path(tmp))
        out = subprocess.run([str(CLAUDE), "--version"], capture_output=True, text=True)
        when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        print(f"claude {out.stdout.strip()}; python {sys.version.split()[0]}; {when}")
        for n, run in enumerate(
            (
                lambda v: scenario_verify(v, fake),
                lambda v: scenario_asks(v, fake),
                lambda v: scenario_limit(v, fake, args.reset_seconds),
            )
        ):
            root = Path(tmp) / f"v{n}" / "vault"
            init_vault(root, root.parent / "apps")
            run(Vault(root))
    fake.stop()


if __name__ == "__main__":
    main()
