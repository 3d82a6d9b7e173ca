"""Running tasks with real processes: claim, queue, retries, stops, crashes, exactly once."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ai_employee.base import fsops
from ai_employee.base.config import Config
from ai_employee.daemon.messages import Message
from ai_employee.daemon.service import make_agent
from ai_employee.notes.notefile import LOCK_STRIPES
from ai_employee.notes.taskfile import edit_note_text
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running import agentproc
from ai_employee.running.agents import CommandAgent
from ai_employee.running.budget import DailyBudget
from ai_employee.running.coordinator import RunCoordinator
from ai_employee.running.run_context import RunContext
from ai_employee.running.run_end import retry_delay
from ai_employee.running.run_messages import AgentGone, Claimed, RunEnded
from ai_employee.running.runrecords import RunJournal
from ai_employee.running.scheduler import RunRequest

from .helpers import wait_for
from .service_harness import (
    cancel,
    drop,
    events,
    note,
    person,
    running_service,
    service_process,
    stop_service,
    svc_config,
    wait_status,
)

FAKE = Path(__file__).with_name("fake_agent.py")


def agent_config(vault: Vault, ledger: Path, **overrides: object) -> Config:
    os.environ["FAKE_LEDGER"] = str(ledger)
    command = f"{sys.executable} {FAKE} {{task_id}} {{workdir}} {{prompt_file}}"
    return svc_config(
        vault,
        agent="command",
        agent_command=command,
        retry_initial_seconds=0,
        retry_max_seconds=0,
        **overrides,
    )


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("FAKE_LEDGER", str(path))
    return path


def ledger_events(ledger: Path) -> list[tuple[str, str, int, int]]:
    out = []
    for line in ledger.read_text().splitlines():
        task, event, pid, ns = line.split()
        out.append((task, event, int(pid), int(ns)))
    return out


def starts(ledger: Path) -> Counter[str]:
    return Counter(task for task, event, _, _ in ledger_events(ledger) if event == "start")


def task(title: str, behave: str = "ok", priority: str = "normal", app: str | None = None) -> str:
    where = f"language: py\napp: {app}\n" if app else ""
    return (
        f"---\ntitle: {title}\ntype: claude_app\npriority: {priority}\n{where}---\n"
        f"behave: {behave}\n"
    )


def done_note(vault: Vault, name: str, timeout: float = 20) -> Path:
    path = vault.folder(Folder.DONE) / name
    wait_status(path, "done", timeout)
    return path


def test_a_planned_task_runs_once_and_is_recorded_in_done(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(agent_config(vault, ledger)):
        drop(vault, tmp_path, "Build.md", task("Build", app="builder"))
        finished = note(done_note(vault, "Build.md"))
    assert finished.meta["attempts"] == 1 and finished.meta["exit_code"] == 0
    assert finished.meta["duration_s"] > 0 and finished.meta["completed_at"]
    assert "## Result" in finished.body and f"built it for {finished.task_id}" in finished.body
    assert (vault.root.parent / "apps" / "py" / "builder" / "result.txt").exists()
    assert starts(ledger) == {finished.task_id: 1}
    transcript = vault.transcripts / f"{finished.task_id}.jsonl"
    assert '"kind": "out"' in transcript.read_text() and '"kind": "end"' in transcript.read_text()
    assert not vault.run_journal.read_text(), "no live run: the run records are emptied"


def test_a_task_approved_while_the_service_was_down_runs_at_its_start(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """`approve` leaves it planned in Needs_Action; the first reconcile then writes nothing,
    so no event follows: the run starts all the same (it once waited for the sweep)."""
    held = vault.folder(Folder.PENDING_APPROVAL) / "Held.md"
    with running_service(agent_config(vault, ledger)):
        drop(vault, tmp_path, "Held.md", task("Held").replace("claude_app", "email"))
        wait_status(held, "pending_approval")
    assert person(vault, "approve", "Held.md").returncode == 0
    with running_service(agent_config(vault, ledger, sweep_seconds=3600)):
        done = note(done_note(vault, "Held.md", 15))
    assert starts(ledger) == {done.task_id: 1}


def test_priority_order_then_age(vault: Vault, ledger: Path) -> None:
    folder = vault.folder(Folder.NEEDS_ACTION)
    for name, priority in [
        ("a low", "low"),
        ("b normal", "normal"),
        ("c high", "high"),
        ("d high", "high"),
    ]:
        (folder / f"{name}.md").write_text(task(name, priority=priority))
    with running_service(agent_config(vault, ledger)):
        for name in ["a low", "b normal", "c high", "d high"]:
            done_note(vault, f"{name}.md")
    ids = {
        note(vault.folder(Folder.DONE) / f"{n}.md").task_id: n
        for n in ["a low", "b normal", "c high", "d high"]
    }
    order = [ids[t] for t, event, _, _ in ledger_events(ledger) if event == "start"]
    assert order == ["c high", "d high", "b normal", "a low"]


def _max_overlap(ledger: Path, tasks: set[str] | None = None) -> int:
    live, peak = 0, 0
    for task_id, event, _, _ in sorted(ledger_events(ledger), key=lambda e: e[3]):
        if tasks is not None and task_id not in tasks:
            continue
        live += 1 if event == "start" else -1
        peak = max(peak, live)
    return peak


def test_max_parallel_is_respected(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    with running_service(agent_config(vault, ledger, max_parallel=2)):
        for i in range(6):
            drop(vault, tmp_path, f"p{i}.md", task(f"p{i}", behave="sleep 0.4"))
        for i in range(6):
            done_note(vault, f"p{i}.md")
    assert _max_overlap(ledger) == 2
    assert sum(starts(ledger).values()) == 6


def _stripe(name: str) -> int:
    return zlib.crc32(name.encode()) % LOCK_STRIPES


def test_a_slot_is_free_once_the_agent_exits_while_its_end_is_still_recorded(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """max_parallel counts agents: the next run starts while the last one's note is written."""
    first, second = (
        "first.md",
        next(f"second{i}.md" for i in range(50) if _stripe(f"second{i}.md") != _stripe("first.md")),
    )
    lock_file = vault.machinery / "locks" / f"{_stripe(first):02d}.lock"
    gate = tmp_path / "gate"
    with running_service(agent_config(vault, ledger, max_parallel=1)):
        drop(vault, tmp_path, first, task("first", behave=f"gate {gate}"))
        wait_for(lambda: starts(ledger), what="the first agent started")
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_file, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # the first run cannot record its end yet
            try:
                gate.touch()  # now the first agent may end
                drop(vault, tmp_path, second, task("second"))
                wait_for(lambda: len(starts(ledger)) == 2, what="the second agent started")
                ended = [e for e in ledger_events(ledger) if e[1] == "end"]
                assert ended and ended[0][0] == next(iter(starts(ledger)))
                assert note(vault.folder(Folder.NEEDS_ACTION) / first).status.value == "executing"
            finally:
                fcntl.flock(held, fcntl.LOCK_UN)
        done_note(vault, first)
        done_note(vault, second)
    assert _max_overlap(ledger) == 1


def test_a_late_word_that_an_agent_is_gone_frees_only_the_slot_of_its_own_run(
    vault: Vault, ledger: Path
) -> None:
    """The runs driven message by message (real run threads, real agents): the word of the
    first run's agent gone is taken only after the task's second run started; it must not free
    the second run's slot."""
    config = agent_config(vault, ledger, max_parallel=1)
    inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
    now = lambda: datetime.now(UTC)  # noqa: E731
    context = RunContext(
        vault, config, make_agent(config), RunJournal(vault.run_journal), now, inbox.put
    )
    runs = RunCoordinator.for_service(context, 1, DailyBudget(0))
    path = vault.folder(Folder.NEEDS_ACTION) / "again.md"
    path.write_text(
        "---\ntitle: again\ntype: claude_app\ntask_id: again1\nstatus: planned\n---\n"
        "behave: fail-once\n"
    )
    request = RunRequest(path, "again1", "normal", "claude_app", None, vault.root / "work")

    def next_message() -> Message:
        return inbox.get(timeout=30)

    runs.offer(request)
    [first_run] = runs.start_ready(lambda task_id: None)
    task_id = first_run.task_id
    claimed = next_message()
    assert isinstance(claimed, Claimed) and runs.claimed(claimed)
    late = next_message()  # held back: it is taken late below
    assert isinstance(late, AgentGone) and late.run_id == first_run.run_id
    first_end = next_message()  # the first attempt recorded: a transient failure
    assert isinstance(first_end, RunEnded) and runs.ended(first_end)
    runs.offer(request)  # due again at once: queued, then started
    assert len(runs.start_ready(lambda task_id: None)) == 1  # the second run
    assert runs.running[task_id].run is not first_run
    assert runs.is_running(task_id) and runs.live_agents == 1
    runs.agent_gone(late)
    assert runs.live_agents == 1, "the second run's slot was freed"
    assert runs.start_ready(lambda task_id: None) == []
    while True:
        message = next_message()
        if isinstance(message, Claimed):
            runs.claimed(message)
        elif isinstance(message, AgentGone):
            runs.agent_gone(message)
        elif isinstance(message, RunEnded) and runs.ended(message):
            break
    assert runs.tally.succeeded == 1 and not runs.running
    assert sum(starts(ledger).values()) == 2 and _max_overlap(ledger) == 1


def test_an_agent_starts_only_after_its_plan_is_durable(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every edit of the main loop is durable in its own step: the plan's note edit syncs its
    folder in the loop's thread before the step is done, so before any claim or agent."""
    seen: list[tuple[str, str, str]] = []  # (what, name, thread)
    real_sync, real_run = fsops.fsync_dir, agentproc.AgentProcess.run

    def sync(folder: Path) -> None:
        real_sync(folder)
        seen.append(("sync", folder.name, threading.current_thread().name))

    def run(self: agentproc.AgentProcess) -> Any:
        seen.append(("agent", self.spec.task_id, threading.current_thread().name))
        return real_run(self)

    monkeypatch.setattr(fsops, "fsync_dir", sync)
    monkeypatch.setattr(agentproc.AgentProcess, "run", run)
    with running_service(agent_config(vault, ledger, max_parallel=2)) as service:
        loop = "service"  # the harness's name for the thread that runs the service
        service.reconciler.step_observers.append(
            lambda path, step, task_id: seen.append(
                (step.action.value, task_id, threading.current_thread().name)
            )
        )
        for i in range(5):
            drop(vault, tmp_path, f"d{i}.md", task(f"d{i}"))
        finished = [note(done_note(vault, f"d{i}.md")) for i in range(5)]
    for done in finished:
        planned = seen.index(("plan", done.task_id, loop))
        started = next(i for i, e in enumerate(seen) if e[:2] == ("agent", done.task_id))
        assert planned < started
        # the loop's last act before the plan step was done: syncing the note's folder
        before = [e for e in seen[:planned] if e[2] == loop]
        assert before[-1] == ("sync", "Needs_Action", loop), before[-3:]


def test_one_run_per_work_dir(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    with running_service(agent_config(vault, ledger, max_parallel=3)):
        for i in range(3):
            drop(vault, tmp_path, f"same{i}.md", task(f"same{i}", "sleep 0.3", app="shared"))
        for i in range(3):
            done_note(vault, f"same{i}.md")
    assert _max_overlap(ledger) == 1


def test_timeout_stops_the_run_and_fails_when_attempts_are_spent(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    config = agent_config(vault, ledger, task_timeout_seconds=1, max_attempts=1)
    with running_service(config):
        drop(vault, tmp_path, "slow.md", task("slow", behave="sleep 30"))
        failed = wait_status(vault.folder(Folder.FAILED) / "slow.md", "failed", 20)
    assert failed.meta["error"].startswith("timed out after 1 s (task_timeout_seconds)")
    assert "(attempt 1 of 1; `ai-employee retry` to try again)" in failed.meta["error"]
    assert [e for _, e, _, _ in ledger_events(ledger)] == ["start", "end"]


def test_stall_stops_a_silent_run(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    with running_service(agent_config(vault, ledger, stall_seconds=1, max_attempts=1)):
        drop(vault, tmp_path, "quiet.md", task("quiet", behave="silent 30"))
        failed = wait_status(vault.folder(Folder.FAILED) / "quiet.md", "failed", 20)
    assert failed.meta["error"].startswith("no output for 1 s (stall_seconds); stopped")


def test_transient_failure_is_retried_then_succeeds(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(agent_config(vault, ledger)):
        drop(vault, tmp_path, "flaky.md", task("flaky", behave="fail-once"))
        finished = note(done_note(vault, "flaky.md"))
    assert finished.meta["attempts"] == 2
    assert "error" not in finished.meta
    assert starts(ledger)[finished.task_id] == 2
    (retry,) = [e for e in events(vault, "run finished") if e["result"] == "retry later"]
    assert retry["error"] == "agent exited 4: first attempt fails"


def test_retries_spent_go_to_failed(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    with running_service(agent_config(vault, ledger, max_attempts=2)):
        drop(vault, tmp_path, "broken.md", task("broken", behave="fail"))
        failed = wait_status(vault.folder(Folder.FAILED) / "broken.md", "failed", 20)
    assert failed.meta["attempts"] == 2
    assert failed.meta["error"] == (
        "agent exited 3: something broke (attempt 2 of 2; `ai-employee retry` to try again)"
    )
    assert "something broke" in failed.body


def test_a_prompt_that_cannot_be_written_ends_the_attempt_as_a_recorded_failure(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """The prompt is written after the claim; if it cannot be (here a file stands where the
    prompts folder belongs), the attempt fails with that reason, counted and recorded, and the
    agent never starts."""
    (vault.machinery / "prompts").write_text("not a folder\n")
    with running_service(agent_config(vault, ledger, max_attempts=1)):
        drop(vault, tmp_path, "p.md", task("p"))
        failed = wait_status(vault.folder(Folder.FAILED) / "p.md", "failed", 20)
    assert failed.meta["attempts"] == 1
    assert failed.meta["error"].startswith("cannot write the prompt file")
    assert starts(ledger) == Counter()


def test_cancel_mid_run_stops_the_group_within_a_second(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(agent_config(vault, ledger)):
        path = drop(vault, tmp_path, "long.md", task("long", behave="grandchild", app="long"))
        running = wait_status(path, "executing")
        wait_for(
            lambda: "## Running\n\n- [[Needs_Action/long|long]]" in vault.dashboard.read_text(),
            what="the run on the dashboard",
        )
        pid_file = vault.root.parent / "apps" / "py" / "long" / "grandchild.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the grandchild")
        grandchild = int(pid_file.read_text())
        started = time.monotonic()
        result = cancel(vault, running.task_id)
        assert result.returncode == 0, result.stderr
        cancelled = wait_status(vault.folder(Folder.DONE) / "long.md", "cancelled")
        stopped_in = time.monotonic() - started
    assert stopped_in < 3.0
    assert (
        not Path(f"/proc/{grandchild}").exists()
        or Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z"
    )
    assert "cancelled by a person" in cancelled.body


def test_a_stale_buffer_written_over_an_executing_note_starts_no_second_run(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"  # the run lasts until the stale save has been handled
    with running_service(agent_config(vault, ledger)) as service:
        path = drop(vault, tmp_path, "stale.md", task("stale", behave=f"gate {gate}"))
        running = wait_status(path, "executing")
        # What an editor that loaded the note before the claim holds in its buffer:
        planned_text = edit_note_text(
            path.read_text(), {"status": "planned", "started_at": None, "attempts": None}
        )
        stale = tmp_path / "stale buffer.md"
        stale.write_text(planned_text)  # an editor saves the copy it loaded before the claim
        stale.rename(path)
        wait_for(lambda: events(vault, "claim restored"), what="the claim restored")
        assert note(path).meta["status"] == "executing"
        assert note(path).meta["attempts"] == 1
        gate.touch()
        done_note(vault, "stale.md")
        assert service.runs.tally.started == 1
    assert starts(ledger) == {running.task_id: 1}


def test_a_copy_of_a_running_note_is_held_not_run(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(agent_config(vault, ledger)):
        path = drop(vault, tmp_path, "orig.md", task("orig", behave="sleep 1"))
        running = wait_status(path, "executing")
        shutil.copy(path, tmp_path / "orig copy.md")
        (tmp_path / "orig copy.md").rename(vault.folder(Folder.NEEDS_ACTION) / "orig copy.md")
        held = wait_status(
            vault.folder(Folder.PENDING_APPROVAL) / "orig copy.md", "pending_approval"
        )
        done_note(vault, "orig.md")
    assert held.task_id != running.task_id and "started_at" not in held.meta
    assert starts(ledger) == {running.task_id: 1}


def _env(ledger: Path, **extra: str) -> dict[str, str]:
    command = f"{sys.executable} {FAKE} {{task_id}} {{workdir}} {{prompt_file}}"
    return {
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": command,
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.2",
        "AI_EMPLOYEE_RETRY_INITIAL_SECONDS": "0",
        "FAKE_LEDGER": str(ledger),
        **extra,
    }


def test_service_killed_mid_run_then_restarted_never_overlaps(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    first = service_process(vault, _env(ledger))
    try:
        path = drop(vault, tmp_path, "crash.md", task("crash", behave="sleep-first 60"))
        running = wait_status(path, "executing")
        wait_for(lambda: starts(ledger), what="the agent to start")
        first.kill()  # SIGKILL: no chance to clean up; the agent lives on
        first.wait(10)
    finally:
        stop_service(first)
    (orphan_pid,) = [pid for _, e, pid, _ in ledger_events(ledger) if e == "start"]
    assert Path(f"/proc/{orphan_pid}").exists(), "the agent outlived the service"
    second = service_process(vault, _env(ledger))
    try:
        finished = note(done_note(vault, "crash.md", 30))
    finally:
        stop_service(second)
    timeline = [(e, pid) for _, e, pid, _ in sorted(ledger_events(ledger), key=lambda e: e[3])]
    assert timeline[:2] == [("start", orphan_pid), ("end", orphan_pid)], timeline
    assert timeline[2][0] == "start" and timeline[2][1] != orphan_pid
    assert finished.meta["attempts"] == 2 and finished.task_id == running.task_id
    assert events(vault, "stopped a leftover agent")
    assert events(vault, "interrupted attempt", running.task_id)


def test_sigterm_with_a_run_in_progress_leaves_it_interrupted_for_the_next_start(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    proc = service_process(vault, _env(ledger, AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS="0.5"))
    try:
        path = drop(vault, tmp_path, "term.md", task("term", behave="sleep-first 60"))
        wait_status(path, "executing")
        wait_for(lambda: starts(ledger), what="the agent to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop_service(proc)
    assert note(path).meta["status"] == "executing"
    assert [e for _, e, _, _ in ledger_events(ledger)] == ["start", "end"]
    again = service_process(vault, _env(ledger))
    try:
        finished = note(done_note(vault, "term.md", 30))
    finally:
        stop_service(again)
    assert finished.meta["attempts"] == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_second_stop_during_the_grace_stops_the_runs_at_once(
    vault: Vault, tmp_path: Path, ledger: Path, sig: signal.Signals
) -> None:
    """The first signal is a warm stop (the runs get shutdown_grace_seconds, here 120 s); a
    second one is cold: the runs are stopped now and left interrupted for the next start."""
    proc = service_process(vault, _env(ledger, AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS="120"))
    try:
        path = drop(vault, tmp_path, "cold.md", task("cold", behave="sleep 300"))
        wait_status(path, "executing")
        wait_for(lambda: starts(ledger), what="the agent to start")
        proc.send_signal(sig)
        wait_for(lambda: events(vault, "waiting for runs"), what="the warm stop waiting")
        assert proc.poll() is None, "the first signal waits for the run"
        proc.send_signal(sig)
        assert proc.wait(30) == 0, "the second signal ends the wait well inside the grace"
    finally:
        stop_service(proc)
    assert note(path).meta["status"] == "executing", "left interrupted for the next start"
    assert [e for _, e, _, _ in ledger_events(ledger)] == ["start", "end"]
    [cold] = events(vault, "stopping runs now")
    assert cold["result"] == "a second stop: left executing, retried on the next start"


def test_once_runs_what_is_ready_and_summarises(vault: Vault, ledger: Path) -> None:
    folder = vault.folder(Folder.NEEDS_ACTION)
    (folder / "one.md").write_text(task("one"))
    (folder / "two.md").write_text(task("two", behave="fail"))
    env = {
        **os.environ,
        **_env(ledger, AI_EMPLOYEE_MAX_ATTEMPTS="1"),
        "AI_EMPLOYEE_VAULT": str(vault.root),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ai_employee", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 8, result.stderr  # a run it started failed
    assert result.stdout.strip() == "ran 2: 1 succeeded, 1 failed, 0 to retry later, 0 cancelled"
    assert result.stderr.splitlines()[-1] == (
        "ai-employee: error: 1 of 2 run(s) did not succeed "
        "(`ai-employee status` lists them, `ai-employee logs` says why)"
    )
    assert (vault.folder(Folder.DONE) / "one.md").exists()
    assert (vault.folder(Folder.FAILED) / "two.md").exists()
    (folder / "three.md").write_text(task("three"))
    again = subprocess.run(
        [sys.executable, "-m", "ai_employee", "once", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr  # only what this once started counts
    assert json.loads(again.stdout)["succeeded"] == 1


def test_retry_delay_is_exponential_with_jitter_and_capped() -> None:
    for attempt, low, high in [(1, 30, 60), (2, 60, 90), (3, 120, 150), (10, 900, 900)]:
        delay = retry_delay(attempt, 30, 900)
        assert low <= delay <= high, (attempt, delay)


def test_a_cancel_that_lands_during_the_claim_wins(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is a compare-and-set: if a person cancels after the run's thread read the note
    but before its claim is in place, nothing is written and nothing starts."""
    path = vault.folder(Folder.NEEDS_ACTION) / "race.md"
    path.write_text("---\ntitle: race\ntask_id: r1\nstatus: planned\n---\nx\n")
    cancelled = "---\ntitle: race\ntask_id: r1\nstatus: cancelled\n---\nx\n"
    config = svc_config(vault, agent="command", agent_command="true")
    real_write_temp = fsops.write_temp
    saves = []

    def person_saves_then_write_temp(*args: Any, **kwargs: Any) -> Path:
        if not saves:  # our claim has read the note; a person saves (by rename) right now
            (tmp_path / "save.md").write_text(cancelled)
            os.replace(tmp_path / "save.md", path)
            saves.append(1)
        return real_write_temp(*args, **kwargs)

    monkeypatch.setattr(fsops, "write_temp", person_saves_then_write_temp)
    inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
    now = lambda: datetime.now(UTC)  # noqa: E731
    journal = RunJournal(vault.run_journal)
    context = RunContext(vault, config, CommandAgent("true"), journal, now, inbox.put)
    runs = RunCoordinator.for_service(context, 1, DailyBudget(0))
    request = RunRequest(path, "r1", "normal", "claude_app", None, tmp_path / "work")
    runs.offer(request)
    assert len(runs.start_ready(lambda task_id: None)) == 1
    ended = inbox.get(timeout=30)  # the only word: no Claimed, no agent
    assert isinstance(ended, RunEnded) and ended.outcome.kind.value == "skipped"
    assert runs.ended(ended) and inbox.empty()
    assert saves == [1]
    assert path.read_text() == cancelled
    assert runs.tally.started == 0 and not runs.running


def test_run_records_name_only_live_agents_and_survive_a_torn_line(tmp_path: Path) -> None:
    from ai_employee.running.runrecords import RunJournal, live_records

    path = tmp_path / "runs.jsonl"
    journal = RunJournal(path)
    journal.started({"task_id": "a", "pid": 11, "start_ticks": 5})
    journal.started({"task_id": "b", "pid": 12, "start_ticks": 6})
    journal.ended("a", 11)
    assert [r["task_id"] for r in live_records(path)] == ["b"]
    with path.open("a") as handle:
        handle.write('{"event": "start", "task_id": "c", "pi')  # the service died mid-line
    assert [r["task_id"] for r in live_records(path)] == ["b"]
    journal.ended("b", 12)
    assert path.read_text() == "", "nothing live: emptied"
    journal.close()


def test_the_prompt_file_is_written_only_for_an_agent_that_reads_it(
    vault: Vault, tmp_path: Path
) -> None:
    assert CommandAgent("agent --prompt={prompt_file} {task_id}").reads_prompt
    assert not CommandAgent("agent {task_id} {workdir}").reads_prompt
    with running_service(svc_config(vault, agent="command", agent_command="true {task_id}")):
        drop(vault, tmp_path, "silent.md", task("silent"))
        finished = note(done_note(vault, "silent.md"))
    assert not (vault.machinery / "prompts" / f"{finished.task_id}.md").exists()
