"""The main loop: one thread takes every message off the one queue, decides, and acts.

Messages are hints (settled, then looked at), the runs' words (taken by the run coordinator,
then the note looked at again), plans written, folder changes, overflows and stop requests.
Between messages it looks at the paths whose time has come, starts the runs that may start,
runs the safety sweep and redraws Dashboard.md. It blocks only on its queue, until the next
message or the next deadline (a settling note, a retry time, a series' next time, the sweep, a
redraw, a usage limit's reset): nothing sleeps on a fixed interval. It routes; the parts it
routes to own their jobs: a look at one note (deciding/reconcile.py, and deciding/recurring.py
for a series), a run's end (deciding/after_run.py), a usage limit's pause (pauses.py), the
stop (shutdown.py), Dashboard.md (telling/dashboard_md.py). Everything they touch (the note
index, the series, the waiting tasks, the coordinator, settling, the dashboard, the budget, the
pause) is changed by this thread alone.
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
from ..base.diskspace import is_disk_error
from ..deciding.after_run import AfterRun
from ..deciding.planner import Plans, PlanWritten
from ..deciding.reconcile import Reconciler
from ..notes.index import NoteIndex
from ..notes.vault import Vault
from ..running.coordinator import RunCoordinator
from ..running.run_messages import AgentGone, CannotWrite, Claimed, RunEnded, Waiting
from ..telling.dashboard_md import DashboardFile
from ..watching.hints import FolderChanged, Hint, Kind, Overflowed
from ..watching.settle import Settling
from ..watching.watcher import VaultWatcher
from .messages import Message, StopRequested
from .pauses import Pauses
from .sdnotify import WatchdogPinger
from .shutdown import Shutdown

log = structlog.get_logger(__name__)

CLOCK_CHECK_SECONDS = 300.0
"""With a series waiting for its time, the loop wakes at least this often: a wall-clock jump (a
laptop that slept, a clock set forward) makes a time come sooner than the loop's own clock says."""

CLOCK_CHECK_NEAR_SECONDS = 20.0
"""... and this often while a series' time is less than CLOCK_CHECK_SECONDS away, so a laptop
waking just after a time writes it within `schedule.ON_TIME` (`catch_up: none` keeps it)."""

LOOKS_PER_TURN = 16
"""Settled paths looked at per turn of the loop before finished runs are handled again."""


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
    dashboard: DashboardFile
    plans: Plans
    after_run: AfterRun
    pauses: Pauses
    shutdown: Shutdown
    once: bool
    stats: Stats = field(default_factory=Stats)
    watcher: VaultWatcher | None = None
    """Set once it runs (its reader thread posts to `inbox`)."""
    pinger: WatchdogPinger | None = None
    """Set when systemd watches: told of the loop's progress."""
    _rescan: bool = False
    _relayout: bool = False
    _next_sweep: float = 0.0

    def first_reconcile(self) -> int:
        """What the plans record of every task, then every active note; the sweep's clock
        starts now."""
        seen = self.reconciler.start()
        self.dashboard.count_finished()
        self.dashboard.draw(force=True)
        self._next_sweep = time.monotonic() + self.config.sweep_seconds
        return seen

    def run(self) -> None:
        """Turn until a stop is taken (or, for `once`, until nothing is left to do)."""
        with self._survive("start runs"):
            self._start_runs()  # what the first reconcile queued (no event may come for it)
        while not self.shutdown.stopping:
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
                self.reconciler.forget(message.path)
        elif isinstance(message, Claimed):
            if self.runs.claimed(message):
                # A stale copy seen before the claim was known waits for this: look again.
                self.reconciler.look(message.path)
        elif isinstance(message, Waiting):
            if self.runs.waits(message):  # to Pending_Approval/ (or back): decided on the note
                self.reconciler.look(message.path, force=True)
        elif isinstance(message, AgentGone):
            pause = self.runs.agent_gone(message)
            if pause is not None:
                self.pauses.began(pause)
        elif isinstance(message, RunEnded):
            if self.runs.ended(message):
                self.after_run.take(message)
        elif isinstance(message, CannotWrite):
            self.reconciler.trouble.failed(message.what, message.target, message.error)
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
            self.shutdown.requested()

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
        """What is due: folders to watch again, a rescan, settled paths, wake-ups, the end of a
        usage limit's pause, the sweep, a redraw."""
        if self._relayout:
            self._relayout = False
            self._watch_again()
        if self._rescan:
            self._rescan = False
            self._rescan_all()
        # A burst of arrivals is planned a slice at a time, so finished runs are followed by the
        # next ones at once instead of waiting for the whole backlog to be planned.
        for path in self.settling.due(time.monotonic(), limit=LOOKS_PER_TURN):
            self._look(path)
            self._start_runs()  # a note planned just now starts at once if a slot is free
        for path in self.index.due_wakeups(self.now()):
            self._look(path)
        for path in self.reconciler.waits.take_woken():  # what they wait on changed
            self._look(path, force=True)
        for path in self.reconciler.recurring.due_paths(self.now()):  # a series' time came
            self._look(path, force=True)
        self.pauses.end_if_over()
        if time.monotonic() >= self._next_sweep:
            self._sweep()
        self._draw()

    def _watch_again(self) -> None:
        """A watched folder came, went or was replaced: watched again, and looked through."""
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

    def _rescan_all(self) -> None:
        """The kernel dropped events: every active note is looked at again."""
        self.stats.rescans += 1
        count = self.reconciler.reconcile_all()
        log.warning(
            "rescan after event-queue overflow",
            action_type="rescan",
            target=str(self.vault.root),
            result=f"{count} notes looked at",
            parameters={"overflows": self.stats.overflows},
        )

    def _draw(self) -> None:
        """Dashboard.md, when it is due; on a disk that takes no writes it waits (said once)."""
        try:
            self.dashboard.draw()
        except OSError as err:
            if not is_disk_error(err):
                raise
            self.reconciler.trouble.failed("Dashboard.md", self.vault.dashboard, err)

    def _sweep(self) -> None:
        """The safety sweep: whatever events missed is found (and Done/, Failed/ counted); a
        disk that refused writes is tried (write_trouble.py) before the notes it held back."""
        self.stats.sweeps += 1
        held = self.reconciler.trouble.probe()
        if held is not None:  # the disk takes writes again
            self.dashboard.changed()
            for path in held:
                self._look(path, force=True)
        if self.watcher is not None:
            self.watcher.ensure()  # a folder replaced with no event seen: watch it again
        self.reconciler.reconcile_all()
        self.dashboard.count_finished()
        self._next_sweep = time.monotonic() + self.config.sweep_seconds

    def _look(self, path: Path, *, force: bool = False) -> None:
        self._beat()
        self.stats.looks += 1
        self.reconciler.look(path, force=force)  # an OSError is said there; the rest goes on

    def _next_timeout(self) -> float:
        if self._relayout or self._rescan or self.reconciler.waits.any_woken:
            return 0.0  # taken with the runs' messages after _work looked
        now = time.monotonic()
        deadlines = [self._next_sweep]
        pause = self.runs.pause
        series = self.reconciler.recurring.next_wakeup()
        for when in (self.index.next_wakeup(), pause.until if pause is not None else None, series):
            if when is not None:  # a wall-clock time: a retry's, a usage limit's reset, a series'
                deadlines.append(now + max(0.0, (when - self.now()).total_seconds()))
        if series is not None:  # the wall clock may jump (a laptop's sleep): looked at again
            soon = (series - self.now()).total_seconds() < CLOCK_CHECK_SECONDS
            deadlines.append(now + (CLOCK_CHECK_NEAR_SECONDS if soon else CLOCK_CHECK_SECONDS))
        for deadline in (self.settling.next_deadline(), self.dashboard.deadline()):
            if deadline is not None:
                deadlines.append(deadline)
        return max(0.0, min(deadlines) - now)

    def _start_runs(self) -> None:
        """Take what the runs said (a freed slot is used at once, even in the middle of a
        burst), then start what may start."""
        self._take_waiting()
        if self.shutdown.stopping or self.reconciler.trouble.active:  # a claim would be refused
            return
        self.runs.start_ready(self.index.owners.get)

    def _once_done(self) -> bool:
        """`once`: nothing runs, nothing settles, nothing queued can start now."""
        if len(self.settling) or self._rescan or self._relayout or self.reconciler.waits.any_woken:
            return False
        return self.runs.idle

    def finish_runs(self) -> None:
        """After the loop: the runs' messages are taken until every run ended, within the
        shutdown's grace (shutdown.py decides when to stop them, and when to give up)."""
        if not self.shutdown.begin_grace():
            return
        while self.runs.running:
            timeout = self.shutdown.wait_more()
            if timeout is None:
                return
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                continue
            if isinstance(message, AgentGone | Claimed | RunEnded | StopRequested):
                with self._survive("shutdown"):
                    self._take(message)
