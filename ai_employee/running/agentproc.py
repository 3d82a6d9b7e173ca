"""The agent's process for one attempt: its own group, streamed output, stopped on demand.

`AgentProcess.run()` lives in its run's thread (executor.py) and knows nothing of notes: it
starts the agent in a process group of its own (stdin from the prompt file or /dev/null, cwd in
the work dir), writes every line of output to the transcript and hands it to the agent's parser,
and stops the whole group on a cancel or a shutdown (a byte on its `StopPipe`), a timeout or a
stall: SIGTERM, a short grace, then SIGKILL to the group, which reaches the agent's children
unless one started a session of its own (Claude Code's Bash tool does). It records the live agent
in the run journal while it runs, and says how the run went as an `Outcome`.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ..base.commandline import contract_env
from ..base.processes import kill_group, process_start_ticks, stop_group
from .agents.base import Agent, Outcome, OutcomeKind, RunSpec, RunState
from .runrecords import RunJournal

log = structlog.get_logger(__name__)

_CANCEL, _INTERRUPT = b"c", b"i"


def agent_env(spec: RunSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment, minus CLAUDECODE, plus the AI_EMPLOYEE_TASK_* variables."""
    return contract_env(spec.task_id, spec.note_path, spec.vault, base)


class StopPipe:
    """How another thread asks a run to stop: one byte on a pipe its thread waits on.

    `send` is safe from any thread; once the run's agent part is over the pipe is closed and a
    late `send` does nothing (it never writes to a reused file descriptor).
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        self._lock = threading.Lock()

    def send(self, interrupt: bool) -> None:
        with self._lock:
            if self._write_fd >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._write_fd, _INTERRUPT if interrupt else _CANCEL)

    def close(self) -> None:
        with self._lock:
            for fd in (self.read_fd, self._write_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.read_fd = self._write_fd = -1


class Transcript:
    """`Logs/tasks/<task_id>.jsonl`: every line of output as it arrives, plus start and end.

    Opened at its first line, which is written once the agent runs (creating a file must not
    delay the agent's start; its output waits in the pipe meanwhile).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def write(self, kind: str, **fields: Any) -> None:
        if self._fd < 0:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            **fields,
        }
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        os.write(self._fd, line.encode("utf-8"))  # one write per line: whole lines, at once

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class Limits:
    """When a run is stopped by the clock: task_timeout_seconds and stall_seconds (a check:
    verify_timeout_seconds for both)."""

    timeout_s: float
    stall_s: float
    timeout_key: str = "task_timeout_seconds"
    """The configuration key a timeout's error names."""


class AgentProcess:
    """One attempt's agent process (see the module docstring). Used by one thread only."""

    def __init__(
        self,
        spec: RunSpec,
        agent: Agent,
        limits: Limits,
        journal: RunJournal,
        transcript: Transcript,
        stop: StopPipe,
        role: str = "run",
    ) -> None:
        """`role` is "run" for the agent, "check" for a task's check (verify.CheckAgent): it
        names the transcript's first line ("start", "check") and the log's ("run started",
        "check started")."""
        self.spec = spec
        self.role = role
        self.agent = agent
        self.limits = limits
        self.journal = journal
        self.transcript = transcript
        self.stop = stop
        self.started = time.monotonic()

    def run(self) -> Outcome:
        """Start the agent, follow it to its end, and say how it went. Never raises: a failure
        of ours (a bug, a full disk) becomes a transient failure, so no task stays executing;
        an agent that cannot be started is judged by its backend (`Agent.not_found`)."""
        if self.spec.setup_error:
            self._note("error", error=self.spec.setup_error)
            return Outcome(OutcomeKind.TRANSIENT, error=self.spec.setup_error)
        try:
            proc = self._spawn()
        except OSError as err:  # the program is missing or cannot be executed
            self._note("error", error=str(err))
            return self.agent.not_found(self.spec, err)
        except Exception as err:
            log.exception("cannot start the agent", task_id=self.spec.task_id)
            return Outcome(OutcomeKind.TRANSIENT, error=f"internal error: {err}")
        recorded = False
        try:
            self._started(proc)
            recorded = True
            return self._follow(proc)
        except Exception as err:  # the agent runs on while we cannot follow it: stop it
            log.exception("run crashed", task_id=self.spec.task_id)
            self._stop_group(proc)
            return Outcome(OutcomeKind.TRANSIENT, error=f"internal error: {err}")
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            if recorded:
                self.journal.ended(self.spec.task_id, proc.pid)

    def _note(self, kind: str, **fields: Any) -> None:
        """A transcript line that may fail (a full disk) without failing anything else."""
        with contextlib.suppress(OSError):
            self.transcript.write(kind, **fields)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """The agent's process, in a group of its own (OSError: it cannot be started)."""
        spec = self.spec
        stdin_path = self.agent.stdin(spec)
        with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as stdin:
            return subprocess.Popen(
                self.agent.argv(spec),
                cwd=spec.workdir,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=agent_env(spec),
                start_new_session=True,  # its own process group: stopped as a whole
                close_fds=True,
            )

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        """The agent runs: its transcript's first line, the log, the run journal's record."""
        spec = self.spec
        self.transcript.write(
            "start" if self.role == "run" else self.role,
            attempt=spec.attempt,
            argv=self.agent.argv(spec),
            cwd=str(spec.workdir),
            session_id=spec.session_id,
            resume=spec.resume,
            pid=proc.pid,
        )
        log.info(
            f"{self.role} started",
            action_type="run",
            task_id=spec.task_id,
            target=str(spec.note_path.relative_to(spec.vault)),
            parameters={
                "attempt": spec.attempt,
                "agent": self.agent.name,
                "pid": proc.pid,
                "workdir": str(spec.workdir),
                "resume": spec.resume,
            },
        )
        self.journal.started(
            {
                "task_id": spec.task_id,
                "pid": proc.pid,
                "pgid": proc.pid,
                "start_ticks": process_start_ticks(proc.pid),
                "attempt": spec.attempt,
                "session_id": spec.session_id,
                "service_pid": os.getpid(),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    def _follow(self, proc: subprocess.Popen[bytes]) -> Outcome:
        state = RunState()
        assert proc.stdout is not None
        try:
            stopped = self._stream(proc, state)
            if stopped is None:
                try:
                    proc.wait(
                        timeout=max(0.1, self.started + self.limits.timeout_s - time.monotonic())
                    )
                except subprocess.TimeoutExpired:
                    self._stop_group(proc)
                    return Outcome(OutcomeKind.TRANSIENT, error="timed out after closing output")
                kill_group(proc.pid)  # the agent exited: anything it left in its group goes too
        finally:
            proc.stdout.close()
        if stopped is not None:
            return Outcome(
                stopped.kind,
                error=stopped.error,
                result="\n".join(state.tail[-20:]),
                exit_code=proc.returncode,
            )
        return self.agent.finish(proc.returncode, state)

    def _stream(self, proc: subprocess.Popen[bytes], state: RunState) -> Outcome | None:
        """Read the output until it ends (None) or the run is stopped (how it was stopped)."""
        assert proc.stdout is not None
        stream = proc.stdout.fileno()
        os.set_blocking(stream, False)
        pending = b""
        last_output = time.monotonic()
        deadline = self.started + self.limits.timeout_s
        with selectors.PollSelector() as selector:  # no kernel object to make and close per run
            selector.register(stream, selectors.EVENT_READ, "out")
            selector.register(self.stop.read_fd, selectors.EVENT_READ, "stop")
            while True:
                now = time.monotonic()
                wait = min(deadline, last_output + self.limits.stall_s) - now
                if wait <= 0:
                    self._stop_group(proc)
                    if pending:
                        self._line(pending, state)
                    if now >= deadline:
                        limits = self.limits
                        why = f"timed out after {limits.timeout_s:g} s ({limits.timeout_key})"
                    else:
                        why = f"no output for {self.limits.stall_s:g} s (stall_seconds); stopped"
                    return Outcome(OutcomeKind.TRANSIENT, error=why)
                for key, _ in selector.select(wait):
                    if key.data == "stop":
                        interrupt = os.read(self.stop.read_fd, 1) == _INTERRUPT
                        self._stop_group(proc)
                        if pending:
                            self._line(pending, state)
                        if interrupt:
                            return Outcome(
                                OutcomeKind.INTERRUPTED, error="stopped by the service's shutdown"
                            )
                        return Outcome(OutcomeKind.CANCELLED, error="cancelled by a person")
                    chunk = os.read(stream, 1 << 16)
                    if not chunk:
                        if pending:
                            self._line(pending, state)
                        return None
                    last_output = time.monotonic()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw, state)

    def _line(self, raw: bytes, state: RunState) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        progress = self.agent.on_line(line, state)
        self.transcript.write("out", line=line)
        if progress:
            log.info("progress", action_type="progress", task_id=self.spec.task_id, **progress)

    def _stop_group(self, proc: subprocess.Popen[bytes]) -> None:
        stop_group(proc.pid, lambda t: _wait_child(proc, t))


def _wait_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True
