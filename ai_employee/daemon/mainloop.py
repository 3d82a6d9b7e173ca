"""The main loop: one thread takes every message off the one queue, decides, and acts.

Messages are hints (settled, then looked at), the runs' words (taken by the run coordinator,
then the note looked at again), plans written, folder changes, overflows and stop requests.
Between messages it looks at the paths whose time has come, starts the runs that may start,
runs the safety sweep and redraws Dashboard.md. It blocks only on its queue, until the next
message or the next deadline (a settling note, a retry time, the sweep, a redraw): nothing
sleeps on a fixed interval. Everything it touches (the note index, the coordinator, settling,
the dashboard, the budget, a usage limit's pause) is changed by this thread alone.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from ..base.config import Config
from ..deciding.planner import Plans, PlanWritten
from ..deciding.reconcile import Reconciler
from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.vault import Folder, Vault
from ..running.agents import OutcomeKind
from ..running.budget import DailyBudget
from ..running.coordinator import RunCoordinator
from ..running.run_messages import AgentGone, Claimed, RunEnded
from ..running.usage_limit import Pause, save_pause
from ..telling import dashboard_md
from ..telling.notify import Event, Notice, Tell
from ..watching.hints import FolderChanged, Hint, Kind, Overflowed
from ..watching.settle import Settling
from ..watching.watcher import VaultWatcher
from .messages import Message, StopRequested
from .sdnotify import WatchdogPinger

log = structlog.get_logger(__name__)

LOOKS_PER_TURN = 16
"""Settled paths looked at per turn of the loop before finished runs are handled again."""

COLD_STOP_SECONDS = 30.0
"""After a cold stop, how long the loop waits for the runs' ends before it exits anyway (a run
stops its agent's group within two seconds; this bounds a run that cannot record)."""


_TOLD_ENDS = {Status.DONE: Event.DONE, Status.FAILED: Event.FAILED}
"""The ends of a run a person is told of (a cancel is theirs; a retry is not news)."""


@dataclass
class Stats:
    """Counters a person (and the benchmarks) can read: in the log at exit and on the dashboard."""

    looks: int = 0
    overflows: int = 0
    rescans: int = 0
    sweeps: int = 0
    started: float = field(default_factory=time.monotonic)
    ready_seconds: float | None = None


@dataclass
class MainLoop:
    """The service's main loop (see the module docstring): built by the Service, run in the
    thread that calls `Service.run`."""

    config: Config
    vault: Vault
    now: Callable[[], datetime]
    inbox: queue.SimpleQueue[Message]
    index: NoteIndex
    reconciler: Reconciler
    runs: RunCoordinator
    settling: Settling
    dashboard: dashboard_md.DashboardFile
    budget: DailyBudget
    plans: Plans
    hooks: Tell
    """Told when a run's end leaves its task done or failed."""
    once: bool
    stats: Stats = field(default_factory=Stats)
    watcher: VaultWatcher | None = None
    """Set once it runs (its reader thread posts to `inbox`)."""
    pinger: WatchdogPinger | None = None
    """Set when systemd watches: told of the loop's progress."""
    stopping: bool = False
    _cold: bool = False
    _cold_deadline: float = 0.0
    _rescan: bool = False
    _relayout: bool = False
    _next_sweep: float = 0.0

    def __post_init__(self) -> None:
        # A note the loop itself moves into Done/ or Failed/ (a crash's move finished, attempts
        # spent) counts there at once, as a run's end does.
        self.reconciler.step_observers.append(
            lambda path, step, task_id: self.dashboard.landed(path)
        )

    def first_reconcile(self) -> int:
        """What the plans record of every task, then every active note; the sweep's clock
        starts now."""
        self.reconciler.records.load()
        self.reconciler.told.load()
        seen = self.reconciler.reconcile_all()
        self.dashboard.count_finished()
        self.draw_dashboard(force=True)
        self._next_sweep = time.monotonic() + self.config.sweep_seconds
        return seen

    def run(self) -> None:
        """Turn until a stop is taken (or, for `once`, until nothing is left to do)."""
        while not self.stopping:
            self._turn()
            if self.once and self._once_done():
                break

    def _turn(self) -> None:
        """One turn: wait for a message or a deadline, take what came, act, start runs."""
        timeout = self._next_timeout()
        try:
            with self.waiting():
                first = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            first = None
        self._take_waiting([] if first is None else [first])
        with self._survive("start runs"):
            self._start_runs()
        with self._survive("work"):
            self._work()
        with self._survive("start runs"):
            self._start_runs()

    def _take_waiting(self, batch: list[Message] | None = None) -> None:
        """Take every message waiting on the queue (after `batch`, already taken)."""
        batch = batch or []
        with contextlib.suppress(queue.Empty):
            while len(batch) < 10_000:
                batch.append(self.inbox.get_nowait())
        # An edit of ours (an exchange) and a save by rename both read "gone, arrived":
        # the arrival alone says it all.
        arriving = {m.path for m in batch if isinstance(m, Hint) and m.kind is Kind.ARRIVED}
        for message in batch:
            if isinstance(message, Hint) and message.kind is Kind.GONE and message.path in arriving:
                continue
            with self._survive("message"):
                self._take(message)

    def _take(self, message: Message) -> None:
        """One message, from whichever thread posted it."""
        self._beat()
        if isinstance(message, Hint):
            if self.settling.take(message, time.monotonic()):
                self.index.forget(message.path)
        elif isinstance(message, Claimed):
            if self.runs.claimed(message):
                # A stale copy seen before the claim was known waits for this: look again.
                self.reconciler.look(message.path)
        elif isinstance(message, AgentGone):
            pause = self.runs.agent_gone(message)
            if pause is not None:
                self._paused(pause)
        elif isinstance(message, RunEnded):
            if self.runs.ended(message):
                self._after_run(message)
        elif isinstance(message, PlanWritten):
            self.plans.written(message.path)
            self.settling.arrived(message.path, time.monotonic())
        elif isinstance(message, FolderChanged):
            if self.watcher is not None:
                self.watcher.folder_changed(message.folder, message.went)
            self._relayout = True
        elif isinstance(message, Overflowed):
            self.stats.overflows += 1
            self._rescan = True
        elif isinstance(message, StopRequested):
            if self.stopping:
                self._cold_stop()
            self.stopping = True

    @contextlib.contextmanager
    def _survive(self, what: str) -> Iterator[None]:
        """A bug or an OS error in one step is logged with its traceback; the service goes on."""
        try:
            yield
        except Exception as err:
            log.exception(
                "internal error",
                action_type="error",
                target=what,
                error=f"{type(err).__name__}: {err}",
            )

    def _beat(self) -> None:
        """The loop made progress (the watchdog pinger's sign of life)."""
        if self.pinger is not None:
            self.pinger.beat()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        if self.pinger is None:
            yield
            return
        with self.pinger.waiting():
            yield

    def _work(self) -> None:
        if self._relayout:
            self._relayout = False
            rewatched = self.watcher.ensure() if self.watcher else []
            if rewatched:
                count = self.reconciler.reconcile_all()
                log.warning(
                    "folders watched again",
                    action_type="rescan",
                    target=str(self.vault.root),
                    parameters={"folders": [self.vault.rel(p) for p in rewatched]},
                    result=f"a watched folder was replaced; {count} notes looked at",
                )
        if self._rescan:
            self._rescan = False
            self.stats.rescans += 1
            count = self.reconciler.reconcile_all()
            log.warning(
                "rescan after event-queue overflow",
                action_type="rescan",
                target=str(self.vault.root),
                result=f"{count} notes looked at",
                parameters={"overflows": self.stats.overflows},
            )
        # A burst of arrivals is planned a slice at a time, so finished runs are followed by the
        # next ones at once instead of waiting for the whole backlog to be planned.
        for path in self.settling.due(time.monotonic(), limit=LOOKS_PER_TURN):
            self._look(path)
            self._start_runs()  # a note planned just now starts at once if a slot is free
        for path in self.index.due_wakeups(self.now()):
            self._look(path)
        over = self.runs.pause_over()
        if over is not None:
            self._save_pause(None)
            self.dashboard.changed()
            log.info(
                "claude runs resumed",
                action_type="usage_limit",
                result=f"the {over.limit} reset",
                parameters={"until": over.until},
            )
        if time.monotonic() >= self._next_sweep:
            self.stats.sweeps += 1
            if self.watcher is not None:
                self.watcher.ensure()  # a folder replaced with no event seen: watch it again
            self.reconciler.reconcile_all()
            self.dashboard.count_finished()
            self._next_sweep = time.monotonic() + self.config.sweep_seconds
        self.draw_dashboard()

    def _look(self, path: Path) -> None:
        self._beat()
        self.stats.looks += 1
        try:
            self.reconciler.look(path)
        except OSError as err:  # a full disk, a permission: say so, keep serving the rest
            log.error(
                "cannot process note",
                action_type="error",
                target=str(path),
                error=f"{type(err).__name__}: {err}",
            )

    def _next_timeout(self) -> float:
        if self._relayout or self._rescan:  # taken with the runs' messages after _work looked
            return 0.0
        now = time.monotonic()
        deadlines = [self._next_sweep]
        settle = self.settling.next_deadline()
        if settle is not None:
            deadlines.append(settle)
        wake = self.index.next_wakeup()
        if wake is not None:
            deadlines.append(now + max(0.0, (wake - self.now()).total_seconds()))
        redraw = self.dashboard.deadline(self.index.changes)
        if redraw is not None:
            deadlines.append(redraw)
        if self.runs.pause is not None:
            deadlines.append(now + max(0.0, (self.runs.pause.until - self.now()).total_seconds()))
        return max(0.0, min(deadlines) - now)

    # --- runs (the coordinator starts them; their threads' words come back as messages) ------

    def _start_runs(self) -> None:
        """Take what the runs said (a freed slot is used at once, even in the middle of a
        burst), then start what may start."""
        self._take_waiting()
        if self.stopping:
            return
        self.runs.start_ready(self.index.owners.get)

    def _after_run(self, ended: RunEnded) -> None:
        """A run is over. Whatever happened while recording, the note is decided again from
        the disk: a note left `executing` with no live run is an interrupted attempt, never
        stuck. Not after our own shutdown (an interrupted run is retried on the next start),
        and not at once after a claim that failed on our side (the safety sweep tries again:
        a failure must not spin)."""
        old = self.index.owners.get(ended.task_id, ended.before)
        new = ended.after or old
        kind = ended.outcome.kind
        if ended.claim_error:
            log.warning(
                "run not started",
                action_type="run",
                task_id=ended.task_id,
                error=ended.outcome.error,
                result="tried again at the next safety sweep",
            )
        elif kind is not OutcomeKind.INTERRUPTED:
            if new is not None and ended.end is not None:  # the task's record follows its note
                self.reconciler.records.moved(
                    ended.task_id, new, ended.end.status, head_written=True
                )
            if old is not None and old != new:
                self.index.forget(old)
            if new is not None and self.vault.folder_of(new) in (Folder.DONE, Folder.FAILED):
                self.index.forget(new)  # not watched
                self.dashboard.landed(new, ended.outcome.error)
            elif new is not None and new.exists():
                self.reconciler.look(new, force=True)
            if old is not None and old != new and old.exists():
                # Moved again before this loop took the run's end (a person approved the note
                # the moment it reached Pending_Approval/): its event was looked at while the
                # task still ran and left as it was; it is decided where it is now.
                self.reconciler.look(old, force=True)
        if kind is OutcomeKind.SKIPPED:
            return
        end_kind = ended.end.kind if ended.end is not None else None
        title = ended.title or ended.task_id
        if end_kind is OutcomeKind.ASKED and ended.end is not None:
            for event in (Event.PENDING_APPROVAL, Event.NEEDS_ATTENTION):
                where = new or ended.before
                self.hooks.tell(
                    Notice(event, where, ended.task_id, ended.workdir, title, ended.end.error)
                )
        if ended.end is not None and ended.end.status in _TOLD_ENDS:
            event = _TOLD_ENDS[ended.end.status]
            where = new or ended.before
            detail = ended.end.error
            self.hooks.tell(Notice(event, where, ended.task_id, ended.workdir, title, detail))
        detail = f"{kind.value} {ended.outcome.error}".strip()
        link = dashboard_md.link_for(self.vault.root, new) if new else ended.task_id
        self.dashboard.ran(dashboard_md.Line(link, ended.task_id, detail))

    def _paused(self, pause: Pause) -> None:
        """A run hit a usage limit and the coordinator holds every run until it resets (one
        timer, the pause's): on disk, in the log, and a person is told once per pause, not
        once per task that hit it."""
        self._save_pause(pause)
        self.dashboard.changed()
        now = self.now()
        says = pause.says(now)
        log.warning(
            "claude runs paused",
            action_type="usage_limit",
            task_id=pause.task_id,
            result=says,
            parameters={"until": pause.until, "limit": pause.limit},
        )
        where = self.index.owners.get(pause.task_id)
        seen = self.index.entries.get(where) if where is not None else None
        detail = f"claude runs are {says}; queued tasks start after it"
        self.hooks.tell(
            Notice(
                Event.NEEDS_ATTENTION,
                where or self.vault.root,
                pause.task_id,
                None,
                seen.title if seen is not None else pause.task_id,
                detail,
            )
        )

    def _save_pause(self, pause: Pause | None) -> None:
        """The pause on disk, for `status`, the web page and a restart (best effort)."""
        try:
            save_pause(self.vault.machinery, self.vault.tmp, pause)
        except OSError as err:
            log.error(
                "cannot write the usage-limit pause",
                action_type="usage_limit",
                error=f"{type(err).__name__}: {err}",
            )

    def finish_runs(self) -> None:
        """Shutdown: running tasks get shutdown_grace_seconds, then are stopped (interrupted);
        a second stop during the grace stops them at once (a cold stop)."""
        if not self.runs.running:
            return
        log.info(
            "waiting for runs",
            action_type="shutdown",
            parameters={
                "running": sorted(self.runs.running),
                "grace_s": self.config.shutdown_grace_seconds,
            },
        )
        deadline = time.monotonic() + self.config.shutdown_grace_seconds
        while self.runs.running:
            now = time.monotonic()
            if now >= deadline and not self._cold:
                self._cold_stop(why="the grace is over")
            if self._cold and now >= self._cold_deadline:
                log.error(
                    "runs did not end",
                    action_type="shutdown",
                    parameters={"running": sorted(self.runs.running)},
                    result="left executing; their agents are stopped at the next start",
                )
                return
            timeout = self._cold_deadline - now if self._cold else deadline - now
            try:
                message = self.inbox.get(timeout=max(0.01, timeout))
            except queue.Empty:
                continue
            if isinstance(message, AgentGone | Claimed | RunEnded | StopRequested):
                with self._survive("shutdown"):
                    self._take(message)

    def _cold_stop(self, why: str = "a second stop") -> None:
        if self._cold:
            return
        self._cold = True
        self._cold_deadline = time.monotonic() + COLD_STOP_SECONDS
        if self.runs.running:
            log.warning(
                "stopping runs now",
                action_type="shutdown",
                parameters={"running": sorted(self.runs.running)},
                result=f"{why}: left executing, retried on the next start",
            )
        self.runs.interrupt_all()

    def _once_done(self) -> bool:
        """`once`: nothing runs, nothing settles, nothing queued can start now."""
        if len(self.settling) or self._rescan or self._relayout:
            return False
        return self.runs.idle

    # --- Dashboard.md -----------------------------------------------------------------------

    def draw_dashboard(self, force: bool = False) -> None:
        self.dashboard.draw(self.index.changes, self._dashboard_state, force)

    def _dashboard_state(self) -> dashboard_md.DashboardState:
        now = self.now()
        return self.dashboard.state(
            self.index,
            self.runs.scheduler.queued,
            sorted(self.runs.running),
            self.budget,
            now,
            self.runs.pause,
        )
