"""Notifications: the hooks that tell a person they are needed (`on_pending_approval`,
`on_done`, `on_failed`, `on_needs_attention`).

The main loop tells (`Hooks.tell`, a `Notice`) where it decides: steps.hold and set_status (a
task waits for a person's approval), steps.hold_copy (a copy held), steps.interrupted and
`AfterRun.take` (a task failed, is done, or asks for a tool), `Refusals.refuse` (a refused
note, once per note content: `ToldRefusals`), `Pauses.began` (a usage limit holds the runs).
One thread of its own, the hooks thread, runs the commands, one at a time, in the order told:
argv from the key's command line with the agent contract's placeholders (commandline.py), no
shell, its own process group, stdin /dev/null, cwd the vault, stopped after
`hook_timeout_seconds`. A hook that fails (a non-zero exit, a timeout, a program that cannot be
started) is one warning in the log, action_type "notify"; nothing a hook does stops the service
or delays its main loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import selectors
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import structlog

from ..base import commandline, fsops
from ..base.config import Config
from ..base.processes import kill_group, stop_group
from ..notes.vault import Vault
from ..running.prompt import prompt_path

log = structlog.get_logger(__name__)


class Event(StrEnum):
    """What a person is told of; `on_<value>` is the key of its hook."""

    PENDING_APPROVAL = "pending_approval"
    """A task waits in Pending_Approval/ for a person's approval."""
    DONE = "done"
    """A task's run ended done (its note is in Done/)."""
    FAILED = "failed"
    """A task failed: its attempts are spent or its failure is permanent (Failed/)."""
    NEEDS_ATTENTION = "needs_attention"
    """Something else needs a person: a refused note, a held copy (and a failed task)."""

    @property
    def key(self) -> str:
        """The configuration key of its hook."""
        return f"on_{self.value}"


HOOKS_RUN: Mapping[Event, tuple[Event, ...]] = {
    Event.PENDING_APPROVAL: (Event.PENDING_APPROVAL,),
    Event.DONE: (Event.DONE,),
    Event.FAILED: (Event.FAILED, Event.NEEDS_ATTENTION),
    Event.NEEDS_ATTENTION: (Event.NEEDS_ATTENTION,),
}
"""The hooks each event runs, in this order: a failure also needs a person's attention."""

QUEUE_LIMIT = 100
"""Notices waiting for the hooks thread; more are dropped (the count is logged)."""

STOP_DRAIN_SECONDS = 5.0
"""On stop, how long queued notices may still run (at most hook_timeout_seconds), so the
service's stop stays within what systemd and launchd wait for."""

OUTPUT_LIMIT = 2000
"""Bytes of a hook's output kept for the log; the rest is read and thrown away."""


@dataclass(frozen=True)
class Notice:
    """One thing to tell: the event and the task's facts for the placeholders and environment."""

    event: Event
    task_file: Path
    task_id: str = ""
    """Empty for a note refused before it had one."""
    workdir: Path | None = None
    title: str = ""
    detail: str = ""
    """One line: the error, why a note is refused or held (AI_EMPLOYEE_DETAIL)."""


class Tell(Protocol):
    """Where the main loop's decisions tell a person (Hooks); called from the main loop."""

    def wants(self, event: Event) -> bool:
        """Whether a hook runs for this event (else telling it costs nothing)."""
        ...

    def tell(self, notice: Notice) -> None: ...


def hook_env(notice: Notice, event: Event, vault: Path) -> dict[str, str]:
    """The agent contract's environment, plus AI_EMPLOYEE_EVENT (the hook's event),
    AI_EMPLOYEE_TITLE and AI_EMPLOYEE_DETAIL."""
    env = commandline.contract_env(notice.task_id, notice.task_file, vault)
    env["AI_EMPLOYEE_EVENT"] = event.value
    env["AI_EMPLOYEE_TITLE"] = notice.title
    env["AI_EMPLOYEE_DETAIL"] = notice.detail
    return env


def hook_argv(template: list[str], notice: Notice, vault: Vault) -> list[str]:
    """The hook's argv: the placeholders replaced as for the agent. `{prompt_file}` is where
    the task's prompt is written (it exists once a run began); unknown facts are empty."""
    prompt = prompt_path(vault, notice.task_id) if notice.task_id else ""
    return commandline.substitute(
        template,
        commandline.values(prompt, notice.task_file, notice.workdir or "", notice.task_id),
    )


class Hooks:
    """The hooks thread and its queue (see the module docstring).

    The queue is bounded (QUEUE_LIMIT): when a flood of notices outruns the hooks, the newest
    are dropped and counted, so memory stays bounded and the main loop never waits. On stop the
    thread drains what is queued for at most STOP_DRAIN_SECONDS (or hook_timeout_seconds, if
    shorter); a hook still running then is stopped and what is left is abandoned, with one
    warning saying how many. `tell` and `stop` are the main loop's; the thread only takes
    notices off the queue (and reads the stop's deadline).
    """

    def __init__(self, config: Config) -> None:
        self.vault = Vault(config.vault)
        self.timeout = config.hook_timeout_seconds
        self.commands: dict[Event, list[str]] = {
            event: commandline.split(getattr(config, event.key))
            for event in Event
            if getattr(config, event.key)
        }
        # One producer (the main loop) checks the bound before each put, so a put never blocks
        # and the stop's sentinel always fits.
        self._queue: queue.Queue[Notice | None] = queue.Queue(QUEUE_LIMIT + 1)
        self._dropped = 0
        self._stop_at: float | None = None
        """Set by `stop`: the drain's deadline (the thread reads it)."""
        self._wake_r = self._wake_w = -1
        """A pipe (made by `start`): a byte from `stop` wakes a running hook's wait, so it
        meets the drain's deadline."""
        self._thread = threading.Thread(target=self._main, name="hooks", daemon=True)

    @property
    def enabled(self) -> bool:
        return bool(self.commands)

    def wants(self, event: Event) -> bool:
        return any(hook in self.commands for hook in HOOKS_RUN[event])

    def start(self) -> None:
        """Start the thread, if any hook is set."""
        if self.enabled:
            self._wake_r, self._wake_w = os.pipe()
            self._thread.start()

    def tell(self, notice: Notice) -> None:
        """Queue a notice for the hooks its event runs (main loop; never blocks)."""
        if not self.wants(notice.event):
            return
        if not self._thread.is_alive() or self._stop_at is not None:
            return
        if self._queue.qsize() >= QUEUE_LIMIT:
            if not self._dropped:
                log.warning(
                    "notifications dropped",
                    action_type="notify",
                    task_id=notice.task_id or None,
                    parameters={"queued": QUEUE_LIMIT, "event": notice.event.value},
                    result="the hooks cannot keep up; more are dropped until they do",
                )
            self._dropped += 1
            return
        if self._dropped:
            log.warning(
                "notifications dropped",
                action_type="notify",
                parameters={"dropped": self._dropped},
                result="the hooks keep up again",
            )
            self._dropped = 0
        self._queue.put_nowait(notice)

    def stop(self) -> None:
        """Drain for at most STOP_DRAIN_SECONDS, then abandon the rest (main loop)."""
        if not self._thread.is_alive():
            return
        drain = min(self.timeout, STOP_DRAIN_SECONDS)
        self._stop_at = time.monotonic() + drain
        self._queue.put_nowait(None)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"s")
        self._thread.join(drain + 5)
        if not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    # --- the hooks thread -------------------------------------------------------------------

    def _main(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            if self._stop_at is not None and time.monotonic() >= self._stop_at:
                self._abandon(1)
                return
            for event in HOOKS_RUN[notice.event]:
                if event in self.commands:
                    try:
                        self._run(event, notice)
                    except Exception as err:  # a bug of ours must not end the thread
                        log.exception(
                            "hook failed",
                            action_type="notify",
                            target=event.key,
                            task_id=notice.task_id or None,
                            error=f"internal error: {type(err).__name__}: {err}",
                        )

    def _abandon(self, taken: int) -> None:
        left = taken
        with contextlib.suppress(queue.Empty):
            while self._queue.get_nowait() is not None:
                left += 1
        log.warning(
            "notifications abandoned",
            action_type="notify",
            parameters={"abandoned": left},
            result="the service stopped before their hooks could run",
        )

    def _run(self, event: Event, notice: Notice) -> None:
        argv = hook_argv(self.commands[event], notice, self.vault)
        fields = {"action_type": "notify", "target": event.key, "task_id": notice.task_id or None}
        parameters: dict[str, object] = {"argv": argv, "event": event.value}
        deadline = time.monotonic() + self.timeout
        if self._stop_at is not None:
            deadline = min(deadline, self._stop_at)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.vault.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=hook_env(notice, event, self.vault.root),
                start_new_session=True,  # its own process group: stopped as a whole
                close_fds=True,
            )
        except OSError as err:
            log.warning(
                "hook failed",
                **fields,
                parameters=parameters,
                error=f"cannot start {argv[0]!r}: {err.strerror or err}; fix {event.key}",
            )
            return
        try:
            output, timed_out = self._follow(proc, deadline)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        if timed_out:
            stop_group(proc.pid, lambda t: _wait_child(proc, t))
        else:
            kill_group(proc.pid)  # it exited: whatever it left in its group goes too
        text = output.decode("utf-8", errors="replace").strip()
        parameters["output"] = text
        if timed_out and self._stop_at is not None and time.monotonic() >= self._stop_at:
            error = "still running when the service stopped; stopped"
        elif timed_out:
            error = f"still running after {self.timeout:g} s (hook_timeout_seconds); stopped"
        elif proc.returncode != 0:
            last = text.splitlines()[-1] if text else "no output"
            error = f"exited {proc.returncode}: {last[:200]}"
        else:
            log.info("hook ran", **fields, parameters=parameters, result="ok")
            return
        log.warning("hook failed", **fields, parameters=parameters, error=error)

    def _follow(self, proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bool]:
        """Read the hook's output (keeping OUTPUT_LIMIT bytes) until it exits; True if the
        deadline (or the stop's drain deadline) came first."""
        assert proc.stdout is not None
        kept = bytearray()
        fd = proc.stdout.fileno()
        with selectors.PollSelector() as selector:
            selector.register(fd, selectors.EVENT_READ, "out")
            selector.register(self._wake_r, selectors.EVENT_READ, "stop")
            ended = False
            while not ended:
                if self._stop_at is not None:
                    deadline = min(deadline, self._stop_at)
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return bytes(kept), True
                for key, _ in selector.select(wait):
                    if key.data == "stop":
                        selector.unregister(self._wake_r)  # the deadline is read above, once
                        continue
                    chunk = os.read(fd, 1 << 16)
                    ended = not chunk
                    kept += chunk[: max(0, OUTPUT_LIMIT - len(kept))]
        return bytes(kept), not _wait_child(proc, max(0.01, deadline - time.monotonic()))


def _wait_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


# --- refused notes: told once per note content ------------------------------------------------


def fingerprint(path: Path, reason: str, max_bytes: int) -> str:
    """What a refusal is about: its reason and the note's content (its first max_bytes and its
    size; for what is not a regular file, its type and size). Never blocks on a FIFO."""
    digest = hashlib.sha256(reason.encode("utf-8", errors="replace"))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            return digest.hexdigest()
        digest.update(f"{stat.S_IFMT(st.st_mode)} {st.st_size}".encode())
        return digest.hexdigest()
    try:
        st = os.fstat(fd)
        digest.update(f"{stat.S_IFMT(st.st_mode)} {st.st_size}".encode())
        if stat.S_ISREG(st.st_mode):
            left = max_bytes
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 16))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


class ToldRefusals:
    """Which refused notes a person was told of, by path and fingerprint, kept in
    `.ai-employee/told.json` so a restart or a sweep does not tell them again. Machinery:
    deleting it tells each refused note once more. Used by the main loop only."""

    def __init__(self, path: Path, tmp_dir: Path) -> None:
        self.path = path
        self.tmp_dir = tmp_dir
        self.told: dict[str, str] = {}

    def load(self) -> None:
        try:
            data = json.loads(fsops.read_plain_text(self.path))
        except (OSError, ValueError):
            return
        refused = data.get("refused") if isinstance(data, dict) else None
        if isinstance(refused, dict):
            self.told = {str(k): str(v) for k, v in refused.items()}

    def first(self, rel: str, print_: str) -> bool:
        """True (and remembered) when this refusal was not told before."""
        if self.told.get(rel) == print_:
            return False
        self.told[rel] = print_
        self._save()
        return True

    def forget(self, rel: str) -> None:
        """The note is accepted now: a later refusal is news."""
        if self.told.pop(rel, None) is not None:
            self._save()

    def keep_only(self, rels: Iterable[str]) -> None:
        """After a full scan: forget notes that are no longer refused."""
        keep = set(rels)
        if set(self.told) - keep:
            self.told = {k: v for k, v in self.told.items() if k in keep}
            self._save()

    def _save(self) -> None:
        data = json.dumps({"refused": self.told}, indent=1, sort_keys=True).encode("utf-8")
        try:
            fsops.write_atomic(self.path, data, self.tmp_dir, durable=False)
        except OSError as err:  # at worst a refused note is told again after a restart
            log.warning(
                "cannot record a notification",
                action_type="notify",
                target=str(self.path),
                error=f"{type(err).__name__}: {err}",
            )
