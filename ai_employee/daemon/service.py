"""The service: one per vault (a lock), its main loop (mainloop.py), and the threads around it.

Threads, and what each may change:
- the main loop (the thread that calls `run`): every decision; the note index; what is
  running (the run coordinator); the settling paths; Dashboard.md; the lifecycle's edits and
  moves of notes, and the plans;
- watchdog's reader thread (watcher.py): posts hints, folder changes and overflows, nothing else;
- one thread per run (executor.py): its claim and its end on its own note, its prompt, its
  agent process and transcript, its lines in the run journal; posts what happened;
- a planner thread per Claude plan (planner = "claude"): the plan file; posts when written;
- the hooks thread (notify.py), when a notification hook is set: the hooks' processes; the
  main loop puts notices on its own bounded queue, it posts nothing back;
- the watchdog pinger (sdnotify.py): WATCHDOG=1 datagrams.
Every thread's word reaches the main loop as a message on its one queue (messages.py).
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType

import structlog

from ..base import diskspace
from ..base.config import Config
from ..base.logs import os_user, remove_old_logs
from ..deciding.after_run import AfterRun
from ..deciding.planner import Plans
from ..deciding.reconcile import Reconciler
from ..notes.index import NoteIndex
from ..notes.notefile import NoteStore
from ..notes.records import TaskRecords
from ..notes.vault import Folder, Vault
from ..running.agents import Agent
from ..running.agents.choose import make_agent
from ..running.budget import DailyBudget
from ..running.coordinator import RunCoordinator
from ..running.run_context import RunContext
from ..running.runrecords import RunJournal, stop_leftovers
from ..telling.dashboard_md import DashboardFile
from ..telling.notify import Hooks, ToldRefusals
from ..watching.settle import Settling
from ..watching.watcher import VaultWatcher
from .lock import service_lock
from .mainloop import MainLoop
from .messages import Message, StopRequested
from .pauses import Pauses
from .sdnotify import Notifier, WatchdogPinger
from .shutdown import Shutdown

log = structlog.get_logger(__name__)


class Service:
    """`ai-employee run`: one per vault. The process's life around the main loop: the lock,
    signals, the recovery of leftover agents, the watcher, systemd's notifications."""

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_ready: Callable[[], None] | None = None,
        agent: Agent | None = None,
        once: bool = False,
    ) -> None:
        self.config = config
        self.vault = Vault(config.vault)
        self.now = now
        self.on_ready = on_ready
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        """The main loop's one queue: every other thread's word comes through it."""
        self.budget = DailyBudget(config.daily_budget_usd)
        self.journal = RunJournal(self.vault.run_journal)
        context = RunContext(
            self.vault, config, agent or make_agent(config), self.journal, now, self.inbox.put
        )
        self.runs = RunCoordinator.for_service(context, config.max_parallel, self.budget)
        self.index = NoteIndex()
        self.hooks = Hooks(config)
        self.records = TaskRecords(
            self.vault, NoteStore(self.vault.root, self.vault.tmp, config.max_note_bytes)
        )
        self.settling = Settling(config.settle_seconds)
        self.dashboard = DashboardFile(
            self.vault, self.index, self.runs, self.budget, now, self.records
        )
        self.pauses = Pauses(
            config, self.vault, self.runs, self.index, self.dashboard, self.hooks, now
        )
        self.loop = self._main_loop(once)
        self.reconciler = self.loop.reconciler
        self.stats = self.loop.stats
        self.notifier = Notifier()
        self.watcher: VaultWatcher | None = None

    def _main_loop(self, once: bool) -> MainLoop:
        """The main loop and the parts it routes to, each given what it owns or reads."""
        config, vault = self.config, self.vault
        plans = Plans(
            vault.folder(Folder.PLANS),
            vault.tmp,
            config.planner == "claude",
            config.claude_path,
            self.inbox.put,
        )
        reconciler = Reconciler(
            vault,
            config,
            now=self.now,
            actor=os_user(),
            runs=self.runs,
            index=self.index,
            plans=plans,
            records=self.records,
            hooks=self.hooks,
            told=ToldRefusals(vault.machinery / "told.json", vault.tmp),
            finished=self.dashboard,
        )
        dashboard = self.dashboard
        dashboard.series = reconciler.recurring.upcoming
        places = {"vault": vault.root, "apps_dir": config.apps_dir}
        dashboard.problems = lambda: (
            reconciler.trouble.words()
            or [f"Disk: {t.words}; {t.fix}." for t in diskspace.troubles(places)]
        )
        return MainLoop(
            config=config,
            vault=vault,
            now=self.now,
            inbox=self.inbox,
            index=self.index,
            reconciler=reconciler,
            runs=self.runs,
            settling=self.settling,
            dashboard=dashboard,
            plans=plans,
            after_run=AfterRun(vault, self.index, self.records, reconciler, dashboard, self.hooks),
            pauses=self.pauses,
            shutdown=Shutdown(self.runs, config.shutdown_grace_seconds),
            once=once,
        )

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`); returns the exit status."""
        self.vault.require()
        with service_lock(self.vault), self._signals():
            removed = self.vault.sweep_tmp()
            self.budget.load(self.vault.logs, self.now())
            self.pauses.load()  # a usage limit a previous service waited for
            # Before any retry can start; the journal of this service's runs then begins empty.
            stop_leftovers(self.vault.run_journal, self.vault.runs, self.vault.root)
            remove_old_logs(self.vault.logs, self.config.log_retention_days, self.now())
            # A vault made before recurring tasks: its Recurring/ (watched like the others).
            self.vault.folder(Folder.RECURRING).mkdir(exist_ok=True)
            self.watcher = VaultWatcher(
                self.vault.root, self.inbox.put, polling=self.config.polling
            )
            self.loop.watcher = self.watcher
            self.watcher.start()  # before the first reconcile: nothing falls between the two
            self.hooks.start()
            try:
                self._serve(removed)
            finally:
                if self.loop.pinger is not None:
                    self.loop.pinger.stop()
                self.watcher.stop()
                self.hooks.stop()  # after the runs' ends: what they told is run (briefly)
                self.journal.close()
            self.dashboard.draw(force=True)
            log.info(
                "service stopped",
                action_type="stop",
                result="ok",
                parameters={k: v for k, v in vars(self.stats).items() if k != "started"}
                | {"queued": self.runs.scheduler.waiting()}
                | vars(self.runs.tally),
            )
        return 0

    def _serve(self, temp_files_removed: int) -> None:
        seen = self.loop.first_reconcile()
        self.stats.ready_seconds = time.monotonic() - self.stats.started
        log.info(
            "service ready",
            action_type="start",
            target=str(self.vault.root),
            parameters={
                "notes": seen,
                "temp_files_removed": temp_files_removed,
                "polling": self.config.polling,
            },
            result=f"first reconcile in {self.stats.ready_seconds * 1000:.0f} ms",
        )
        self.notifier.ready(f"watching {self.vault.root}")
        if self.notifier.watchdog_seconds is not None:  # systemd watches from now on
            self.loop.pinger = WatchdogPinger(self.notifier, self.notifier.watchdog_seconds)
            self.loop.pinger.start()
        if self.on_ready is not None:
            self.on_ready()
        self.loop.run()
        self.notifier.stopping()
        with self.loop.waiting():  # for the runs' ends, bounded by the grace
            self.loop.finish_runs()

    def stop(self) -> None:
        """Ask the loop to finish what is in hand and return (any thread; a second call during
        the shutdown grace stops the runs at once)."""
        self.inbox.put(StopRequested())

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.inbox.put(StopRequested(signum))  # SimpleQueue.put is safe in a handler

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


__all__ = ["Service", "make_agent"]
