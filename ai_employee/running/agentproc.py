"""The agent's process for one attempt: its own group, streamed output, stopped on demand.

`AgentProcess.run()` lives in its run's thread (executor.py) and knows nothing of notes: it
starts the agent in a process group of its own (launch.py: its environment, its sandbox, and
what it leaves stopped at its end), writes every line of
output to the transcript and hands it to the agent's parser, passes a person's answer to what
the agent waits for (a byte on its `ControlPipe`, then a line on the agent's stdin), and stops
the whole group on a cancel or a shutdown (a byte too), a timeout or a stall: SIGTERM, a short
grace, then SIGKILL to the group, which reaches the agent's children unless one started a
session of its own (Claude Code's Bash tool does). It records the live agent in the run journal
while it runs, and says how the run went as an `Outcome`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ..base.processes import kill_group, process_start_ticks, stop_group
from ..base.sandbox import BWRAP, Sandbox
from .agents.base import Agent, Outcome, OutcomeKind, Question, RunSpec, RunState, answers
from .launch import Launch
from .runrecords import RunJournal

log = structlog.get_logger(__name__)

_CANCEL, _INTERRUPT, _ALLOW, _REJECT = "c", "i", "a", "r"

REJECT_GRACE_S = 5.0
"""After a person's rejection is answered, how long the agent has to end its turn by itself
before its group is stopped."""

Told = Callable[[Question | None, str | None], None]
"""Called (in the run's thread) when the agent begins or ends waiting for a person's answer:
what it asks (None: it waits no more), and its session as far as it said."""


class ControlPipe:
    """How another thread tells a run to stop, or answers what its agent waits for: one word
    a line ("c", "i", "a<question>", "r<question>") on a pipe the run's thread waits on.

    `stop` and `answer` are safe from any thread; once the run's agent part is over the pipe
    is closed and a late word does nothing (it never writes to a reused file descriptor).
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        self._lock = threading.Lock()
        self._pending = ""

    def stop(self, interrupt: bool) -> None:
        """Cancel (a person) or interrupt (our shutdown)."""
        self._send(_INTERRUPT if interrupt else _CANCEL)

    def answer(self, number: int, allow: bool) -> None:
        """A person's answer to the agent's question `number` (a rejection ends the run)."""
        self._send(f"{_ALLOW if allow else _REJECT}{number}")

    def _send(self, word: str) -> None:
        with self._lock:
            if self._write_fd >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._write_fd, f"{word}\n".encode())  # one write: never torn

    def words(self) -> list[str]:
        """The words waiting on the pipe (the run's thread, when it is readable)."""
        self._pending += os.read(self.read_fd, 4096).decode()
        *words, self._pending = self._pending.split("\n")
        return words

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
        control: ControlPipe,
        role: str = "run",
        told: Told | None = None,
        env: tuple[str, ...] | None = None,
        sandbox: Sandbox | None = None,
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
        self.control = control
        self.told = told
        self.sandbox = sandbox
        self.answering = answers(agent)
        """The agent, when it can wait for a person's answer (its stdin is then a pipe)."""
        self.launch = Launch(spec, agent, role, env, sandbox, self.answering is not None)
        """How its process is started, and what is cleaned up after it (launch.py)."""
        self.started = time.monotonic()

    def run(self) -> Outcome:
        """Start the agent, follow it to its end, and say how it went. Never raises: a failure
        of ours (a bug, a full disk) becomes a transient failure, so no task stays executing;
        an agent that cannot be started is judged by its backend (`Agent.not_found`)."""
        if self.spec.setup_error:
            self._note("error", error=self.spec.setup_error)
            return Outcome(OutcomeKind.TRANSIENT, error=self.spec.setup_error)
        try:
            proc = self.launch.spawn()
        except OSError as err:  # the program is missing or cannot be executed
            self._note("error", error=str(err))
            if self.sandbox is not None and shutil.which(BWRAP) is None:
                return Outcome(
                    OutcomeKind.PERMANENT,
                    error='sandbox = "bwrap" but bwrap is not installed: apt install bubblewrap',
                )
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
            for pipe in (proc.stdout, proc.stdin):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            self.launch.end(self._note)
            if recorded:
                self.journal.ended(self.spec.task_id, proc.pid)

    def _note(self, kind: str, **fields: Any) -> None:
        """A transcript line that may fail (a full disk) without failing anything else."""
        with contextlib.suppress(OSError):
            self.transcript.write(kind, **fields)

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        """The agent runs: its transcript's first line, the log, the run journal's record."""
        spec = self.spec
        self.transcript.write(
            "start" if self.role == "run" else self.role,
            attempt=spec.attempt,
            argv=self.launch.argv,
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
                "env": sorted(self.launch.env),  # the names it got, never their values
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
        """Read the output until it ends (None) or the run is stopped (how it was stopped).
        While the agent waits for a person's answer, no output is a stall no more."""
        assert proc.stdout is not None
        stream = proc.stdout.fileno()
        os.set_blocking(stream, False)
        pending = b""
        self._last_output = time.monotonic()
        self._rejected_at: float | None = None
        deadline = self.started + self.limits.timeout_s
        with contextlib.ExitStack() as closing:
            selector = closing.enter_context(selectors.PollSelector())  # no kernel object
            selector.register(stream, selectors.EVENT_READ, "out")
            selector.register(self.control.read_fd, selectors.EVENT_READ, "control")
            exited = _exit_fd(proc.pid)  # its exit ends the output, whoever still holds the pipe
            if exited is not None:
                closing.callback(os.close, exited)
                selector.register(exited, selectors.EVENT_READ, "exit")
            while True:
                now = time.monotonic()
                stall = math.inf if state.waiting else self._last_output + self.limits.stall_s
                if self._rejected_at is not None:
                    stall = min(stall, self._rejected_at + REJECT_GRACE_S)
                if min(deadline, stall) <= now:
                    self._stop_group(proc)
                    if pending:
                        self._line(pending, state)
                    return self._stopped_by_clock(now >= deadline)
                for key, _ in selector.select(min(deadline, stall) - now):
                    if key.data == "exit":  # what it wrote is in the pipe: read it, then end
                        pending = self._drain(stream, pending, state)
                        if pending:
                            self._line(pending, state)
                        return None
                    if key.data == "control":
                        stopped = self._control(proc, state)
                        if stopped is not None:
                            if pending:
                                self._line(pending, state)
                            return stopped
                        continue
                    chunk = os.read(stream, 1 << 16)
                    if not chunk:
                        if pending:
                            self._line(pending, state)
                        return None
                    self._last_output = time.monotonic()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw, state)

    def _drain(self, stream: int, pending: bytes, state: RunState) -> bytes:
        """Every line waiting in the pipe now (the agent exited: nothing more of its own will
        come; a child that still holds the pipe is stopped with the run). What is left over
        of a line without its newline is returned."""
        while True:
            try:
                chunk = os.read(stream, 1 << 16)
            except BlockingIOError:
                return pending
            if not chunk:
                return pending
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._line(raw, state)

    def _stopped_by_clock(self, timed_out: bool) -> Outcome:
        if self._rejected_at is not None and not timed_out:
            return Outcome(OutcomeKind.CANCELLED, error="rejected by a person while it waited")
        if timed_out:
            limits = self.limits
            why = f"timed out after {limits.timeout_s:g} s ({limits.timeout_key})"
        else:
            why = f"no output for {self.limits.stall_s:g} s (stall_seconds); stopped"
        return Outcome(OutcomeKind.TRANSIENT, error=why)

    def _control(self, proc: subprocess.Popen[bytes], state: RunState) -> Outcome | None:
        """Words on the control pipe: a stop (how the run was stopped), or a person's answer to
        the agent's question (written to its stdin; None: the run goes on). An answer to a
        question that no longer waits is dropped, but a rejection then stops the run at once,
        as a cancel (a person ended the task); an answered rejection gives the agent
        REJECT_GRACE_S to end its turn."""
        for word in self.control.words():
            kind, number = word[:1], int(word[1:] or 0)
            question = state.waiting
            answers = kind in (_ALLOW, _REJECT) and self.answering is not None
            if answers and question and question.number == number and proc.stdin:
                assert self.answering is not None
                line = self.answering.answer_line(number, kind == _ALLOW)
                with contextlib.suppress(OSError):  # it is gone: its end is read as any other
                    os.write(proc.stdin.fileno(), line)
                self._note("answer", answer="allow" if kind == _ALLOW else "reject", ask=number)
                self._last_output = time.monotonic()
                if kind == _REJECT:
                    self._rejected_at = time.monotonic()
                continue
            if kind == _ALLOW:  # late: its wait ended and it was refused; the run goes on
                continue
            self._stop_group(proc)
            if kind == _INTERRUPT:
                return Outcome(OutcomeKind.INTERRUPTED, error="stopped by the service's shutdown")
            return Outcome(OutcomeKind.CANCELLED, error="cancelled by a person")
        return None

    def _line(self, raw: bytes, state: RunState) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        waited = state.waiting
        progress = self.agent.on_line(line, state)
        if state.waiting != waited and self.told is not None:
            self.told(state.waiting, state.session_id)
        self.transcript.write("out", line=line)
        if progress:
            log.info("progress", action_type="progress", task_id=self.spec.task_id, **progress)

    def _stop_group(self, proc: subprocess.Popen[bytes]) -> None:
        stop_group(proc.pid, lambda t: _wait_child(proc, t))


def _exit_fd(pid: int) -> int | None:
    """A pidfd that becomes readable when the process exits (None where there is none)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True
