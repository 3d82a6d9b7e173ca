"""The runs: which planned task starts next, what is running, and what each run's thread said.

Owned by the main loop, and changed only there. It queues the run requests that decisions make,
starts runs within `max_parallel` (which counts live agents), one per work dir and within the
daily budget, and takes the messages run threads post (`Claimed`, `Waiting`, `AgentGone`,
`RunEnded`). A run whose agent waits for a person's answer holds its slot while it waits; the
answer (an approval, a rejection) goes to it from here.
"Running" is held here and only here: a task runs from the moment its run is handed to a
thread until the main loop takes the run's `RunEnded`; its slot and work dir are free from its
`AgentGone` on, while the thread still records the end. A usage limit's `pause` is held here
too: while it holds, nothing starts (runs already started end as they will).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from .agents.base import OutcomeKind
from .budget import DailyBudget
from .executor import RunThread
from .run_context import RunContext
from .run_messages import AgentGone, Claimed, RunEnded, Waiting
from .scheduler import RunRequest, Scheduler
from .usage_limit import Pause

log = structlog.get_logger(__name__)


@dataclass
class Tally:
    """What happened to runs since the service started (for `once` and the log)."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    cancelled: int = 0
    interrupted: int = 0
    asked: int = 0
    paused: int = 0


_TALLIED: Mapping[OutcomeKind, str] = {
    OutcomeKind.SUCCESS: "succeeded",
    OutcomeKind.PERMANENT: "failed",
    OutcomeKind.TRANSIENT: "retrying",
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.ASKED: "asked",
    OutcomeKind.PAUSED: "paused",
}


class RunHandle(Protocol):
    """What the coordinator needs of a run (executor.RunThread is one)."""

    @property
    def run_id(self) -> int: ...

    @property
    def task_id(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def recording(self) -> threading.Event:
        """Set by the run's thread when it begins recording its end."""

    def start(self) -> None: ...

    def stop(self, interrupt: bool = False) -> None: ...

    def answer(self, number: int, allow: bool) -> None: ...

    def moved(self, path: Path) -> None: ...


@dataclass
class Running:
    """A task whose run was handed to a thread, as the main loop knows it."""

    run: RunHandle
    workdir: Path
    claim: Mapping[str, Any] | None = None
    """The keys its claim wrote, once `Claimed` was taken (None before)."""
    agent_gone: bool = False
    """`AgentGone` was taken: its slot and work dir are free; it is recording its end."""
    waiting: Waiting | None = None
    """Its agent waits for a person's answer to this (None: nothing waits)."""
    waiting_since: datetime | None = None
    """... since then (an approval recorded before it does not answer it)."""
    rejected: bool = False
    """A person's end was answered "reject" to its waiting agent: it ends its turn itself (its
    thread stops it after a grace), so a later stop asks nothing more of it."""


Starter = Callable[[int, RunRequest, Path], RunHandle]
"""Makes the thread of a run (the service's: executor.RunThread with its context)."""


@dataclass
class RunCoordinator:
    max_parallel: int
    budget: DailyBudget
    now: Callable[[], datetime]
    starter: Starter
    scheduler: Scheduler = field(default_factory=Scheduler)
    running: dict[str, Running] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    pause: Pause | None = None
    """A usage limit holds every run until it resets (set by the main loop; see usage_limit)."""
    _run_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def for_service(cls, ctx: RunContext, max_parallel: int, budget: DailyBudget) -> RunCoordinator:
        """Runs started as executor.RunThread with the service's context."""
        return cls(
            max_parallel,
            budget,
            ctx.now,
            lambda run_id, request, path: RunThread(run_id, request, path, ctx),
        )

    # --- what decisions ask -----------------------------------------------------------------

    def is_running(self, task_id: str) -> bool:
        return task_id in self.running

    def claim_to_restore(self, task_id: str) -> Mapping[str, Any] | None:
        """The claim to put back over a stale copy of a running task's note; None while it is
        not known yet or the run is recording its end (the run then decides). Read inside the
        restoring edit, so a run that begins recording meanwhile is seen."""
        running = self.running.get(task_id)
        if running is None or running.claim is None or running.run.recording.is_set():
            return None
        return running.claim

    def offer(self, request: RunRequest) -> bool:
        """Queue a planned task that may run (once; not while it runs). True if now queued."""
        if request.task_id in self.running:
            return False
        return self.scheduler.add(request)

    def withdraw(self, task_id: str) -> None:
        """A queued task may not run now after all (it waits for another task): off the queue."""
        self.scheduler.discard(task_id)

    def stop(self, task_id: str) -> None:
        """A person ended a running task: stop its agent (a run recording its end has none).
        An agent that waits for a person is answered "reject" instead, and ends its turn."""
        running = self.running.get(task_id)
        if running is None or running.agent_gone or running.rejected:
            return
        log.info("stopping run", action_type="cancel", task_id=task_id, result="a person ended it")
        if running.waiting is not None and running.waiting.question is not None:
            running.run.answer(running.waiting.question.number, False)
            running.waiting, running.rejected = None, True
        else:
            running.run.stop()

    def waiting_since(self, task_id: str) -> datetime | None:
        """Since when the task's live agent waits for a person (None: it does not)."""
        running = self.running.get(task_id)
        return running.waiting_since if running is not None and running.waiting else None

    def waiting_of(self, task_id: str) -> Waiting | None:
        """What the task's live agent waits for a person to answer, if it waits (not once its
        run records its end: the end decides then). Read inside the edit that holds the note
        for a person, so a run that begins recording meanwhile is seen."""
        running = self.running.get(task_id)
        if running is None or running.agent_gone or running.run.recording.is_set():
            return None
        return running.waiting

    def answer(self, task_id: str, allow: bool) -> bool:
        """A person approved (or rejected) what the task's agent waits for: the answer goes to
        its run. False when nothing waits (it ended, or its wait is over)."""
        running = self.running.get(task_id)
        if running is None or running.agent_gone or running.waiting is None:
            return False
        if running.waiting.question is not None:
            running.run.answer(running.waiting.question.number, allow)
        running.waiting = None
        return True

    def moved(self, task_id: str, path: Path) -> None:
        """A step moved a running task's note: its run records its end there."""
        running = self.running.get(task_id)
        if running is not None:
            running.run.moved(path)

    def workdir_busy(self, workdir: Path) -> bool:
        """Whether a live agent of ours works in this work dir now."""
        return any(r.workdir == workdir and not r.agent_gone for r in self.running.values())

    def interrupt_all(self) -> None:
        """Shutdown: every live agent is stopped; its note stays `executing` (retried later),
        or `pending_approval` if its agent waited for a person (an approval loads its
        session)."""
        for running in self.running.values():
            running.run.stop(interrupt=True)

    # --- a usage limit ----------------------------------------------------------------------

    def paused(self, now: datetime) -> bool:
        return self.pause is not None and self.pause.holds(now)

    def pause_runs(self, pause: Pause) -> bool:
        """A run hit a usage limit: nothing starts until it resets. True when this is news (no
        pause held, or one that ends sooner); a later run hitting the same limit is not."""
        if self.pause is not None and self.pause.until >= pause.until:
            return False
        self.pause = pause
        return True

    def pause_over(self) -> Pause | None:
        """The pause that just ended (once), so runs start again."""
        if self.pause is None or self.pause.holds(self.now()):
            return None
        over, self.pause = self.pause, None
        return over

    # --- starting runs ----------------------------------------------------------------------

    @property
    def queued(self) -> list[RunRequest]:
        """The queue in the order it would run (sorted on each call: for showing it)."""
        return self.scheduler.queued

    @property
    def running_ids(self) -> list[str]:
        """The tasks that run now, sorted."""
        return sorted(self.running)

    @property
    def live_agents(self) -> int:
        return sum(1 for r in self.running.values() if not r.agent_gone)

    def start_ready(self, where: Callable[[str], Path | None]) -> list[RunHandle]:
        """Start what may start now: priority order, max_parallel, one per work dir, budget.
        `where` says where a task's note is now (it may have moved since it was queued)."""
        started: list[RunHandle] = []
        if self.paused(self.now()):
            return started
        while self.live_agents < self.max_parallel and not self.budget.reached(self.now()):
            busy = {r.workdir for r in self.running.values() if not r.agent_gone}
            request = self.scheduler.next_ready(busy)
            if request is None:
                break
            path = where(request.task_id) or request.path
            run = self.starter(next(self._run_ids), request, path)
            self.running[request.task_id] = Running(run, request.workdir)
            try:
                run.start()
            except RuntimeError as err:  # no thread can be started now (a resource limit)
                del self.running[request.task_id]
                self.scheduler.add(request)
                log.error("cannot start a run", task_id=request.task_id, error=str(err))
                break
            started.append(run)
        return started

    # --- what run threads say ---------------------------------------------------------------

    def claimed(self, message: Claimed) -> bool:
        """The claim is on the note. False for a word from a run that is no longer ours."""
        running = self._of(message.task_id, message.run_id)
        if running is None:
            return False
        running.claim = message.claim
        self.tally.started += 1
        return True

    def waits(self, message: Waiting) -> bool:
        """The run's agent began (or ended) waiting for a person. False for a stray word."""
        running = self._of(message.task_id, message.run_id)
        if running is None or running.agent_gone:
            return False
        asks = message.question is not None
        running.waiting = message if asks else None
        running.waiting_since = self.now() if asks else None
        return True

    def agent_gone(self, message: AgentGone) -> Pause | None:
        """The agent is gone: its cost counts, its slot and work dir are free. A usage limit it
        hit pauses every run first; returned when it is news (`pause_runs`)."""
        running = self._of(message.task_id, message.run_id)
        if running is None:  # a late word from an earlier run of this task: frees nothing
            return None
        self.budget.count(message.cost_usd, self.now())
        running.agent_gone = True
        running.waiting = None
        if message.pause is not None and self.pause_runs(message.pause):
            return message.pause
        return None

    def ended(self, message: RunEnded) -> bool:
        """The run is over: it no longer counts as running. False for a stray word."""
        if self._of(message.task_id, message.run_id) is None:
            return False
        del self.running[message.task_id]
        kind = message.outcome.kind
        if kind is OutcomeKind.INTERRUPTED:
            self.tally.interrupted += 1
        elif message.end is not None and message.end.kind in _TALLIED:
            name = _TALLIED[message.end.kind]
            setattr(self.tally, name, getattr(self.tally, name) + 1)
        return True

    def _of(self, task_id: str, run_id: int) -> Running | None:
        running = self.running.get(task_id)
        return running if running is not None and running.run.run_id == run_id else None

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing queued can start now (`once` is done): a usage limit's
        pause counts as "cannot start now", as the daily budget does."""
        if self.running:
            return False
        now = self.now()
        return not self.scheduler.waiting() or self.budget.reached(now) or self.paused(now)
