"""Claude Code as the agent: the real CLI, driven through the service, against a fake API.

The CLI (pinned in scripts/setup.sh) talks to `FakeAnthropic` on 127.0.0.1 and really runs its
tools (Write creates files in the work dir). Without the CLI these tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_employee.notes.vault import Folder, Vault
from ai_employee.running.agents.claude import not_logged_in

from .claude_harness import APP, claude_config, text, write
from .fake_anthropic import FakeAnthropic
from .helpers import wait_for
from .service_harness import cancel, drop, events, note, running_service, svc_config, wait_status

pytestmark = pytest.mark.claude


def test_a_claude_app_goes_from_drop_to_done_through_the_real_cli(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(
        write("index.html", "<h1>Bakery</h1>\n"),
        write("hours.txt", "Mon-Fri 7-18\n"),
        text("Built the bakery page: index.html and hours.txt."),
    )
    with running_service(claude_config(vault, claude_bin)):
        drop(
            vault,
            tmp_path,
            "Bakery.md",
            APP.format(title="Bakery page", app="bakery", body="Opening hours, a form."),
        )
        done = (
            note(vault.folder(Folder.DONE) / "Bakery.md")
            if wait_status(vault.folder(Folder.DONE) / "Bakery.md", "done", 60)
            else None
        )
    assert done is not None
    site = vault.root.parent / "apps" / "html" / "bakery"
    assert (site / "index.html").read_text() == "<h1>Bakery</h1>\n"
    assert (site / "hours.txt").read_text() == "Mon-Fri 7-18\n"
    meta = done.meta
    assert meta["cost_usd"] > 0 and meta["attempts"] == 1 and meta["exit_code"] == 0
    assert len(str(meta["session_id"])) == 36
    assert "Built the bakery page" in done.body and "3 turns" in done.body
    requests = claude_env.main_requests()
    assert len(requests) == 3
    first = requests[0]["body"]
    system = json.dumps(first["system"])
    assert "Build exactly what the task asks" in system  # the handbook, as --append-system-prompt
    user = json.dumps(first["messages"][0])
    assert "Bakery page" in user and "Build exactly what the task asks" not in user
    assert f"Primary working directory: {site}" in json.dumps(first["messages"])
    transcript = (vault.transcripts / f"{done.task_id}.jsonl").read_text()
    assert '\\"type\\":\\"result\\"' in transcript
    assert any(e["result"] == "tool Write" for e in events(vault, "progress"))


def test_429_then_success_is_retried_with_a_fresh_session(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue({"kind": "error", "status": 429}, text("done after a rate limit"))
    with running_service(claude_config(vault, claude_bin)):
        drop(vault, tmp_path, "Rate.md", APP.format(title="Rate", app="rate", body="x"))
        done = wait_status(vault.folder(Folder.DONE) / "Rate.md", "done", 60)
    assert done.meta["attempts"] == 2
    (retry,) = [e for e in events(vault, "run finished") if e["result"] == "retry later"]
    assert retry["error"] == (
        "API error 429: API Error: Request rejected (429) · fake rate_limit_error"
    )
    sessions = [r["headers"].get("x-claude-code-session-id") for r in claude_env.main_requests()]
    assert len(set(sessions)) == 2, "a fresh attempt after a failure starts a new session"


def test_500_until_attempts_are_spent_fails(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue({"kind": "error", "status": 500, "sticky": True})
    with running_service(claude_config(vault, claude_bin, max_attempts=2)):
        drop(vault, tmp_path, "Down.md", APP.format(title="Down", app="down", body="x"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Down.md", "failed", 60)
    assert failed.meta["attempts"] == 2
    assert failed.meta["error"].startswith("API error 500: API Error: 500 fake api_error.")
    assert failed.meta["error"].endswith("(attempt 2 of 2; `ai-employee retry` to try again)")


def test_529_overloaded_is_transient(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue({"kind": "error", "status": 529}, text("ok now"))
    with running_service(claude_config(vault, claude_bin)):
        drop(vault, tmp_path, "Busy.md", APP.format(title="Busy", app="busy", body="x"))
        done = wait_status(vault.folder(Folder.DONE) / "Busy.md", "done", 60)
    assert done.meta["attempts"] == 2
    assert any("API error 529" in (e["error"] or "") for e in events(vault, "run finished"))


def test_a_server_that_never_answers_is_stopped_by_the_stall_timer(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue({"kind": "stall", "sticky": True})
    config = claude_config(vault, claude_bin, stall_seconds=2, max_attempts=1)
    with running_service(config):
        drop(vault, tmp_path, "Silent.md", APP.format(title="Silent", app="silent", body="x"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Silent.md", "failed", 60)
    assert failed.meta["error"].startswith("no output for 2 s (stall_seconds); stopped")


@pytest.mark.parametrize(
    ("script", "overrides", "expected"),
    [
        pytest.param(
            [{"kind": "error", "status": 401, "sticky": True}],
            {},
            "the API refused the credentials (401: Failed to authenticate. API Error: 401 "
            "fake authentication_error); check ANTHROPIC_API_KEY or log in again with `{claude}`",
            id="401",
        ),
        pytest.param(
            [write("a.txt", "a"), text("unreachable")],
            {"max_turns": 1},
            "claude reached max_turns (1) before finishing; raise max_turns in "
            ".ai-employee.toml or split the task",
            id="max-turns",
        ),
    ],
)
def test_permanent_failures_fail_at_once_with_one_actionable_line(
    vault: Vault,
    tmp_path: Path,
    claude_env: FakeAnthropic,
    claude_bin: Path,
    script: list[dict[str, object]],
    overrides: dict[str, object],
    expected: str,
) -> None:
    claude_env.enqueue(*script)
    with running_service(claude_config(vault, claude_bin, **overrides)):
        drop(vault, tmp_path, "Perm.md", APP.format(title="Perm", app="perm", body="x"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Perm.md", "failed", 60)
    assert failed.meta["attempts"] == 1, "a permanent failure is not retried"
    assert failed.meta["error"] == expected.replace("{claude}", str(claude_bin))


def test_not_logged_in_is_permanent(
    vault: Vault,
    tmp_path: Path,
    claude_env: FakeAnthropic,
    claude_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    with running_service(claude_config(vault, claude_bin)):
        drop(vault, tmp_path, "Login.md", APP.format(title="Login", app="login", body="x"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Login.md", "failed", 60)
    assert failed.meta["error"] == not_logged_in(str(claude_bin))
    assert f"run `{claude_bin}` once and log in" in failed.meta["error"]
    assert claude_env.main_requests() == []


def test_a_missing_binary_is_permanent(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    missing = tmp_path / "nowhere" / "claude"
    with running_service(claude_config(vault, claude_bin, claude_path=str(missing))):
        drop(vault, tmp_path, "Bin.md", APP.format(title="Bin", app="bin", body="x"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Bin.md", "failed", 30)
    assert failed.meta["error"] == (
        f"claude not found at '{missing}' (No such file or directory); install it "
        "(npm install -g @anthropic-ai/claude-code) or set claude_path"
    )


def test_cancel_mid_run_stops_claude(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue({"kind": "hang"})
    with running_service(claude_config(vault, claude_bin)):
        path = drop(vault, tmp_path, "Stop.md", APP.format(title="Stop", app="stop", body="x"))
        running = wait_status(path, "executing", 30)
        wait_for(lambda: claude_env.main_requests(), 30, "claude to call the API")
        started = time.monotonic()
        assert cancel(vault, running.task_id).returncode == 0
        wait_status(vault.folder(Folder.DONE) / "Stop.md", "cancelled", 30)
        assert time.monotonic() - started < 5


def test_sigterm_then_the_retry_resumes_the_same_session(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    # The first turn's answer is held back until long after the service has stopped (grace 0):
    # answered at once, the CLI could finish the run before the stop on a busy machine.
    claude_env.enqueue({"kind": "sleep", "seconds": 30, "then": text("first turn answered")})
    config = claude_config(vault, claude_bin)
    with running_service(config):
        path = drop(
            vault, tmp_path, "Resume.md", APP.format(title="Resume", app="resume", body="x")
        )
        running = wait_status(path, "executing", 30)
        wait_for(lambda: claude_env.main_requests(), 30, "claude to call the API")
    # The service stopped (grace 0): the run was interrupted and the note left executing.
    interrupted = note(path)
    assert interrupted.meta["status"] == "executing"
    session = interrupted.meta["session_id"]
    claude_env.queue.clear()
    claude_env.enqueue(text("resumed and finished"))
    with running_service(config):
        done = wait_status(vault.folder(Folder.DONE) / "Resume.md", "done", 60)
    assert done.meta["session_id"] == session and done.meta["attempts"] == 2
    assert done.task_id == running.task_id
    start_lines = [
        json.loads(line)
        for line in (vault.transcripts / f"{done.task_id}.jsonl").read_text().splitlines()
        if '"kind": "start"' in line
    ]
    assert [s["resume"] for s in start_lines] == [False, True]
    assert start_lines[1]["argv"][-2:] == ["--resume", session]
    last = claude_env.main_requests()[-1]
    assert last["headers"].get("x-claude-code-session-id") == session


def test_claudecode_is_removed_from_the_agent_environment(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    assert os.environ["CLAUDECODE"] == "1"
    probe = tmp_path / "env.txt"
    command = f"{sys.executable} -c \"import os,sys; open(sys.argv[1],'w').write(repr(sorted(k for k in os.environ if k.startswith(('CLAUDE','AI_EMPLOYEE_TASK')))))\" {probe}"  # noqa: E501
    with running_service(svc_config(vault, agent="command", agent_command=command)):
        drop(vault, tmp_path, "Env.md", APP.format(title="Env", app="env", body="x"))
        wait_status(vault.folder(Folder.DONE) / "Env.md", "done", 30)
    seen = probe.read_text()
    assert "CLAUDECODE'" not in seen and "AI_EMPLOYEE_TASK_ID" in seen


def _doctor(vault: Vault, claude_path: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_employee", "doctor", "--vault", str(vault.root)],
        env={**os.environ, "AI_EMPLOYEE_CLAUDE_PATH": str(claude_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_doctor_finds_claude_and_sees_it_logged_in(
    vault: Vault, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(text("OK"))
    result = _doctor(vault, claude_bin)
    assert result.returncode == 0, result.stdout
    pinned = (Path(claude_bin).parent / "claude.version").read_text().split()[0]  # the wheel
    assert f"ok   claude {pinned} (Claude Code) at {claude_bin}" in result.stdout
    assert "ok   claude is logged in and answers" in result.stdout
    assert "ok   inotify limits: max_user_watches=" in result.stdout
    assert result.stdout.rstrip().endswith("nothing blocks runs")


def test_doctor_says_what_to_fix_when_not_logged_in_or_missing(
    vault: Vault,
    tmp_path: Path,
    claude_env: FakeAnthropic,
    claude_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = _doctor(vault, claude_bin)
    assert result.returncode == 1
    assert (
        f"FAIL claude is not logged in\n     fix: run `{claude_bin}` once and log in (/login), "
        "or set ANTHROPIC_API_KEY for the service"
    ) in result.stdout
    missing = _doctor(vault, tmp_path / "no-claude")
    assert missing.returncode == 1
    assert f"FAIL claude not found (claude_path = '{tmp_path / 'no-claude'}')" in missing.stdout


def test_daily_budget_makes_new_runs_wait_and_says_so(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(text("first"), text("second"))
    config = claude_config(vault, claude_bin, daily_budget_usd=0.0001)
    with running_service(config) as service:
        drop(vault, tmp_path, "First.md", APP.format(title="First", app="first", body="x"))
        wait_status(vault.folder(Folder.DONE) / "First.md", "done", 60)
        second = drop(vault, tmp_path, "Second.md", APP.format(title="Second", app="sec", body="x"))
        # The notice may be up before Second is even looked at (First spent the budget): wait
        # for both, then Second must still be only planned.
        wait_status(second, "planned", 10)
        wait_for(lambda: "Daily budget reached" in vault.dashboard.read_text(), 10, "the notice")
        assert note(second).meta["status"] == "planned"
        assert service.runs.tally.started == 1
    status = subprocess.run(
        [sys.executable, "-m", "ai_employee", "status", "--vault", str(vault.root)],
        env={**os.environ, "AI_EMPLOYEE_DAILY_BUDGET_USD": "0.0001"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "of $0.00 - budget reached: new runs wait" in status.stdout


def test_a_run_that_spends_the_budget_keeps_the_queued_one_from_starting(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    """The slot frees when the agent exits; its cost counts before that, so the budget check
    for the run waiting in the queue already sees it."""
    claude_env.enqueue(text("first"), text("second"))
    config = claude_config(vault, claude_bin, daily_budget_usd=0.0001, max_parallel=1)
    with running_service(config) as service:
        notes = [
            drop(vault, tmp_path, f"{name}.md", APP.format(title=name, app=name, body="x"))
            for name in ("One", "Two")
        ]
        wait_for(
            lambda: service.runs.scheduler.waiting() == 1, 30, "one run queued behind the other"
        )
        wait_for(lambda: service.runs.tally.succeeded == 1, 60, "the first run recorded")
        wait_for(lambda: "Daily budget reached" in vault.dashboard.read_text(), 10, "the notice")
        assert service.runs.tally.started == 1 and not service.runs.running
        waiting = [p for p in notes if p.exists()]
        assert len(waiting) == 1 and note(waiting[0]).meta["status"] == "planned"


def test_planner_claude_writes_the_plan_then_the_task_runs(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(
        text("1. Sketch the page\n2. Write index.html\n3. Check it"), text("Done as planned.")
    )
    with running_service(claude_config(vault, claude_bin, planner="claude")):
        drop(vault, tmp_path, "Planned.md", APP.format(title="Planned", app="pl", body="x"))
        done = wait_status(vault.folder(Folder.DONE) / "Planned.md", "done", 60)
    plan = (vault.folder(Folder.PLANS) / f"PLAN_Planned ({done.task_id}).md").read_text()
    assert "## Steps (written by Claude)\n\n1. Sketch the page" in plan
    assert done.meta["plan"] == f"[[PLAN_Planned ({done.task_id})]]"
    first = claude_env.main_requests()[0]
    assert "Do not do the task; only plan it." in json.dumps(first["body"]["messages"])


def test_planner_claude_falls_back_to_the_template(
    vault: Vault,
    tmp_path: Path,
    claude_env: FakeAnthropic,
    claude_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # not logged in: the planner cannot use Claude
    config = claude_config(vault, claude_bin, planner="claude", auto_execute_types="none")
    with running_service(config):
        drop(vault, tmp_path, "Fallback.md", APP.format(title="Fallback", app="fb", body="x"))
        held = wait_status(
            vault.folder(Folder.PENDING_APPROVAL) / "Fallback.md", "pending_approval", 60
        )
    plan = (vault.folder(Folder.PLANS) / f"PLAN_Fallback ({held.task_id}).md").read_text()
    assert "## Steps\n\n1. Read the task" in plan
    (warning,) = events(vault, "planner fell back to the template")
    assert warning["error"] == "claude could not plan: Not logged in · Please run /login"
