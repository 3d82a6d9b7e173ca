"""`agent = "acp"`: the service as an Agent Client Protocol client, with a scripted ACP agent
(tests/acp_agent.py, a real process speaking JSON-RPC on stdio) through the real bridge."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.base.errors import ConfigError
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import TaskNote
from ai_employee.notes.vault import Folder, Vault

from .helpers import wait_for
from .service_harness import (
    drop,
    note_if,
    person,
    recorded,
    running_service,
    svc_config,
    wait_status,
)

AGENT = Path(__file__).with_name("acp_agent.py")


@pytest.fixture
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sessions.txt"
    monkeypatch.setenv("ACP_SESSIONS", str(path))
    return path


def acp_config(vault: Vault, **overrides: object) -> Config:
    settings: dict[str, object] = {
        "agent": "acp",
        "acp_command": f"{sys.executable} {AGENT}",
        "retry_initial_seconds": 0,
        "retry_max_seconds": 0,
        **overrides,
    }
    return svc_config(vault, **settings)


def asking(path: Path, rule: str) -> TaskNote | None:
    """The note while it shows the agent's question `rule`, else None."""
    return note_if(path, lambda n: n.meta.get("requested_tools") == [rule])


def _ended_asking(note: TaskNote) -> bool:
    """Its run ended asking: its `## Result` is written, and it waits for a person."""
    return bool(note.result) and note.status is Status.PENDING_APPROVAL


def task(title: str, behave: str) -> str:
    return f"---\ntitle: {title}\ntype: claude_app\n---\nbehave: {behave}\n"


def transcript(vault: Vault, task_id: str) -> str:
    return (vault.transcripts / f"{task_id}.jsonl").read_text()


def test_a_task_runs_over_acp_with_its_words_cost_and_session_recorded(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault)):
        drop(vault, tmp_path, "Say.md", task("Say", "ok"))
        done = wait_status(vault.folder(Folder.DONE) / "Say.md", "done", 30)
    assert done.meta["session_id"] in sessions.read_text().split(), "the agent's own session"
    assert done.meta["cost_usd"] == pytest.approx(0.0125)
    assert "did it" in done.result
    lines = transcript(vault, str(done.task_id))
    assert "scripted-acp" in lines  # the bridge's lines, each kept (the init names the agent)
    assert "agent_message_chunk" in lines


def test_a_person_approves_while_the_agent_waits_and_the_same_turn_goes_on(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault, permission_mode="default")):
        drop(vault, tmp_path, "Write.md", task("Write", "ask"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Write.md", "pending_approval")
        assert held.meta["requested_tools"] == ["edit(Write hello.txt)"]
        assert "may it use edit" in str(held.meta["error"]) and "hello.txt" in held.meta["error"]
        assert held.meta["session_id"] in sessions.read_text().split(), "the agent's session"
        workdir = vault.root.parent / "apps" / "tasks" / str(held.task_id)
        assert not (workdir / "hello.txt").exists()
        assert person(vault, "approve", str(held.task_id)).returncode == 0
        done = wait_status(vault.folder(Folder.DONE) / "Write.md", "done", 30)
    assert (workdir / "hello.txt").read_text() == "hello\n"
    assert done.meta["attempts"] == 1 and done.meta["session_id"] == held.meta["session_id"]
    assert done.meta["granted_tools"] == ["edit(Write hello.txt)"]
    assert "wrote hello.txt" in done.result and "(replayed)" not in done.result
    lines = transcript(vault, str(done.task_id))
    assert lines.count('"kind": "start"') == 1, "one process: the waiting one, answered"
    assert '"kind": "answer", "answer": "allow"' in lines


def test_a_second_request_in_the_same_turn_is_shown_before_a_person_answers_it(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    pending = vault.folder(Folder.PENDING_APPROVAL) / "Two.md"
    with running_service(acp_config(vault, permission_mode="default")):
        drop(vault, tmp_path, "Two.md", task("Two", "ask2"))
        first = wait_for(lambda: asking(pending, "edit(Write hello.txt)"), 30, "the first ask")
        assert person(vault, "approve", str(first.task_id)).returncode == 0
        second = wait_for(lambda: asking(pending, "edit(Write bye.txt)"), 30, "the second ask")
        assert "bye.txt" in second.meta["error"] and second.meta["attempts"] == 0
        pending.rename(vault.folder(Folder.APPROVED) / "Two.md")
        done = wait_status(vault.folder(Folder.DONE) / "Two.md", "done", 30)
    workdir = vault.root.parent / "apps" / "tasks" / str(done.task_id)
    assert (workdir / "hello.txt").exists() and (workdir / "bye.txt").exists()
    assert done.meta["granted_tools"] == ["edit(Write hello.txt)", "edit(Write bye.txt)"]
    assert done.meta["attempts"] == 1
    answers = [
        line for line in transcript(vault, str(done.task_id)).splitlines() if '"answer"' in line
    ]
    assert ['"ask": 1' in answers[0], '"ask": 2' in answers[1]] == [True, True]


def test_an_agent_that_dies_while_it_waits_is_retried_then_fails_never_left_waiting(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault, permission_mode="default", max_attempts=2)):
        drop(vault, tmp_path, "Dies.md", task("Dies", "ask_die"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Dies.md", "failed", 30)
    assert failed.meta["attempts"] == 2 and "exited 3" in failed.meta["error"]
    assert failed.meta.get("requested_tools") is None, "its question died with it"
    lines = transcript(vault, str(failed.task_id))
    assert lines.count('"answer\\": \\"waiting') == 2, "it asked on each attempt"


def test_a_move_to_approved_answers_the_waiting_agent(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault, permission_mode="default")):
        drop(vault, tmp_path, "Move.md", task("Move", "ask"))
        held = vault.folder(Folder.PENDING_APPROVAL) / "Move.md"
        wait_status(held, "pending_approval")
        held.rename(vault.folder(Folder.APPROVED) / "Move.md")
        done = wait_status(vault.folder(Folder.DONE) / "Move.md", "done", 30)
    assert done.meta["attempts"] == 1 and done.meta["approved_at"]
    assert done.meta["granted_tools"] == ["edit(Write hello.txt)"]
    assert "wrote hello.txt" in done.result


def test_a_rejection_answers_reject_once_and_the_task_goes_to_rejected(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault, permission_mode="default")):
        drop(vault, tmp_path, "No.md", task("No", "ask"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "No.md", "pending_approval")
        assert person(vault, "reject", str(held.task_id)).returncode == 0
        where = vault.folder(Folder.REJECTED) / "No.md"
        rejected = wait_for(lambda: recorded(where), 30, "the run's end on the rejected note")
    assert rejected.status is Status.REJECTED and "a person ended" in rejected.meta["error"]
    workdir = vault.root.parent / "apps" / "tasks" / str(held.task_id)
    assert not (workdir / "hello.txt").exists()
    lines = transcript(vault, str(rejected.task_id))
    assert '"kind": "answer", "answer": "reject"' in lines
    assert '\\"answer\\": \\"reject_once\\", \\"by\\": \\"person\\"' in lines
    assert "was not allowed to write hello.txt" in lines, "the agent was told, then cancelled"
    assert rejected.meta.get("granted_tools") is None


def test_past_the_wait_the_agent_is_refused_and_an_approval_loads_the_session(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    config = acp_config(vault, permission_mode="default", acp_permission_wait_seconds=0.5)
    with running_service(config):
        drop(vault, tmp_path, "Late.md", task("Late", "ask"))
        note = vault.folder(Folder.PENDING_APPROVAL) / "Late.md"
        held = wait_for(lambda: note_if(note, _ended_asking), 30, "the run to end asking")
        assert held.meta["requested_tools"] == ["edit(Write hello.txt)"]
        assert held.meta["attempts"] == 0, "an ask spends no attempt"
        assert "was not allowed to write hello.txt" in held.result
        assert person(vault, "approve", str(held.task_id)).returncode == 0
        done = wait_status(vault.folder(Folder.DONE) / "Late.md", "done", 30)
    assert done.meta["session_id"] == held.meta["session_id"], "the same session, loaded"
    assert "(replayed)" in done.result and "wrote hello.txt" in done.result


def test_an_approval_after_a_restart_loads_the_session_the_waiting_agent_had(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    config = acp_config(vault, permission_mode="default")
    with running_service(config):
        drop(vault, tmp_path, "Later.md", task("Later", "ask"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Later.md", "pending_approval")
    assert held.meta["attempts"] == 0, "asking a person spends no attempt"
    assert person(vault, "approve", str(held.task_id)).returncode == 0  # while it is stopped
    with running_service(config):
        done = wait_status(vault.folder(Folder.DONE) / "Later.md", "done", 30)
    assert done.meta["attempts"] == 1
    assert done.meta["session_id"] == held.meta["session_id"], "the waiting agent's session"
    assert "(replayed)" in done.result and "wrote hello.txt" in done.result
    assert done.meta["granted_tools"] == ["edit(Write hello.txt)"]


def test_with_no_wait_a_refused_tool_asks_a_person_and_the_approval_loads_the_session(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(
        acp_config(vault, permission_mode="default", acp_permission_wait_seconds=0)
    ):
        drop(vault, tmp_path, "Write.md", task("Write", "ask"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Write.md", "pending_approval")
        assert held.meta["requested_tools"] == ["edit(Write hello.txt)"]
        first_session = held.meta["session_id"]
        workdir = vault.root.parent / "apps" / "tasks" / str(held.task_id)
        assert not (workdir / "hello.txt").exists()
        assert person(vault, "approve", str(held.task_id)).returncode == 0
        done = wait_status(vault.folder(Folder.DONE) / "Write.md", "done", 30)
    assert (workdir / "hello.txt").read_text() == "hello\n"
    assert done.meta["session_id"] == first_session, "the same session, loaded"
    assert done.meta["granted_tools"] == ["edit(Write hello.txt)"]
    assert "(replayed)" in done.result and "wrote hello.txt" in done.result


@pytest.mark.parametrize(
    ("behave", "folder", "error"),
    [
        ("refuse", Folder.FAILED, "the agent refused the task (stop reason: refusal)"),
        ("die", Folder.FAILED, "the ACP agent exited 3 before the turn ended"),
        ("orphan", Folder.FAILED, "the ACP agent exited 5 before the turn ended"),
        ("huge", Folder.FAILED, "the ACP agent sent a message over 4,194,304 bytes"),
        ("garbled", Folder.FAILED, "the ACP agent broke the protocol: not JSON-RPC: 'this is"),
    ],
)
def test_a_turn_that_ends_without_the_work_is_judged_by_why(
    vault: Vault, tmp_path: Path, sessions: Path, behave: str, folder: Folder, error: str
) -> None:
    with running_service(acp_config(vault, max_attempts=2)):
        drop(vault, tmp_path, "T.md", task("T", behave))
        failed = wait_status(vault.folder(folder) / "T.md", "failed", 30)
    assert str(failed.meta["error"]).startswith(error), failed.meta["error"]
    if behave == "orphan":  # seen at its exit, not when the child lets go of the pipe
        assert failed.meta["attempts"] == 2 and failed.meta["duration_s"] < 30
    elif behave == "die":  # transient: tried again; its stderr's last words said
        assert failed.meta["attempts"] == 2
        assert "fatal: the scripted agent broke" in str(failed.meta["error"])
    else:  # permanent: once (a refusal, a protocol the agent breaks)
        assert failed.meta["attempts"] == 1


def test_an_agent_that_floods_its_stderr_does_not_hang_the_round(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    with running_service(acp_config(vault)):
        drop(vault, tmp_path, "Noisy.md", task("Noisy", "noisy"))
        done = wait_status(vault.folder(Folder.DONE) / "Noisy.md", "done", 30)
    assert "did it" in done.result
    size = (vault.transcripts / f"{done.task_id}.jsonl").stat().st_size
    assert size < 1_000_000, "the 2 MB of stderr were capped"


def test_doctor_checks_that_the_acp_agent_answers_initialize(vault: Vault) -> None:
    from ai_employee.surfaces.doctor import acp_check

    good = acp_check(acp_config(vault))
    assert good.level == "ok"
    assert good.what == ("ACP agent scripted-acp 1.0 answers initialize; loads sessions: yes")
    missing = acp_check(acp_config(vault, acp_command="/nonexistent/acp-agent --stdio"))
    assert missing.level == "fail"
    assert "cannot start the ACP agent '/nonexistent/acp-agent'" in missing.what
    with pytest.raises(ConfigError, match='agent = "acp" needs acp_command'):
        acp_config(vault, acp_command="")  # said when the configuration is read


def test_a_type_can_go_to_another_agent(vault: Vault, tmp_path: Path, sessions: Path) -> None:
    """One vault: the command agent by default, the ACP agent for one type."""
    (vault.root / ".ai-employee.toml").write_text(
        f'[types.claude_code]\nagent = "acp"\nacp_command = "{sys.executable} {AGENT}"\n'
    )
    config = svc_config(
        vault,
        agent="command",
        agent_command="sh -c 'echo by the command agent'",
        auto_execute_types="claude_app,claude_code",
    )
    with running_service(config):
        drop(vault, tmp_path, "A.md", "---\ntitle: A\ntype: claude_app\n---\nbehave: ok\n")
        drop(vault, tmp_path, "B.md", "---\ntitle: B\ntype: claude_code\n---\nbehave: ok\n")
        a = wait_status(vault.folder(Folder.DONE) / "A.md", "done", 30)
        b = wait_status(vault.folder(Folder.DONE) / "B.md", "done", 30)
    assert "by the command agent" in a.result and "session_id" not in a.meta
    assert "did it" in b.result and b.meta["session_id"] in sessions.read_text().split()
    with pytest.raises(ConfigError, match=r'types\.claude_code\.agent = "acp" needs acp_command'):
        (vault.root / ".ai-employee.toml").write_text('[types.claude_code]\nagent = "acp"\n')
        svc_config(vault)


def test_an_agent_that_cannot_load_sessions_goes_on_in_a_new_one_and_the_note_says_so(
    vault: Vault, tmp_path: Path, sessions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_NO_LOAD", "1")
    config = acp_config(vault, permission_mode="default", acp_permission_wait_seconds=0)
    with running_service(config):
        drop(vault, tmp_path, "Write.md", task("Write", "ask"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Write.md", "pending_approval")
        assert person(vault, "approve", str(held.task_id)).returncode == 0
        done = wait_status(vault.folder(Folder.DONE) / "Write.md", "done", 30)
    assert done.meta["session_id"] != held.meta["session_id"]
    assert "Note: the agent cannot load a session (no loadSession): a new one" in done.result
    assert "wrote hello.txt" in done.result


def test_a_verify_round_goes_on_in_the_same_acp_session(
    vault: Vault, tmp_path: Path, sessions: Path
) -> None:
    text = (
        "---\ntitle: Count\ntype: claude_app\nverify: grep -qx 2 rounds.txt\n---\nbehave: count\n"
    )
    with running_service(acp_config(vault)):
        drop(vault, tmp_path, "Count.md", text)
        done = wait_status(vault.folder(Folder.DONE) / "Count.md", "done", 30)
    assert done.meta["rounds"] == 2
    assert len(sessions.read_text().split()) == 1, "round 2 loaded round 1's session"
    assert done.meta["session_id"] == sessions.read_text().split()[0]
    assert done.meta["cost_usd"] == pytest.approx(0.025), "each round's own cost, summed once"


def test_a_verify_round_of_an_agent_that_cannot_load_its_session_is_told_the_task_again(
    vault: Vault, tmp_path: Path, sessions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_NO_LOAD", "1")
    text = (
        "---\ntitle: Count\ntype: claude_app\nverify: grep -qx 2 rounds.txt\n---\nbehave: count\n"
    )
    with running_service(acp_config(vault)):
        drop(vault, tmp_path, "Count.md", text)
        done = wait_status(vault.folder(Folder.DONE) / "Count.md", "done", 30)
    assert done.meta["rounds"] == 2 and len(sessions.read_text().split()) == 2
