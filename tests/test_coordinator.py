"""The run coordinator (coordinator.py): the one place "running" is held.

Driven through its public functions with a stand-in run (the real run threads are exercised
end to end in test_running.py): offers, starts within max_parallel, one per work dir and the
budget, and the messages a run's thread posts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ai_employee.notes.lifecycle import Status
from ai_employee.running.agents.base import Ask, Outcome, OutcomeKind, Question
from ai_employee.running.budget import DailyBudget
from ai_employee.running.coordinator import RunCoordinator
from ai_employee.running.run_end import RunEnd
from ai_employee.running.run_messages import AgentGone, Claimed, RunEnded, Waiting
from ai_employee.running.scheduler import RunRequest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@dataclass
class FakeRun:
    run_id: int
    task_id: str
    path: Path
    recording: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    stops: list[bool] = field(default_factory=list)
    answers: list[tuple[int, bool]] = field(default_factory=list)
    where: Path | None = None

    def start(self) -> None:
        self.started = True

    def stop(self, interrupt: bool = False) -> None:
        self.stops.append(interrupt)

    def answer(self, number: int, allow: bool) -> None:
        self.answers.append((number, allow))

    def moved(self, path: Path) -> None:
        self.where = path


def coordinator(max_parallel: int = 2, budget: float = 0.0) -> RunCoordinator:
    return RunCoordinator(
        max_parallel,
        DailyBudget(budget),
        lambda: NOW,
        lambda run_id, request, path: FakeRun(run_id, request.task_id, path),
    )


def request(task_id: str, workdir: str = "", priority: str = "normal") -> RunRequest:
    return RunRequest(
        Path(f"/v/Needs_Action/{task_id}.md"),
        task_id,
        priority,
        "claude_app",
        None,
        Path("/apps") / (workdir or task_id),
    )


def nowhere(task_id: str) -> Path | None:
    return None


def ended(run: FakeRun, kind: OutcomeKind, end_kind: OutcomeKind | None = None) -> RunEnded:
    end = None
    if end_kind is not None:
        end = RunEnd(end_kind, Status.DONE, {}, "", None, "", 1)
    return RunEnded(run.run_id, run.task_id, Outcome(kind), end, run.path, run.path, 1.0)


def test_max_parallel_counts_live_agents_and_a_gone_agent_frees_its_slot() -> None:
    runs = coordinator(max_parallel=1)
    runs.offer(request("a"))
    runs.offer(request("b"))
    [a] = runs.start_ready(nowhere)
    assert isinstance(a, FakeRun) and a.started and a.task_id == "a"
    assert runs.start_ready(nowhere) == [] and runs.scheduler.waiting() == 1
    runs.agent_gone(AgentGone(a.run_id, "a", 0.5))
    assert runs.is_running("a"), "still recording its end"
    [b] = runs.start_ready(nowhere)
    assert b.task_id == "b" and runs.live_agents == 1
    assert runs.budget.spent_on(NOW) == 0.5, "its cost counted when the agent went"


def test_one_run_per_work_dir() -> None:
    runs = coordinator(max_parallel=3)
    for name in ("a", "b", "c"):
        runs.offer(request(name, workdir="shared" if name != "c" else ""))
    started = runs.start_ready(nowhere)
    assert sorted(r.task_id for r in started) == ["a", "c"]
    runs.agent_gone(AgentGone(started[0].run_id, "a", None))
    assert [r.task_id for r in runs.start_ready(nowhere)] == ["b"], "the work dir is free again"


def test_a_task_is_offered_once_and_never_while_it_runs() -> None:
    runs = coordinator()
    runs.offer(request("a"))
    runs.offer(request("a"))
    assert runs.scheduler.waiting() == 1
    assert len(runs.start_ready(nowhere)) == 1
    runs.offer(request("a"))
    assert runs.scheduler.waiting() == 0


def test_the_daily_budget_holds_new_runs_back() -> None:
    runs = coordinator(max_parallel=2, budget=1.0)
    runs.offer(request("a"))
    [a] = runs.start_ready(nowhere)
    runs.agent_gone(AgentGone(a.run_id, "a", 1.0))
    runs.offer(request("b"))
    assert runs.start_ready(nowhere) == [] and runs.budget.reached(NOW)
    assert runs.scheduler.waiting() == 1, "it waits in the queue"
    assert runs.idle is False  # "a" still records its end
    runs.ended(ended(a, OutcomeKind.SUCCESS, OutcomeKind.SUCCESS))
    assert runs.idle, "nothing runs and nothing queued can start (once is done)"


def test_the_claim_is_restorable_from_claimed_until_the_run_records() -> None:
    runs = coordinator()
    runs.offer(request("a"))
    [a] = runs.start_ready(nowhere)
    assert isinstance(a, FakeRun)
    assert runs.claim_to_restore("a") is None, "not known before Claimed"
    claim = {"status": Status.EXECUTING, "attempts": 1}
    assert runs.claimed(Claimed(a.run_id, "a", a.path, claim))
    assert runs.claim_to_restore("a") == claim and runs.tally.started == 1
    a.recording.set()
    assert runs.claim_to_restore("a") is None, "the run records its end: it decides"


def test_words_from_an_earlier_run_of_the_task_change_nothing() -> None:
    runs = coordinator(max_parallel=1)
    runs.offer(request("a"))
    [first] = runs.start_ready(nowhere)
    assert runs.ended(ended(first, OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT))
    runs.offer(request("a"))
    [second] = runs.start_ready(nowhere)
    runs.agent_gone(AgentGone(first.run_id, "a", 9.0))  # late
    assert runs.live_agents == 1, "the second run's slot was not freed"
    assert runs.budget.spent_on(NOW) == 0.0
    assert runs.claimed(Claimed(first.run_id, "a", first.path, {})) is False
    assert runs.ended(ended(first, OutcomeKind.SUCCESS, OutcomeKind.SUCCESS)) is False
    assert runs.running["a"].run is second


def test_stop_reaches_a_live_agent_only_and_shutdown_interrupts_all() -> None:
    runs = coordinator()
    runs.offer(request("a"))
    runs.offer(request("b"))
    a, b = runs.start_ready(nowhere)
    assert isinstance(a, FakeRun) and isinstance(b, FakeRun)
    runs.agent_gone(AgentGone(b.run_id, "b", None))
    runs.stop("a")
    runs.stop("b")  # recording its end: nothing left to stop
    runs.stop("nobody")
    assert a.stops == [False] and b.stops == []
    runs.interrupt_all()
    assert a.stops == [False, True] and b.stops == [True]


def test_the_tally_counts_how_runs_ended() -> None:
    runs = coordinator(max_parallel=6)
    kinds = {
        "s": (OutcomeKind.SUCCESS, OutcomeKind.SUCCESS),
        "f": (OutcomeKind.PERMANENT, OutcomeKind.PERMANENT),
        "r": (OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT),
        "l": (OutcomeKind.TRANSIENT, OutcomeKind.PERMANENT),  # the last attempt
        "c": (OutcomeKind.CANCELLED, OutcomeKind.CANCELLED),
        "i": (OutcomeKind.INTERRUPTED, None),
    }
    for name in kinds:
        runs.offer(request(name))
    for run in runs.start_ready(nowhere):
        assert isinstance(run, FakeRun)
        runs.claimed(Claimed(run.run_id, run.task_id, run.path, {}))
        runs.ended(ended(run, *kinds[run.task_id]))
    tally = runs.tally
    assert (tally.started, tally.succeeded, tally.failed) == (6, 1, 2)
    assert (tally.retrying, tally.cancelled, tally.interrupted) == (1, 1, 1)
    assert not runs.running


def test_a_waiting_agent_is_answered_once_and_a_persons_end_answers_it_reject() -> None:
    runs = coordinator()
    runs.offer(request("a"))
    [a] = runs.start_ready(nowhere)
    assert isinstance(a, FakeRun)
    first = Question(Ask("edit", "hello.txt", "edit(Write hello.txt)"), 1, 300.0)
    second = Question(Ask("edit", "bye.txt", "edit(Write bye.txt)"), 2, 300.0)
    assert runs.answer("a", allow=True) is False, "nothing waits yet"
    assert runs.waits(Waiting(a.run_id, "a", a.path, first, "s1"))
    assert runs.waits(Waiting(a.run_id + 1, "a", a.path, first, "s1")) is False, "a stray word"
    waiting = runs.waiting_of("a")
    assert waiting is not None and waiting.session_id == "s1"
    assert runs.waiting_since("a") == NOW
    assert runs.answer("a", allow=True) and a.answers == [(1, True)], "it names the question"
    assert runs.answer("a", allow=True) is False and runs.waiting_of("a") is None
    # It asks again; a person ends the task: the waiting agent is answered "reject" (it ends
    # its turn itself), never stopped over it, and a second look at the end changes nothing.
    runs.waits(Waiting(a.run_id, "a", a.path, second, "s1"))
    runs.stop("a")
    runs.stop("a")
    assert a.answers == [(1, True), (2, False)] and a.stops == []
    # Once the run begins recording its end, it waits for nobody.
    runs.waits(Waiting(a.run_id, "a", a.path, second, "s1"))
    a.recording.set()
    assert runs.waiting_of("a") is None
    runs.moved("a", Path("/v/Rejected/a.md"))
    assert a.where == Path("/v/Rejected/a.md")
