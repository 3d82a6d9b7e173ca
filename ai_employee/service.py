"""The service: one per vault (a lock), a main loop fed by filesystem events, signals, timers.

Threads: watchdog's observer threads only turn events into hints on a queue. The main loop owns
every decision and every write to a note, one at a time, so the lifecycle never races itself.
Nothing sleeps on a fixed interval: the loop blocks until the next hint or the next deadline
(a settling note, a retry time, the safety sweep, a dashboard redraw).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from . import dashboard_md, fsops
from .agentproc import Run, RunFinished, stop_leftovers
from .agents import Agent, CommandAgent, OutcomeKind
from .agents.claude import ClaudeAgent
from .config import Config
from .errors import LockHeld
from .executor import Executor
from .lifecycle import Status
from .logs import cost_on, os_user, remove_old_logs
from .reconcile import Reconciler, RunRequest
from .runrecords import RunJournal
from .scheduler import Scheduler
from .sdnotify import Notifier, WatchdogPinger
from .vault import TASK_FOLDERS, Folder, Vault
from .watcher import Hint, Kind, Settler, VaultWatcher

log = structlog.get_logger(__name__)

LOOKS_PER_TURN = 16
"""Settled paths looked at per turn of the loop before finished runs are handled again."""

DASHBOARD_MIN_INTERVAL = 1.0
"""Dashboard.md is redrawn at most this often (seconds), and only after a change."""


@contextlib.contextmanager
def service_lock(vault: Vault) -> Iterator[None]:
    """Hold `.ai-employee/lock` (flock) for the life of the service; name the holder if taken."""
    vault.machinery.mkdir(parents=True, exist_ok=True)
    fd = os.open(vault.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(
                f"another ai-employee service already runs on {vault.root} ({holder}); "
                "stop it first (one service per vault)"
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode(), 0
        )
        yield
    finally:
        os.close(fd)


@dataclass
class Stats:
    """Counters a person (and the benchmarks) can read: in the log at exit and on the dashboard."""

    looks: int = 0
    overflows: int = 0
    rescans: int = 0
    sweeps: int = 0
    started: float = field(default_factory=time.monotonic)
    ready_seconds: float | None = None


class Service:
    """`ai-employee run`: watch the vault and keep every note in line with the lifecycle."""

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_ready: Callable[[], None] = lambda: None,
        agent: Agent | None = None,
        once: bool = False,
    ) -> None:
        self.config = config
        self.vault = Vault(config.vault)
        self.now = now
        self.on_ready = on_ready
        self.once = once
        self.hints: queue.SimpleQueue[Hint | str] = queue.SimpleQueue()
        self.ended: queue.SimpleQueue[RunFinished] = queue.SimpleQueue()
        """Runs that ended, taken before each start of runs so a freed slot is used at once."""
        self.agents_gone: queue.SimpleQueue[Run] = queue.SimpleQueue()
        """Runs whose agent is gone: their slot is free while they record their end."""
        self.executor = Executor(
            self.vault, config, agent or make_agent(config), now, self._ended, self._agent_gone
        )
        self.stats = Stats()
        self.scheduler = Scheduler(config.max_parallel)
        self.settler = Settler(config.settle_seconds)
        self.recent: deque[dashboard_md.Line] = deque(maxlen=15)
        self.syncs = fsops.PendingSyncs()
        """Folder syncs owed by the loop's own edits in a batch (a burst's arrivals, a full
        reconcile), made before the loop waits, so the batch shares them. A run needs none of
        them: its claim syncs the note's folder before the agent starts (whatever it decides),
        which makes the plan under it durable too; the folder is handed over to it."""
        self._batched = False
        """Whether the loop's edits now owe their folder sync (see `syncs`) or make it at once."""
        self.reconciler = Reconciler(
            self.vault,
            config,
            now=now,
            actor=os_user(),
            on_run=self._queue_run,
            is_running=self.executor.is_running,
            on_stop=self.executor.cancel,
            claim_of=lambda task_id: self.executor.claims.get(task_id, {}),
            wake=lambda path: self.hints.put(Hint(path, Kind.ARRIVED)),
            sync_dir=self._sync_dir,
        )
        self.executor.announce = self.reconciler.announce
        self.notifier = Notifier()
        self.pinger: WatchdogPinger | None = None
        """Sends systemd's WATCHDOG=1 from its own thread while this loop is alive."""
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._relayout = threading.Event()
        self._dashboard_drawn_at = 0.0
        self._dashboard_changes = -1
        self._next_sweep = 0.0
        self._watcher: VaultWatcher | None = None

    # --- life cycle of the process ----------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`); returns the exit status."""
        self.vault.require()
        with service_lock(self.vault), self._signals():
            removed = self.vault.sweep_tmp()
            today = self.now()
            self.executor.spent[today.date().isoformat()] = cost_on(self.vault.logs, today)
            # Before any retry can start; then the journal of this service's runs begins empty.
            stop_leftovers(self.vault.run_journal, self.vault.runs, self.vault.root)
            self.executor.journal = RunJournal(self.vault.run_journal)
            remove_old_logs(self.vault.logs, self.config.log_retention_days, self.now())
            self._watcher = VaultWatcher(
                self.vault.root,
                self.hints.put,
                self._overflowed,
                polling=self.config.polling,
                on_layout=self._layout_changed,
            )
            self._watcher.start()  # before the first reconcile: nothing falls between the two
            try:
                with self._batch():
                    seen = self.reconciler.reconcile_all()
                self._draw_dashboard(force=True)
                self.stats.ready_seconds = time.monotonic() - self.stats.started
                log.info(
                    "service ready",
                    action_type="start",
                    target=str(self.vault.root),
                    parameters={
                        "notes": seen,
                        "temp_files_removed": removed,
                        "polling": self.config.polling,
                    },
                    result=f"first reconcile in {self.stats.ready_seconds * 1000:.0f} ms",
                )
                self._next_sweep = time.monotonic() + self.config.sweep_seconds
                self.notifier.ready(f"watching {self.vault.root}")
                if self.notifier.watchdog_seconds is not None:  # systemd watches from now on
                    self.pinger = WatchdogPinger(self.notifier, self.notifier.watchdog_seconds)
                    self.pinger.start()
                self.on_ready()
                self._loop()
                self.notifier.stopping()
                with self._waiting():  # for the runs' ends, bounded by the grace
                    self._finish_runs()
                with self._survive("sync"):
                    self.syncs.flush()  # what the last runs' ends made the loop write
            finally:
                if self.pinger is not None:
                    self.pinger.stop()
                self._watcher.stop()
                if self.executor.journal is not None:
                    self.executor.journal.close()
            self._draw_dashboard(force=True)
            log.info(
                "service stopped",
                action_type="stop",
                result="ok",
                parameters={k: v for k, v in vars(self.stats).items() if k != "started"}
                | {"queued": len(self.scheduler.queued)}
                | vars(self.executor.tally),
            )
        return 0

    def stop(self) -> None:
        """Ask the loop to finish what is in hand and return (thread- and signal-safe)."""
        self._stop.set()
        self.hints.put("stop")

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _layout_changed(self) -> None:
        """Called from watchdog's thread: a watched folder may have gone or come back."""
        self._relayout.set()
        self.hints.put("layout")

    def _ended(self, finished: RunFinished) -> None:
        """Called from a run's thread when its run is over (recorded or skipped)."""
        self.ended.put(finished)
        self.hints.put("ended")  # wakes the loop

    def _sync_dir(self, folder: Path) -> None:
        """How the loop's own edits are made durable: at once, or owed within a batch."""
        if self._batched:
            self.syncs.add(folder)
        else:
            fsops.fsync_dir(folder)

    @contextlib.contextmanager
    def _batch(self, batched: bool = True) -> Iterator[None]:
        self._batched = batched
        try:
            yield
        finally:
            self._batched = False

    def _agent_gone(self, run: Run) -> None:
        """Called from a run's thread when its agent's process group is gone."""
        self.agents_gone.put(run)
        self.hints.put("ended")  # wakes the loop: a slot is free

    def _overflowed(self) -> None:
        """Called from watchdog's thread when the kernel dropped events: rescan everything."""
        self.stats.overflows += 1
        self._rescan.set()
        self.hints.put("rescan")

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._turn()
                if self.once and self._once_done():
                    break
        finally:
            with self._survive("sync"):
                self.syncs.flush()

    def _turn(self) -> None:
        """One turn: wait for a hint or a deadline, take what came, act, start runs."""
        with self._survive("sync"):
            self.syncs.flush()  # every edit of ours is durable before we wait
        timeout = self._next_timeout()
        try:
            with self._waiting():
                item = self.hints.get(timeout=timeout) if timeout > 0 else self.hints.get_nowait()
        except queue.Empty:
            item = None
        batch = [] if item is None else [item]
        with contextlib.suppress(queue.Empty):
            while len(batch) < 10_000:
                batch.append(self.hints.get_nowait())
        # An edit of ours (an exchange) and a save by rename both read "gone, arrived":
        # the arrival alone says it all.
        arriving = {h.path for h in batch if isinstance(h, Hint) and h.kind is Kind.ARRIVED}
        for hint in batch:
            if isinstance(hint, Hint) and not (hint.kind is Kind.GONE and hint.path in arriving):
                with self._survive("event"):
                    self._take_hint(hint)
        with self._survive("start runs"):
            self._start_runs()
        with self._survive("work"):
            self._work()
        with self._survive("start runs"):
            self._start_runs()

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
    def _waiting(self) -> Iterator[None]:
        if self.pinger is None:
            yield
            return
        with self.pinger.waiting():
            yield

    def _take_hint(self, hint: Hint) -> None:
        self._beat()
        now = time.monotonic()
        if hint.kind is Kind.GONE:
            if hint.path.exists():  # an exchange or a rename over it: a new file is there
                self.settler.arrived(hint.path, now)
            else:
                self.settler.forget(hint.path)
                self.reconciler.forget(hint.path)
            return
        if hint.kind is Kind.ARRIVED:
            self.settler.arrived(hint.path, now)
            return
        if hint.kind is Kind.WRITTEN:  # written in place: wait until closed and quiet
            self.settler.activity(hint.path, now)
            return
        # Created. A file renamed in from outside the vault shows up as "created" only: if nobody
        # holds it open for writing and it has content, it is complete now. A writer creating it
        # in place still has it open (its close then settles it like any in-place write).
        try:
            size = hint.path.stat().st_size
        except FileNotFoundError:
            return
        if size > 0 and fsops.has_writers(hint.path) is False and hint.path not in self.settler:
            self.settler.arrived(hint.path, now)
        else:
            self.settler.activity(hint.path, now)

    def _work(self) -> None:
        if self._relayout.is_set():
            self._relayout.clear()
            rewatched = self._watcher.ensure() if self._watcher else []
            if rewatched:
                with self._batch():
                    count = self.reconciler.reconcile_all()
                log.warning(
                    "folders watched again",
                    action_type="rescan",
                    target=str(self.vault.root),
                    parameters={"folders": [self._rel(p) for p in rewatched]},
                    result=f"a watched folder was replaced; {count} notes looked at",
                )
        if self._rescan.is_set():
            self._rescan.clear()
            self.stats.rescans += 1
            with self._batch():
                count = self.reconciler.reconcile_all()
            log.warning(
                "rescan after event-queue overflow",
                action_type="rescan",
                target=str(self.vault.root),
                result=f"{count} notes looked at",
                parameters={"overflows": self.stats.overflows},
            )
        # A burst of arrivals is planned a slice at a time, so finished runs are followed by the
        # next ones at once instead of waiting for the whole backlog to be planned. The slice's
        # edits share their folder sync; a lone arrival's plan is synced within its step.
        due = self.settler.pop_due(time.monotonic(), limit=LOOKS_PER_TURN)
        with self._batch(len(due) > 1):
            for path in due:
                self._look(path)
                self._start_runs()  # a note planned just now starts at once if a slot is free
        for path in self.reconciler.due_wakeups(self.now()):
            self._look(path)
        if time.monotonic() >= self._next_sweep:
            self.stats.sweeps += 1
            if self._watcher is not None:
                self._watcher.ensure()  # a folder replaced with no event seen: watch it again
            with self._batch():
                self.reconciler.reconcile_all()
            self._next_sweep = time.monotonic() + self.config.sweep_seconds
        self._draw_dashboard()

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
        now = time.monotonic()
        deadlines = [self._next_sweep]
        settle = self.settler.next_deadline()
        if settle is not None:
            deadlines.append(settle)
        wake = self.reconciler.next_wakeup()
        if wake is not None:
            deadlines.append(now + max(0.0, (wake - self.now()).total_seconds()))
        if self.reconciler.changes != self._dashboard_changes:
            deadlines.append(self._dashboard_drawn_at + DASHBOARD_MIN_INTERVAL)
        return max(0.0, min(deadlines) - now)

    # --- runs (the executor takes them from the scheduler) ----------------------------------

    def _queue_run(self, request: RunRequest) -> None:
        if self.scheduler.add(request):
            self.reconciler.changes += 1
            log.info(
                "queued",
                action_type="queue",
                target=self._rel(request.path),
                task_id=request.task_id,
                parameters={"priority": request.priority},
            )

    def _start_runs(self) -> None:
        """Start what the scheduler allows: priority order, max_parallel, one per work dir.

        Runs that ended are taken first, so a slot is refilled as soon as it is free, even in
        the middle of planning a burst.
        """
        self._take_ended()
        if self._stop.is_set():
            return
        while not self.executor.budget_reached():
            request = self.scheduler.next_ready()
            if request is None:
                return
            path = self.reconciler.owners.get(request.task_id, request.path)
            if self.executor.start(request, path):
                self.scheduler.started(request.task_id, request.workdir)
                self.syncs.hand_over(path.parent)  # the claim syncs it, whatever it decides

    def _take_ended(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:  # the agent is gone: its slot and work dir are free (max_parallel)
                self._free_slot(self.agents_gone.get_nowait())
        with contextlib.suppress(queue.Empty):
            while True:
                finished = self.ended.get_nowait()
                with self._survive("run ended"):
                    self._run_finished(finished)

    def _free_slot(self, run: Run) -> None:
        """Only the slot of that very run: a word that comes late, after its end was taken and
        the task started again, must not free the new run's slot."""
        if self.executor.live.get(run.task_id) is run:
            self.scheduler.finished(run.task_id)

    def _run_finished(self, finished: RunFinished) -> None:
        self.scheduler.finished(finished.task_id)
        self.executor.finished(finished.task_id)
        outcome = finished.outcome
        old = finished.spec.note_path if finished.spec else None
        old = self.reconciler.owners.get(finished.task_id, old)
        new_path = finished.path or old
        # Whatever happened while recording, the note is decided again from the disk: a note
        # left `executing` with no live run is an interrupted attempt, never stuck. Not while
        # shutting down (an interrupted run is retried on the next start).
        if outcome.kind is not OutcomeKind.INTERRUPTED:
            if old is not None and old != new_path:
                self.reconciler.forget(old)
            finished_folder = self.vault.folder_of(new_path) if new_path else None
            if finished_folder in (Folder.DONE, Folder.FAILED):
                self.reconciler.forget(new_path)  # type: ignore[arg-type]  # not watched
            elif new_path is not None and new_path.exists():
                self.reconciler.look(new_path, force=True)
        if outcome.kind is OutcomeKind.SKIPPED:
            return
        self.recent.appendleft(
            dashboard_md.Line(
                dashboard_md.link_for(self.vault.root, new_path) if new_path else finished.task_id,
                finished.task_id,
                f"{outcome.kind.value} {outcome.error}".strip(),
            )
        )
        self.reconciler.changes += 1

    def _finish_runs(self) -> None:
        """Shutdown: running tasks get shutdown_grace_seconds, then are stopped (interrupted)."""
        if not self.executor.live:
            return
        log.info(
            "waiting for runs",
            action_type="shutdown",
            parameters={
                "running": sorted(self.executor.live),
                "grace_s": self.config.shutdown_grace_seconds,
            },
        )
        deadline = time.monotonic() + self.config.shutdown_grace_seconds
        interrupted = False
        while self.executor.live:
            left = deadline - time.monotonic()
            if left <= 0 and not interrupted:
                self.executor.interrupt_all()
                interrupted = True
            try:
                finished = self.ended.get(timeout=10 if interrupted else max(0.01, left))
            except queue.Empty:
                continue
            self._run_finished(finished)

    def _once_done(self) -> bool:
        """`once`: nothing runs, nothing settles, nothing queued can start now."""
        if (
            self.executor.live
            or len(self.settler)
            or self._rescan.is_set()
            or self._relayout.is_set()
        ):
            return False
        return not self.scheduler.queued or self.executor.budget_reached()

    # --- Dashboard.md -----------------------------------------------------------------------

    def _draw_dashboard(self, force: bool = False) -> None:
        changes = self.reconciler.changes
        if not force and (
            changes == self._dashboard_changes
            or time.monotonic() - self._dashboard_drawn_at < DASHBOARD_MIN_INTERVAL
        ):
            return
        self._dashboard_changes = changes
        self._dashboard_drawn_at = time.monotonic()
        text = dashboard_md.render(self._dashboard_state())
        try:
            current = self.vault.dashboard.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = ""
        if _without_timestamp(current) != _without_timestamp(text):
            fsops.write_atomic(
                self.vault.dashboard, text.encode("utf-8"), self.vault.tmp, durable=False
            )

    def _dashboard_state(self) -> dashboard_md.DashboardState:
        root = self.vault.root
        counts: dict[str, Counter[str]] = {f.value: Counter() for f in TASK_FOLDERS}
        for entry in self.reconciler.entries.values():
            counts[entry.folder.value][(entry.status or Status.NEW).value] += 1
        for path in self.reconciler.refused:
            folder = self.vault.folder_of(path)
            if folder is not None and folder.value in counts:
                counts[folder.value]["refused"] += 1
        for folder in (Folder.DONE, Folder.FAILED):
            counts[folder.value]["notes"] = self.vault.count_notes(folder)
        entries = self.reconciler.entries
        by_id = {e.task_id: (p, e) for p, e in entries.items() if e.task_id}
        queued = [
            dashboard_md.Line(
                dashboard_md.link_for(root, r.path),
                by_id[r.task_id][1].title if r.task_id in by_id else r.task_id,
                r.priority,
            )
            for r in self.scheduler.queued
        ]
        waiting = [
            dashboard_md.Line(dashboard_md.link_for(root, p), e.title, e.task_type)
            for p, e in entries.items()
            if e.folder is Folder.PENDING_APPROVAL
        ]
        attention = [
            dashboard_md.Line(dashboard_md.link_for(root, p), p.name, reason)
            for p, (_, reason) in sorted(self.reconciler.refused.items())
        ]
        notes = []
        if self.executor.budget_reached():
            spent = self.executor.spent.get(self.now().date().isoformat(), 0.0)
            notes.append(
                f"Daily budget reached: ${spent:.2f} of ${self.config.daily_budget_usd:.2f} "
                "spent today (UTC). New runs wait until tomorrow or a higher daily_budget_usd."
            )
        running = []
        for task_id in sorted(self.executor.live):
            where = self.reconciler.owners.get(task_id)
            seen = self.reconciler.entries.get(where) if where else None
            link = dashboard_md.link_for(root, where) if where else task_id
            running.append(dashboard_md.Line(link, seen.title if seen else task_id, task_id))
        return dashboard_md.DashboardState(
            notes=notes,
            updated=self.now(),
            counts=counts,
            running=running,
            queued=queued,
            waiting_approval=waiting,
            recent=list(self.recent),
            attention=attention,
        )

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.vault.root))
        except ValueError:
            return str(path)


def make_agent(config: Config) -> Agent:
    """The configured agent backend."""
    if config.agent == "command":
        return CommandAgent(config.agent_command)
    return ClaudeAgent(config)


def _without_timestamp(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("_Written by"))
