"""Checked work with the real Claude Code CLI against the fake API: a failed check is a new
round in the same session (`--resume`), told the check's command, exit code and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_employee.notes.vault import Folder, Vault

from .claude_harness import claude_config, text, write
from .fake_anthropic import FakeAnthropic
from .service_harness import drop, events, running_service, wait_status

pytestmark = pytest.mark.claude

CHECKED = (
    "---\ntitle: {title}\ntype: claude_app\nlanguage: py\napp: {app}\n"
    "verify: python3 app.py\n{more}---\nMake app.py print ok.\n"
)


def records(vault: Vault, task_id: str) -> list[dict[str, object]]:
    lines = (vault.transcripts / f"{task_id}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_broken_first_round_is_fixed_in_a_second_round_of_the_same_session(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(
        write("app.py", "print('ok'\n"),  # round 1: a syntax error
        text("Wrote app.py."),
        write("app.py", "print('ok')\n"),  # round 2, told the check failed
        text("Fixed the syntax error."),
    )
    with running_service(claude_config(vault, claude_bin)):
        drop(vault, tmp_path, "Two.md", CHECKED.format(title="Two", app="two", more=""))
        done = wait_status(vault.folder(Folder.DONE) / "Two.md", "done", 90)
    assert done.meta["rounds"] == 2 and done.meta["attempts"] == 1
    work = vault.root.parent / "apps" / "py" / "two"
    assert (work / "app.py").read_text() == "print('ok')\n"
    requests = claude_env.main_requests()
    assert len(requests) == 4
    sessions = {r["headers"].get("x-claude-code-session-id") for r in requests}
    assert len(sessions) == 1, "the second round resumes the first round's session"
    told = json.dumps(requests[2]["body"]["messages"][-1])
    assert "The check failed (round 2 of 3 begins)" in told
    assert "python3 app.py" in told and "exit code 1" in told and "SyntaxError" in told
    transcript = records(vault, done.task_id)
    starts = [r for r in transcript if r["kind"] == "start"]
    assert [s["resume"] for s in starts] == [False, True]
    results = [
        json.loads(str(r["line"]))
        for r in transcript
        if r["kind"] == "out" and '"type":"result"' in str(r["line"])
    ]
    costs = [float(r["total_cost_usd"]) for r in results]
    assert len(costs) == 2 and all(c > 0 for c in costs)
    assert done.meta["cost_usd"] == pytest.approx(sum(costs), abs=1e-6), "both rounds counted"
    assert f"- round 1: ${costs[0]:.4f}, 2 turns; check failed (exit code 1)" in done.body
    assert f"- round 2: ${costs[1]:.4f}, 2 turns; check passed" in done.body
    assert "Check: `python3 app.py`" in done.body and "\nok\n" in done.body
    assert transcript[-1]["kind"] == "end" and transcript[-1]["rounds"] == 2
    checks = [r for r in transcript if r["kind"] == "check_end"]
    assert [c["round_cost_usd"] for c in checks] == pytest.approx(costs)
    assert [c["passed"] for c in checks] == [False, True]
    (finished,) = events(vault, "run finished")
    assert finished["parameters"]["rounds"] == 2


def test_a_check_that_never_passes_fails_after_max_rounds(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(
        write("app.py", "raise SystemExit('still broken')\n"),
        text("Done."),
        text("I believe it works now."),  # round 2 changes nothing
    )
    more = "max_rounds: 2\n"
    with running_service(claude_config(vault, claude_bin)):
        drop(vault, tmp_path, "Never.md", CHECKED.format(title="Never", app="never", more=more))
        failed = wait_status(vault.folder(Folder.FAILED) / "Never.md", "failed", 90)
    assert failed.meta["error"] == "verification failed after 2 rounds: still broken"
    assert failed.meta["rounds"] == 2 and failed.meta["attempts"] == 1
    assert len(claude_env.main_requests()) == 3
    assert failed.meta["cost_usd"] > 0
