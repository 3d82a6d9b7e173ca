# ruff: noqa: E501  (tables of cases read best one per line)
"""Permission requests and usage limits, the pure parts: the rules an ask becomes, the reset a
limit message names, how such a run ends on its note, the grant an approval writes, and the
coordinator's pause. The real CLI's side is in test_claude_asks.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_employee.base.config import load_config
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import edit_note_text, grant_requested, parse_note, tool_rules
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running.agents.base import Ask, Outcome, OutcomeKind, RunState
from ai_employee.running.agents.claude import ClaudeAgent
from ai_employee.running.agents.permissions import ask_for, asks_from
from ai_employee.running.run_end import RetryPolicy, decide_end
from ai_employee.running.run_messages import AgentGone
from ai_employee.running.usage_limit import (
    MIN_PAUSE,
    Pause,
    limit_name,
    load_pause,
    local_time,
    parse_limit_message,
    reset_from_event,
    save_pause,
)

from .test_coordinator import FakeRun, coordinator, nowhere, request

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RESET = datetime(2026, 12, 2, 21, 20, tzinfo=UTC)
EPOCH = int(RESET.timestamp())


@pytest.mark.parametrize(
    ("tool", "tool_input", "asked", "rule"),
    [
        ("Bash", {"command": "npm install"}, "npm install", "Bash(npm install)"),
        ("Bash", {"command": " python3 -m pytest -q "}, "python3 -m pytest -q", "Bash(python3 -m pytest -q)"),
        ("Bash", {"command": "echo a\necho b"}, "echo a\necho b", "Bash"),
        ("Bash", {}, "(no command)", "Bash"),
        ("Write", {"file_path": "/etc/hosts", "content": "x"}, "/etc/hosts", "Edit(//etc/hosts)"),
        ("Edit", {"file_path": "/w/a.py"}, "/w/a.py", "Edit(//w/a.py)"),
        ("NotebookEdit", {"notebook_path": "/w/n.ipynb"}, "/w/n.ipynb", "Edit(//w/n.ipynb)"),
        ("Read", {"file_path": "/home/me/.ssh/id"}, "/home/me/.ssh/id", "Read(//home/me/.ssh/id)"),
        ("Glob", {"path": "/srv", "pattern": "*"}, "/srv", "Read(//srv)"),
        ("WebFetch", {"url": "https://docs.python.org/3/"}, "https://docs.python.org/3/", "WebFetch(domain:docs.python.org)"),
        ("WebSearch", {"query": "x"}, '{"query": "x"}', "WebSearch"),
        ("Write", {"file_path": "relative.txt"}, '{"file_path": "relative.txt"}', "Write"),
    ],
)  # fmt: skip
def test_each_refused_call_becomes_the_narrowest_rule_that_allows_it(
    tool: str, tool_input: dict[str, object], asked: str, rule: str
) -> None:
    assert ask_for(tool, tool_input) == Ask(tool, asked, rule)


def test_denials_become_one_ask_per_rule_in_the_order_asked_and_junk_is_skipped() -> None:
    denials = [
        {"tool_name": "Bash", "tool_input": {"command": "make"}},
        "junk",
        {"tool_name": "", "tool_input": {}},
        {"tool_name": "Bash", "tool_input": {"command": "make"}, "tool_use_id": "2"},
        {"tool_name": "WebSearch", "tool_input": None},
    ]
    assert [a.rule for a in asks_from(denials)] == ["Bash(make)", "WebSearch"]


@pytest.mark.parametrize(
    ("message", "expected", "limit"),
    [
        ("You've hit your 5-hour limit · resets 8:13pm (UTC)", datetime(2026, 12, 2, 20, 13, tzinfo=UTC), "5-hour limit"),
        ("You've hit your weekly limit · resets 7am (UTC)", datetime(2026, 12, 3, 7, 0, tzinfo=UTC), "weekly limit"),
        ("You've hit your 5-hour limit · resets 12:30pm (UTC)", datetime(2026, 12, 2, 12, 30, tzinfo=UTC), "5-hour limit"),
        ("You've hit your 5-hour limit · resets 12am (UTC)", datetime(2026, 12, 3, 0, 0, tzinfo=UTC), "5-hour limit"),
        ("You've hit your 5-hour limit · resets 2:05pm (Europe/Berlin)", datetime(2026, 12, 2, 13, 5, tzinfo=UTC), "5-hour limit"),
        ("You've hit your 5-hour limit · resets 14:05 (Nowhere/Land)", datetime(2026, 12, 2, 14, 5, tzinfo=UTC), "5-hour limit"),
        ("You've hit your 5-hour limit · resets 11:30am (UTC)", NOW, "5-hour limit"),
        ("You've hit your 5-hour limit · resets 10:59am (UTC)", datetime(2026, 12, 3, 10, 59, tzinfo=UTC), "5-hour limit"),
        ("API Error: Request rejected (429) · fake rate_limit_error", None, ""),
        ("You've hit your 5-hour limit · resets 13pm (UTC)", None, ""),
        ("You've hit your 5-hour limit · resets 25:00 (UTC)", None, ""),
    ],
)  # fmt: skip
def test_the_limit_message_names_the_next_reset_in_its_zone(
    message: str, expected: datetime | None, limit: str
) -> None:
    parsed = parse_limit_message(message, NOW)
    assert parsed == (None if expected is None else (expected, limit))


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 24 * 60 - 1))
def test_a_parsed_reset_is_always_within_the_next_day(hour: int, minute: int, offset: int) -> None:
    now = NOW + timedelta(minutes=offset)
    parsed = parse_limit_message(f"hit your 5-hour limit · resets {hour}:{minute:02d} (UTC)", now)
    assert parsed is not None
    assert now <= parsed[0] < now + timedelta(days=1)
    if parsed[0] == now:  # printed less than an hour ago: it is now
        assert timedelta(0) <= now - now.replace(hour=hour, minute=minute) < timedelta(hours=1)
    else:
        assert (parsed[0].hour, parsed[0].minute) == (hour, minute)


def test_the_event_reset_and_limit_names() -> None:
    assert reset_from_event({"resetsAt": EPOCH}) == RESET
    for bad in ({}, {"resetsAt": "soon"}, {"resetsAt": True}, {"resetsAt": -1}, {"resetsAt": 1e20}):
        assert reset_from_event(bad) is None
    assert limit_name("five_hour") == "5-hour limit"
    assert limit_name("seven_day") == "weekly limit"
    assert limit_name("monthly_thing") == "monthly thing limit"
    assert limit_name(None) == "usage limit"


def _claude(lines: list[dict[str, object]], exit_code: int = 1) -> Outcome:
    agent = ClaudeAgent(load_config(Path("/nonexistent"), env={}), now=lambda: NOW)
    state = RunState()
    for line in lines:
        agent.on_line(json.dumps(line), state)
    return agent.finish(exit_code, state)


LIMIT_RESULT = {
    "type": "result",
    "is_error": True,
    "num_turns": 1,
    "api_error_status": 429,
    "session_id": "s1",
    "result": "You've hit your 5-hour limit · resets 8:13pm (UTC)",
}


def test_claude_pauses_on_a_rejected_rate_limit_event_or_on_the_message_alone() -> None:
    event = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": EPOCH, "rateLimitType": "seven_day"},
    }  # fmt: skip
    by_event = _claude([event, LIMIT_RESULT])
    assert by_event.kind is OutcomeKind.PAUSED and by_event.limit == "weekly limit"
    assert by_event.resets_at == RESET
    by_text = _claude([LIMIT_RESULT])
    assert by_text.kind is OutcomeKind.PAUSED and by_text.limit == "5-hour limit"
    assert by_text.resets_at == datetime(2026, 12, 2, 20, 13, tzinfo=UTC)
    allowed = {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning"}}
    plain = {**LIMIT_RESULT, "result": "API Error: Request rejected (429) · rate_limit_error"}
    backoff = _claude([allowed, plain])
    assert backoff.kind is OutcomeKind.TRANSIENT, "a 429 with no reset keeps the backoff"
    words = {**LIMIT_RESULT, "api_error_status": None, "subtype": "error_max_turns"}
    own = _claude([words])
    assert own.kind is OutcomeKind.PERMANENT, "the agent's own words about a limit are not one"
    past = {**event, "rate_limit_info": {**event["rate_limit_info"], "resetsAt": EPOCH - 86400}}
    soon = _claude([past, LIMIT_RESULT])
    assert soon.kind is OutcomeKind.PAUSED and soon.resets_at == NOW + MIN_PAUSE
    warned = {
        "type": "assistant",
        "api_error_params": {"rate_limit_info": {"status": "allowed", "resetsAt": EPOCH}},
        "message": {"content": []},
    }
    assert _claude([warned, plain]).kind is OutcomeKind.TRANSIENT


def test_claude_asks_when_a_successful_run_was_denied_tools() -> None:
    result = {
        "type": "result",
        "is_error": False,
        "num_turns": 2,
        "session_id": "s1",
        "result": "I need npm.",
        "permission_denials": [{"tool_name": "Bash", "tool_input": {"command": "npm ci"}}],
    }
    asked = _claude([{"type": "system", "subtype": "init", "permissionMode": "default"}, result], 0)
    assert asked.kind is OutcomeKind.ASKED
    assert asked.asked == (Ask("Bash", "npm ci", "Bash(npm ci)"),)
    assert (
        asked.error == "claude asked for Bash(npm ci) (permission_mode default): a person decides"
    )


def _decide(outcome: Outcome, status: Status = Status.EXECUTING, attempts: int = 2) -> object:
    return decide_end(
        task_id="t1",
        status=status,
        attempts=attempts,
        outcome=outcome,
        duration_s=1.0,
        policy=RetryPolicy(2, 1.0, 10.0),
        now=NOW,
    )


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_an_ask_waits_for_a_person_with_the_session_and_spends_no_attempt(attempts: int) -> None:
    asks = (Ask("Bash", "make `x`", "Bash(make `x`)"), Ask("WebSearch", "{}", "WebSearch"))
    end = _decide(
        Outcome(OutcomeKind.ASKED, "asked", "so far", 0, 0.1, "s1", 2, asked=asks),
        attempts=attempts,
    )
    assert end.status is Status.PENDING_APPROVAL and end.folder is Folder.PENDING_APPROVAL
    assert end.changes["attempts"] == attempts - 1
    assert end.changes["requested_tools"] == ["Bash(make `x`)", "WebSearch"]
    assert end.changes["session_id"] == "s1" and end.changes["next_attempt_at"] is None
    assert "- Bash: `` make `x` `` (rule ``Bash(make `x`)``)" in end.result
    assert end.result.startswith(f"**asked**, attempt {attempts} (not spent), 1.0 s")
    assert "`ai-employee approve t1`" in end.result and "so far" in end.result


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_a_usage_limit_plans_the_task_again_at_the_reset_and_spends_no_attempt(
    attempts: int,
) -> None:
    reset = NOW + timedelta(hours=3)
    outcome = Outcome(
        OutcomeKind.PAUSED, "limit", session_id="s1", resets_at=reset, limit="5-hour limit"
    )
    end = _decide(outcome, attempts=attempts)
    assert end.status is Status.PLANNED and end.folder is None
    assert end.changes["attempts"] == attempts - 1
    assert end.changes["next_attempt_at"] == reset and end.changes["session_id"] == "s1"
    assert end.changes["error"].startswith("paused until ")
    assert end.changes["error"].endswith(" (5-hour limit); no attempt spent")
    past = _decide(Outcome(OutcomeKind.PAUSED, resets_at=NOW - timedelta(1), limit="x"))
    assert past.changes["next_attempt_at"] == NOW, "a reset in the past is now"


@pytest.mark.parametrize("kind", [OutcomeKind.ASKED, OutcomeKind.PAUSED])
@pytest.mark.parametrize("status", [Status.CANCELLED, Status.REJECTED])
def test_a_person_who_ended_the_task_meanwhile_wins_over_an_ask_or_a_pause(
    kind: OutcomeKind, status: Status
) -> None:
    end = _decide(Outcome(kind, resets_at=NOW, asked=(Ask("Bash", "x", "Bash(x)"),)), status)
    assert end.status is status and end.kind is OutcomeKind.CANCELLED


def test_an_approval_grants_what_was_asked_and_keeps_what_was_granted() -> None:
    text = '---\ntitle: t\nstatus: pending_approval\ngranted_tools: ["Bash(make)"]\nrequested_tools: ["Bash(npm ci)", "Bash(make)"]\nerror: asked\n---\nbody\n'
    meta = parse_note(text, "t.md").meta
    changes = grant_requested(meta)
    assert changes == {
        "granted_tools": ["Bash(make)", "Bash(npm ci)"],
        "requested_tools": None,
        "error": None,
    }
    after = parse_note(edit_note_text(text, changes), "t.md")
    assert tool_rules(after.meta, "granted_tools") == ("Bash(make)", "Bash(npm ci)")
    assert "requested_tools" not in after.meta and after.body == "body\n"
    assert grant_requested({"granted_tools": ["x"]}) == {}
    rejected = {"status": "rejected", "requested_tools": ["Bash"], "granted_tools": ["x"]}
    assert grant_requested(rejected) == {"requested_tools": None}, "a rejected ask is void"
    assert tool_rules({"granted_tools": "Bash(make)"}, "granted_tools") == ("Bash(make)",)
    assert tool_rules({"granted_tools": [1, None, " ", "a"]}, "granted_tools") == ("a",)
    assert tool_rules({"granted_tools": {"a": 1}}, "granted_tools") == ()


@given(st.lists(st.text(min_size=1).filter(lambda s: s.strip()), max_size=4))
def test_a_list_of_rules_reads_back_as_written(rules: list[str]) -> None:
    text = edit_note_text("---\ntitle: t\n---\n", {"requested_tools": rules})
    assert list(tool_rules(parse_note(text, "t.md").meta, "requested_tools")) == list(
        dict.fromkeys(r.strip() for r in rules if r.strip())
    ), "a rule is kept exactly: `sed 's/  */ /'` must not lose a space"


def test_the_coordinator_starts_nothing_while_a_pause_holds_and_takes_the_latest() -> None:
    runs = coordinator(max_parallel=2)
    runs.offer(request("a"))
    (a,) = [r for r in runs.start_ready(nowhere) if isinstance(r, FakeRun)]
    runs.offer(request("b"))
    runs.offer(request("c"))
    pause = Pause(NOW + timedelta(minutes=5), "5-hour limit", "a")
    assert runs.agent_gone(AgentGone(a.run_id, "a", 0.0, pause)) == pause
    assert runs.start_ready(nowhere) == [] and runs.paused(NOW)
    assert not runs.pause_runs(Pause(NOW + timedelta(minutes=1), "5-hour limit")), "not news"
    later = Pause(NOW + timedelta(minutes=9), "weekly limit")
    assert runs.pause_runs(later) and runs.pause is later
    assert runs.pause_over() is None
    runs.now = lambda: NOW + timedelta(minutes=9)
    assert runs.pause_over() is later and runs.pause is None and runs.pause_over() is None
    assert [r.task_id for r in runs.start_ready(nowhere)] == ["b", "c"], "a's agent is gone"


def test_the_pause_survives_a_restart_until_it_is_over(vault: Vault) -> None:
    pause = Pause(NOW + timedelta(hours=1), "5-hour limit", "t1")
    save_pause(vault.machinery, vault.tmp, pause)
    assert load_pause(vault.machinery, NOW) == pause
    assert load_pause(vault.machinery, NOW + timedelta(hours=1)) is None
    (vault.machinery / "usage_limit.json").write_text("{not json")
    assert load_pause(vault.machinery, NOW) is None
    save_pause(vault.machinery, vault.tmp, None)
    assert not (vault.machinery / "usage_limit.json").exists()
    assert pause.says(NOW).startswith("paused until ") and pause.says(NOW).endswith(
        "(5-hour limit)"
    )


def test_a_reset_reads_to_the_minute_rounded_up_with_the_date_when_not_today(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert local_time(datetime(2026, 12, 2, 20, 13, tzinfo=UTC), NOW) == "20:13 UTC"
        assert local_time(datetime(2026, 12, 2, 20, 13, 1, tzinfo=UTC), NOW) == "20:14 UTC"
        assert local_time(datetime(2026, 12, 8, 7, 5, tzinfo=UTC), NOW) == "Tue 8 Dec 07:05 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_block_list_obsidian_wrote_is_replaced_without_the_persons_lines_after_it() -> None:
    text = (
        "---\ntitle: t\nstatus: pending_approval\nrequested_tools:\n  - Bash(make)\n"
        "  - Bash(npm ci)\n# my note about the tools\n\ntags:\n  - a\n# end\n---\nbody\n"
    )
    after = edit_note_text(text, grant_requested(parse_note(text, "t.md").meta))
    assert "# my note about the tools\n\ntags:\n  - a\n# end\n" in after
    assert "requested_tools" not in after
    assert parse_note(after, "t.md").meta["granted_tools"] == ["Bash(make)", "Bash(npm ci)"]
    again = edit_note_text(after, {"granted_tools": ["Bash(x)"]})
    assert "# my note about the tools" in again and 'granted_tools: ["Bash(x)"]' in again
