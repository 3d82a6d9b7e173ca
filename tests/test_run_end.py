"""How a run ends on its note (run_end.py): pure, tested over every outcome, status and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_employee.base.config import load_config
from ai_employee.base.errors import InvalidTransition
from ai_employee.notes.lifecycle import TERMINAL, TRANSITIONS, Status
from ai_employee.notes.vault import Folder
from ai_employee.running.agents.base import Ask, Outcome, OutcomeKind
from ai_employee.running.end_record import concluded
from ai_employee.running.run_end import RetryPolicy, RunEnd, decide_end, decide_interrupted

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ENDING = [k for k in OutcomeKind if k is not OutcomeKind.SKIPPED]


def end(kind: OutcomeKind, status: Status | None, attempts: int, policy: RetryPolicy) -> RunEnd:
    outcome = Outcome(kind, error="it broke" if kind is not OutcomeKind.SUCCESS else "")
    return decide_end(
        task_id="t1",
        status=status,
        attempts=attempts,
        outcome=outcome,
        duration_s=1.5,
        policy=policy,
        now=NOW,
    )


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 6),
    initial_s=st.sampled_from([0.0, 1.0, 30.0]),
    max_s=st.sampled_from([0.0, 10.0, 900.0]),
)


@given(
    kind=st.sampled_from(ENDING),
    status=st.sampled_from([None, *Status]),
    attempts=st.integers(0, 8),
    policy=policies,
)
def test_every_end_is_a_transition_the_table_allows(
    kind: OutcomeKind, status: Status | None, attempts: int, policy: RetryPolicy
) -> None:
    try:
        decided = end(kind, status, attempts, policy)
    except InvalidTransition as err:  # the status it would write is not allowed from this one
        assert status is not Status.EXECUTING, "from executing, every end is allowed"
        assert err.new not in TRANSITIONS[status] and err.new is not status
        return
    if kind is OutcomeKind.INTERRUPTED or status is Status.DRAFT:
        assert decided.changes == {} and decided.result is None  # nothing is written
        return
    assert decided.changes["status"] is decided.status
    if status in TERMINAL:  # a person ended it while it ran: their end stands
        assert decided.status is status
    if status is not None:  # a note whose status a person took out takes the run's end
        assert decided.status is status or decided.status in TRANSITIONS[status]


@given(
    kind=st.sampled_from(ENDING),
    status=st.sampled_from([Status.EXECUTING, Status.CANCELLED, Status.REJECTED]),
    attempts=st.integers(1, 8),
    policy=policies,
)
def test_how_each_outcome_ends(
    kind: OutcomeKind, status: Status, attempts: int, policy: RetryPolicy
) -> None:
    decided = decide_end(
        task_id="t1",
        status=status,
        attempts=attempts,
        outcome=Outcome(kind, error="it broke", exit_code=3, cost_usd=0.25, session_id="s1"),
        duration_s=1.5,
        policy=policy,
        now=NOW,
    )
    if kind is OutcomeKind.INTERRUPTED:  # our own shutdown: the next start counts it
        assert decided.changes == {} and decided.folder is None and decided.result is None
        return
    assert decided.changes["duration_s"] == 1.5 and decided.changes["cost_usd"] == 0.25
    if status in (Status.CANCELLED, Status.REJECTED) or kind is OutcomeKind.CANCELLED:
        # a person's end wins over the agent's (a cancel also stops the agent: CANCELLED)
        assert decided.kind is OutcomeKind.CANCELLED
        assert decided.status is (
            Status.REJECTED if status is Status.REJECTED else Status.CANCELLED
        )
        assert decided.folder is (Folder.REJECTED if status is Status.REJECTED else Folder.DONE)
        assert decided.changes["completed_at"] == NOW
    elif kind is OutcomeKind.SUCCESS:
        assert decided.status is Status.DONE and decided.folder is Folder.DONE
        assert decided.changes["error"] is None and decided.changes["completed_at"] == NOW
    elif kind is OutcomeKind.TRANSIENT and attempts < policy.max_attempts:
        assert decided.status is Status.PLANNED and decided.folder is None
        assert decided.changes["session_id"] is None, "a fresh attempt starts a new session"
        wait = (decided.changes["next_attempt_at"] - NOW).total_seconds()
        low = min(policy.initial_s * 2 ** (attempts - 1), policy.max_s)
        assert low - 1e-6 <= wait <= min(low + policy.initial_s, policy.max_s) + 1e-6
    elif kind is OutcomeKind.ASKED:  # a person decides; the session goes on after
        assert decided.status is Status.PENDING_APPROVAL
        assert decided.folder is Folder.PENDING_APPROVAL
        assert decided.changes["attempts"] == attempts - 1, "no attempt spent"
        assert decided.changes["session_id"] == "s1" and decided.error == "it broke"
    elif kind is OutcomeKind.PAUSED:  # a usage limit without a reset time: due now
        assert decided.status is Status.PLANNED and decided.folder is None
        assert decided.changes["attempts"] == attempts - 1, "no attempt spent"
        assert decided.changes["next_attempt_at"] == NOW
        assert decided.changes["session_id"] == "s1"
    elif kind is OutcomeKind.TRANSIENT:  # the last attempt: attempts are spent
        assert decided.kind is OutcomeKind.PERMANENT and decided.status is Status.FAILED
        assert decided.error == (
            f"it broke (attempt {attempts} of {policy.max_attempts}; "
            "`ai-employee retry` to try again)"
        )
    else:
        assert decided.status is Status.FAILED and decided.folder is Folder.FAILED
        assert decided.error == "it broke"
    assert decided.result is not None and decided.result.startswith(f"**{decided.kind.value}**")
    assert decided.result.endswith("Transcript: `Logs/tasks/t1.jsonl`")


def test_a_skipped_run_has_no_end() -> None:
    with pytest.raises(ValueError, match="no end to record"):
        end(OutcomeKind.SKIPPED, Status.PLANNED, 1, RetryPolicy(3, 1, 10))


@given(attempts=st.integers(0, 8), policy=policies)
def test_an_interrupted_attempt_counts_by_the_same_rule(attempts: int, policy: RetryPolicy) -> None:
    counted = decide_interrupted(attempts, policy, NOW)
    if policy.spent(attempts):
        assert counted.folder is Folder.FAILED and counted.changes["status"] is Status.FAILED
        assert counted.error.startswith(f"interrupted on attempt {attempts} of ")
    else:
        assert counted.folder is None and counted.changes == {"status": Status.PLANNED}
    # the same boundary as a transient failure at the end of a run
    last = end(OutcomeKind.TRANSIENT, Status.EXECUTING, max(attempts, 1), policy)
    assert (last.kind is OutcomeKind.PERMANENT) == policy.spent(max(attempts, 1))


def test_the_backoff_doubles_with_jitter_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(10, 30, 900)
    for attempt, low, high in [(1, 30, 60), (2, 60, 90), (3, 120, 150), (10, 900, 900)]:
        assert low <= policy.delay(attempt) <= high
    assert timedelta(seconds=policy.delay(1)) >= timedelta(seconds=30)


def _asked_end(granted: tuple[str, ...] = (), approved_meanwhile: bool = False) -> RunEnd:
    asks = (Ask("edit", "hello.txt", "edit(Write hello.txt)"),)
    return decide_end(
        task_id="k3x9",
        status=Status.EXECUTING,
        attempts=2,
        outcome=Outcome(OutcomeKind.ASKED, error="asked", session_id="s1", asked=asks),
        duration_s=1.0,
        policy=RetryPolicy(3, 1.0, 10.0),
        now=NOW,
        granted=granted,
        approved_meanwhile=approved_meanwhile,
    )


def test_an_ask_waits_for_a_person_unless_granted_or_approved_while_it_ran() -> None:
    waits = _asked_end()
    assert (waits.status, waits.folder) == (Status.PENDING_APPROVAL, Folder.PENDING_APPROVAL)
    assert waits.changes["requested_tools"] == ["edit(Write hello.txt)"]
    # Granted as the agent's wait ended (an approval that reached it a moment too late):
    # it runs again with the grant, in the same session, no attempt spent.
    again = _asked_end(granted=("edit(Write hello.txt)", "Bash(ls)"))
    assert (again.status, again.folder) == (Status.PLANNED, None)
    assert again.changes["requested_tools"] is None and again.changes["session_id"] == "s1"
    assert again.changes["attempts"] == 1 and again.changes["next_attempt_at"] is None
    # A grant of something else is not this one.
    assert _asked_end(granted=("Bash(ls)",)).status is Status.PENDING_APPROVAL
    # A person approved while it still ran: their approval stands where they put it, and
    # grants what was asked when the service takes it.
    kept = _asked_end(approved_meanwhile=True)
    assert (kept.status, kept.folder) == (Status.APPROVED, None)
    assert kept.changes["requested_tools"] == ["edit(Write hello.txt)"]


def _concluded(text: str, outcome: Outcome, place: Folder, tmp_path: Path) -> tuple[RunEnd, str]:
    claim = {"status": "executing", "attempts": 1, "session_id": "s1"}
    config = load_config(tmp_path, env={})
    return concluded(text, "T.md", "k3x9", claim, outcome, 1.0, config, NOW, place)


def test_an_approval_counts_at_a_runs_end_only_where_a_person_approves(tmp_path: Path) -> None:
    asks = (Ask("edit", "hello.txt", "edit(Write hello.txt)"),)
    asked = Outcome(OutcomeKind.ASKED, error="asked", session_id="s1", asked=asks)
    note = "---\ntitle: T\ntask_id: k3x9\nstatus: approved\nattempts: 1\n---\nDo it.\n"
    in_pending, _ = _concluded(note, asked, Folder.PENDING_APPROVAL, tmp_path)
    assert in_pending.status is Status.APPROVED, "a person's approval in Pending_Approval/ stands"
    in_needs, _ = _concluded(note, asked, Folder.NEEDS_ACTION, tmp_path)
    assert in_needs.status is Status.PENDING_APPROVAL, "`approved` written in Needs_Action/: none"


def test_a_run_that_ends_while_its_note_waits_for_a_person_goes_back_to_needs_action(
    tmp_path: Path,
) -> None:
    held = (
        "---\ntitle: T\ntask_id: k3x9\nstatus: pending_approval\nattempts: 0\n"
        'requested_tools: ["edit(Write hello.txt)"]\n---\nDo it.\n'
    )
    died = Outcome(OutcomeKind.TRANSIENT, error="the ACP agent exited 3")
    end, text = _concluded(held, died, Folder.PENDING_APPROVAL, tmp_path)
    assert (end.status, end.folder) == (Status.PLANNED, Folder.NEEDS_ACTION)
    assert "requested_tools" not in text and "attempts: 1" in text, "counted from its claim"
