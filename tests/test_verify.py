"""Done means checked: a task's `verify` command, its rounds, and how an attempt ends by it.

The pure parts (reading the check, what follows a check) are tested over every case; the rounds
run for real through the service with the command agent (a small script that reads its prompt
file) and real check processes. The real Claude CLI's rounds are in test_claude_verify.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from ai_employee.base.config import ConfigError, load_config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running.agents.base import CheckResult, OutcomeKind
from ai_employee.running.verify import BadCheck, Check, Next, check_for, done_when, next_round
from ai_employee.surfaces.web.transcript import turns_of

from .helpers import wait_for
from .service_harness import cancel, drop, events, note, running_service, svc_config, wait_status

AGENT = """\
import pathlib, sys
prompt = pathlib.Path(sys.argv[1]).read_text()
with open("rounds.log", "a") as log:
    log.write(("fix" if "The check failed" in prompt else "first") + "\\n")
fixed = "The check failed" in prompt and "exit code 1" in prompt and "SyntaxError" in prompt
pathlib.Path("app.py").write_text("print('ok')\\n" if fixed else "print('ok'\\n")
print("wrote app.py")
"""


def _config(vault: Vault, tmp_path: Path, **overrides: object) -> object:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    settings: dict[str, object] = {
        "agent_command": f"{sys.executable} {script} {{prompt_file}}",
        "retry_initial_seconds": 0,
        "retry_max_seconds": 0,
        **overrides,
    }
    return svc_config(vault, **settings)


def checked(title: str, verify: str, app: str, more: str = "") -> str:
    return (
        f"---\ntitle: {title}\ntype: claude_app\nlanguage: py\napp: {app}\n"
        f"verify: {json.dumps(verify)}\n{more}---\nMake app.py print ok.\n"
    )


def test_a_failed_check_gives_the_command_agent_another_round_told_what_failed(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "App.md", checked("App", f"{sys.executable} app.py", "app"))
        done = wait_status(vault.folder(Folder.DONE) / "App.md", "done", 30)
    work = vault.root.parent / "apps" / "py" / "app"
    assert (work / "rounds.log").read_text().split() == ["first", "fix"]
    assert done.meta["rounds"] == 2 and done.meta["attempts"] == 1
    assert (
        "Check: `" in done.body
        and "- round 1: cost unknown; check failed (exit code 1)" in done.body
    )
    assert "- round 2: cost unknown; check passed" in done.body
    assert "The check's output (passed):" in done.body and "\nok\n" in done.body
    prompt = (vault.machinery / "prompts" / f"{done.task_id}.md").read_text()
    assert "# Task: App" in prompt, "the command agent gets the whole task again"
    assert prompt.index("# Task: App") < prompt.index("## The check failed (round 2 of 3 begins)")
    lines = (vault.transcripts / f"{done.task_id}.jsonl").read_text().splitlines()
    transcript = [json.loads(line) for line in lines]
    kinds = [r["kind"] for r in transcript if r["kind"] != "out"]
    assert kinds == [
        "base", "start", "check", "check_end", "commit",
        "round", "start", "check", "check_end", "commit",
        "changes", "end",
    ]  # fmt: skip
    assert transcript[-1]["rounds"] == 2


def test_a_check_that_never_passes_fails_the_task_after_max_rounds(
    vault: Vault, tmp_path: Path
) -> None:
    verify = "sh -c 'echo 3 tests failed; exit 1'"
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Never.md", checked("Never", verify, "never", "max_rounds: 2\n"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Never.md", "failed", 30)
    assert failed.meta["error"] == "verification failed after 2 rounds: 3 tests failed"
    assert failed.meta["rounds"] == 2 and failed.meta["attempts"] == 1, "not retried"
    work = vault.root.parent / "apps" / "py" / "never"
    assert (work / "rounds.log").read_text().split() == ["first", "fix"]


def test_a_check_that_hangs_is_stopped_at_its_timeout(vault: Vault, tmp_path: Path) -> None:
    more = "max_rounds: 1\nverify_timeout_seconds: 1\n"
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Slow.md", checked("Slow", "sleep 60", "slow", more))
        failed = wait_status(vault.folder(Folder.FAILED) / "Slow.md", "failed", 30)
    assert failed.meta["error"].startswith(
        "verification failed after 1 round: timed out after 1 s (verify_timeout_seconds)"
    )


def test_a_check_that_cannot_run_fails_at_once_and_the_agent_never_starts(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Bad.md", checked("Bad", "pytest 'unclosed", "bad"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Bad.md", "failed", 30)
    assert failed.meta["error"] == (
        "the note's verify = \"pytest 'unclosed\": cannot be split: No closing quotation; "
        "fix it, then retry"
    )
    assert not (vault.root.parent / "apps" / "py" / "bad" / "rounds.log").exists()
    plan = (vault.folder(Folder.PLANS) / f"PLAN_Bad ({failed.task_id}).md").read_text()
    assert "Done when: the check cannot run as written" in plan


def test_a_missing_check_program_fails_the_task_naming_it(vault: Vault, tmp_path: Path) -> None:
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Gone.md", checked("Gone", "no-such-checker --all", "gone"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Gone.md", "failed", 30)
    assert failed.meta["error"].startswith("cannot start the check 'no-such-checker'")


def test_a_task_without_verify_is_one_round_as_before(vault: Vault, tmp_path: Path) -> None:
    text = "---\ntitle: Plain\ntype: claude_app\nlanguage: py\napp: plain\n---\nx\n"
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Plain.md", text)
        done = wait_status(vault.folder(Folder.DONE) / "Plain.md", "done", 30)
    assert "rounds" not in done.meta and "Check:" not in done.body
    plan = next(vault.folder(Folder.PLANS).glob("PLAN_Plain*.md")).read_text()
    assert "Done when" not in plan


def test_the_plan_shows_the_check_as_its_done_when_line(vault: Vault, tmp_path: Path) -> None:
    config = _config(vault, tmp_path, agent_command="sleep 60")
    with running_service(config):
        drop(vault, tmp_path, "Shown.md", checked("Shown", "python3 -m pytest -q", "shown"))
        planned = wait_status(vault.folder(Folder.NEEDS_ACTION) / "Shown.md", "executing", 30)
    plan = (vault.folder(Folder.PLANS) / f"PLAN_Shown ({planned.task_id}).md").read_text()
    assert (
        "Done when: `python3 -m pytest -q` passes in the work dir (the service runs it after "
        "each round; up to 3 rounds)"
    ) in plan
    assert note(vault.folder(Folder.NEEDS_ACTION) / "Shown.md").meta["verify"] == (
        "python3 -m pytest -q"
    ), "the person's key is theirs"


# --- the pure parts -------------------------------------------------------------------------


def _toml(vault: Vault, text: str) -> object:
    (vault.root / ".ai-employee.toml").write_text(text)
    return load_config(vault.root, env={})


def test_the_note_wins_over_its_type_which_wins_over_the_top_level(vault: Vault) -> None:
    config = _toml(
        vault,
        "max_rounds = 5\nverify_timeout_seconds = 60\n"
        '[types.claude_app]\nverify = "make test"\nmax_rounds = 2\n',
    )
    assert check_for({}, config, "claude_app") == Check("make test", ("make", "test"), 60.0, 2)
    assert check_for({}, config, "claude_task") is None, "no verify for that type"
    note_check = check_for(
        {"verify": "pytest -q {workdir}", "max_rounds": 4, "verify_timeout_seconds": 9},
        config,
        "claude_task",
    )
    assert note_check == Check("pytest -q {workdir}", ("pytest", "-q", "{workdir}"), 9.0, 4)
    assert check_for({"verify": "  "}, config, "claude_app") is None, "an empty verify is none"
    assert check_for({"verify": "x"}, config, "claude_task") == Check("x", ("x",), 60.0, 5)


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"verify": ["pytest"]}, "the note's verify = ['pytest']: expected a command line"),
        ({"verify": "pytest 'x"}, "cannot be split: No closing quotation"),
        ({"verify": "pytest {title}"}, "unknown placeholder {title}"),
        ({"verify": "pytest", "max_rounds": 0}, "max_rounds = 0: expected a number from 1 to 10"),
        ({"verify": "pytest", "max_rounds": 11}, "max_rounds = 11: expected a number from 1 to 10"),
        ({"verify": "pytest", "max_rounds": float("inf")}, "max_rounds = inf"),
        ({"verify": "pytest", "verify_timeout_seconds": float("nan")}, "= nan: expected"),
        ({"verify": "pytest", "max_rounds": 1.5}, "max_rounds = 1.5: expected a whole number"),
        ({"verify": "pytest", "max_rounds": True}, "max_rounds = True: expected a number"),
        ({"verify": "pytest", "verify_timeout_seconds": "soon"}, "verify_timeout_seconds = 'soon'"),
    ],
)
def test_a_check_that_cannot_run_as_written_says_why(
    vault: Vault, meta: dict[str, object], error: str
) -> None:
    config = load_config(vault.root, env={})
    with pytest.raises(BadCheck, match=error.replace("[", r"\[").replace("]", r"\]")):
        check_for(meta, config, "claude_app")
    assert done_when(meta, config, "claude_app").startswith("the check cannot run as written")


def test_a_type_table_with_a_bad_verify_is_a_configuration_error(vault: Vault) -> None:
    with pytest.raises(ConfigError, match=r"types\.claude_app\.verify"):
        _toml(vault, '[types.claude_app]\nverify = "pytest {nope}"\n')
    with pytest.raises(ConfigError, match=r"types\.claude_app\.max_rounds.*at most 10"):
        _toml(vault, "[types.claude_app]\nmax_rounds = 50\n")


@pytest.mark.parametrize("kind", list(OutcomeKind))
@pytest.mark.parametrize("number", [1, 2, 3, 4])
@pytest.mark.parametrize("max_rounds", [1, 3])
def test_what_follows_every_check(kind: OutcomeKind, number: int, max_rounds: int) -> None:
    step = next_round(kind, number, max_rounds)
    if kind is OutcomeKind.SUCCESS:
        assert step is Next.DONE
    elif kind is OutcomeKind.TRANSIENT:  # it ran and failed (an exit, a timeout)
        assert step is (Next.ANOTHER_ROUND if number < max_rounds else Next.FAILED)
    else:  # a cancel, a shutdown, a check that cannot start: the run ends so
        assert step is Next.STOPPED


def test_a_check_result_names_its_last_line_and_why() -> None:
    failed = CheckResult("pytest", False, 1, "exit 1", "a\n\n  2 failed, 1 passed  \n\n")
    assert failed.last_line == "2 failed, 1 passed" and failed.why == "exit code 1"
    silent = CheckResult("x", False, None, "timed out after 5 s (verify_timeout_seconds)", "")
    assert silent.last_line == silent.error == silent.why
    assert CheckResult("x", True, 0, "", "").why == "exit code 0"


def test_the_web_page_shows_a_check_and_a_new_round_as_turns() -> None:
    check = turns_of({"kind": "check", "argv": ["python3", "app.py"], "ts": "t"})
    assert [(t.kind, t.text, t.label) for t in check] == [
        ("start", "python3 app.py", "check started")
    ]
    failed = turns_of({"kind": "check_end", "round": 1, "passed": False, "error": "exit 1"})
    assert [(t.kind, t.text, t.label) for t in failed] == [
        ("end", "exit 1", "check failed · round 1")
    ]
    passed = turns_of({"kind": "check_end", "round": 2, "passed": True})
    assert [(t.text, t.label) for t in passed] == [("passed", "check passed · round 2")]
    again = turns_of({"kind": "round", "round": 2, "of": 3, "resume": True})
    assert [t.text for t in again] == ["round 2 of 3 (same session)"]


def test_a_note_with_an_impossible_check_number_is_failed_alone_and_the_service_goes_on(
    vault: Vault, tmp_path: Path
) -> None:
    bad = checked("Inf", "true", "inf", "max_rounds: .inf\n")
    (vault.folder(Folder.NEEDS_ACTION) / "Inf.md").write_text(bad)  # there before the start
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Fine.md", checked("Fine", f"{sys.executable} app.py", "fine"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Inf.md", "failed", 30)
        wait_status(vault.folder(Folder.DONE) / "Fine.md", "done", 30)
    assert failed.meta["error"] == (
        "the note's max_rounds = inf: expected a number from 1 to 10; fix it, then retry"
    )


def test_a_cancel_while_the_check_runs_stops_it_and_cancels_the_task(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(_config(vault, tmp_path)):
        drop(vault, tmp_path, "Stop.md", checked("Stop", "sleep 60", "stop"))
        (started,) = wait_for(lambda: events(vault, "check started"), 30, "the check to start")
        began = time.monotonic()
        assert cancel(vault, started["task_id"]).returncode == 0
        cancelled = wait_status(vault.folder(Folder.DONE) / "Stop.md", "cancelled", 30)
    assert time.monotonic() - began < 10, "the check's group is stopped, not waited for"
    assert cancelled.meta["rounds"] == 1
