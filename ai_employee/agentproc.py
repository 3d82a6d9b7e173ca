"""Agent processes: start one in its own group, stream its output, stop it, see how it ended.

Each run has one thread that owns its process. It never touches the note: it reports the end of
the run (`RunFinished`) to the service's main loop, which records it. A run is stopped by writing
to its wake-up pipe (cancel, shutdown) or by its deadlines (timeout, stall): SIGTERM to the whole
process group, a short grace, then SIGKILL, so grandchildren go too.

Records of live runs (`.ai-employee/runs.jsonl`: pid, group, start time) let a restarted
service stop an agent that outlived a crash before the task's retry starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from .agents.base import Agent, Outcome, OutcomeKind, RunSpec, RunState
from .runrecords import RunJournal, live_records

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 0.8
"""Between SIGTERM and SIGKILL when a run is stopped (cancel within a second)."""

_CANCEL, _INTERRUPT = b"c", b"i"


@dataclass(frozen=True)
class RunFinished:
    """Posted to the service's loop when a run ends, however it ended (or if it never began)."""

    task_id: str
    spec: RunSpec | None
    outcome: Outcome
    duration_s: float
    path: Path | None = None
    """Where the note is after the run was recorded on it."""


def agent_env(spec: RunSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment, minus CLAUDECODE, plus the AI_EMPLOYEE_TASK_* variables."""
    env = dict(os.environ if base is None else base)
    env.pop("CLAUDECODE", None)
    env["AI_EMPLOYEE_TASK_ID"] = spec.task_id
    env["AI_EMPLOYEE_TASK_FILE"] = str(spec.note_path)
    env["AI_EMPLOYEE_VAULT"] = str(spec.vault)
    return env


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
        fields = raw.rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[19])


class _SharedDevnull:
    """/dev/null opened once for every agent's stdin (Popen gives the child its own copy)."""

    fd = -1

    def __enter__(self) -> int:
        if _SharedDevnull.fd < 0:
            _SharedDevnull.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return _SharedDevnull.fd

    def __exit__(self, *exc: object) -> None:
        return None


def _devnull() -> _SharedDevnull:
    return _SharedDevnull()


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


@dataclass
class Run:
    """One attempt: claimed, run and recorded in its own thread, which owns its process."""

    task_id: str
    prepare: Callable[[], RunSpec | None]
    """Claims the note and writes the prompt; None when the note is no longer runnable."""
    conclude: Callable[[RunFinished], Path | None]
    """Records the end of the run on the note; returns where the note is now."""
    agent: Agent
    timeout: float
    stall: float
    journal: RunJournal
    transcripts: Path
    report: Callable[[RunFinished], None]
    agent_done: Callable[[Run, Outcome], None] = lambda run, outcome: None
    """Told when the agent's part is over, before the end is recorded (see `agent_gone`)."""
    spec: RunSpec | None = None
    started: float = field(default_factory=time.monotonic)
    process: subprocess.Popen[bytes] | None = None
    _wake_r: int = -1
    _wake_w: int = -1
    _thread: threading.Thread | None = None
    _pipe_lock: threading.Lock = field(default_factory=threading.Lock)
    _recorded: bool = False
    ending: bool = False
    """The process is gone and the end is being recorded: nothing left to stop."""

    @property
    def agent_gone(self) -> bool:
        """No process of this run is left (none started, or it exited and its group was
        stopped): its slot and work dir are free even while the end is being recorded."""
        return self.process is None or self.process.returncode is not None

    def start(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._main, name=f"run-{self.task_id}", daemon=True)
        self._thread.start()

    def stop(self, interrupt: bool = False) -> None:
        """Cancel (a person) or interrupt (shutdown): the run's thread stops the group."""
        with self._pipe_lock:
            if self._wake_w >= 0:  # closed once the run ended: never write to a reused fd
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, _INTERRUPT if interrupt else _CANCEL)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # --- the run's thread -------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self.spec = self.prepare()
        except Exception as err:
            log.exception("cannot claim the task", task_id=self.task_id)
            self.spec = None
            error = f"internal error while claiming: {err}"
        else:
            error = "the note changed before it could be claimed"
        if self.spec is None:
            self._close_pipe()
            self.report(RunFinished(self.task_id, None, Outcome(OutcomeKind.SKIPPED, error), 0.0))
            return
        self.started = time.monotonic()
        transcript = Transcript(self.transcripts / f"{self.task_id}.jsonl")
        outcome: Outcome
        try:
            outcome = self._run(transcript)
        except Exception as err:  # a bug must not leave a task executing for ever
            log.exception("run crashed", task_id=self.task_id)
            outcome = Outcome(OutcomeKind.TRANSIENT, error=f"internal error: {err}")
        finally:
            if self._recorded and self.process is not None:
                self.journal.ended(self.task_id, self.process.pid)
            self._close_pipe()
        self.agent_done(self, outcome)
        duration = time.monotonic() - self.started
        transcript.write(
            "end",
            outcome=outcome.kind.value,
            exit_code=outcome.exit_code,
            error=outcome.error or None,
            duration_s=round(duration, 3),
        )
        transcript.close()
        finished = RunFinished(self.task_id, self.spec, outcome, duration)
        self.ending = True
        try:
            path = self.conclude(finished)
        except Exception:
            log.exception("cannot record the run", task_id=self.task_id)
            path = self.spec.note_path
        self.report(dataclasses.replace(finished, path=path))

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _run(self, transcript: Transcript) -> Outcome:
        spec = self.spec
        assert spec is not None
        if spec.setup_error:
            transcript.write("error", error=spec.setup_error)
            return Outcome(OutcomeKind.TRANSIENT, error=spec.setup_error)
        argv = self.agent.argv(spec)
        stdin_path = self.agent.stdin(spec)
        start = {
            "attempt": spec.attempt,
            "argv": argv,
            "cwd": str(spec.workdir),
            "session_id": spec.session_id,
            "resume": spec.resume,
        }
        try:
            with open(stdin_path, "rb") if stdin_path else _devnull() as stdin:
                self.process = subprocess.Popen(
                    argv,
                    cwd=spec.workdir,
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=agent_env(spec),
                    start_new_session=True,  # its own process group: stopped as a whole
                    close_fds=True,
                )
        except OSError as err:
            transcript.write("start", **start)
            transcript.write("error", error=str(err))
            return self.agent.not_found(spec, err)
        proc = self.process
        transcript.write("start", **start, pid=proc.pid)
        log.info(
            "run started",
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
        self._write_record(proc.pid)
        state = RunState()
        assert proc.stdout is not None
        stream = proc.stdout.fileno()
        os.set_blocking(stream, False)
        selector = selectors.PollSelector()  # no kernel object to make and close per run
        selector.register(stream, selectors.EVENT_READ, "out")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        pending = b""
        last_output = time.monotonic()
        deadline = self.started + self.timeout
        stopped: Outcome | None = None
        try:
            while True:
                now = time.monotonic()
                wait = min(deadline, last_output + self.stall) - now
                if wait <= 0:
                    why = (
                        f"timed out after {self.timeout:g} s (task_timeout_seconds)"
                        if now >= deadline
                        else f"no output for {self.stall:g} s (stall_seconds); stopped"
                    )
                    self._stop_group(proc)
                    stopped = Outcome(OutcomeKind.TRANSIENT, error=why)
                    break
                events = selector.select(wait)
                eof = False
                for key, _ in events:
                    if key.data == "wake":
                        signal_byte = os.read(self._wake_r, 1)
                        self._stop_group(proc)
                        stopped = Outcome(
                            OutcomeKind.INTERRUPTED
                            if signal_byte == _INTERRUPT
                            else OutcomeKind.CANCELLED,
                            error="stopped by the service's shutdown"
                            if signal_byte == _INTERRUPT
                            else "cancelled by a person",
                        )
                        break
                    chunk = os.read(stream, 1 << 16)
                    if not chunk:
                        eof = True
                        continue
                    last_output = time.monotonic()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw, state, transcript)
                if stopped is not None or eof:
                    break
            if pending:
                self._line(pending, state, transcript)
            if stopped is None:
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    proc.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    self._stop_group(proc)
                    return Outcome(OutcomeKind.TRANSIENT, error="timed out after closing output")
                self._kill_leftovers(proc.pid)
        finally:
            selector.close()
            proc.stdout.close()
        if stopped is not None:
            return Outcome(
                stopped.kind,
                error=stopped.error,
                result="\n".join(state.tail[-20:]),
                exit_code=proc.returncode,
            )
        return self.agent.finish(proc.returncode, state)

    def _line(self, raw: bytes, state: RunState, transcript: Transcript) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        progress = self.agent.on_line(line, state)
        transcript.write("out", line=line)
        if progress:
            log.info("progress", action_type="progress", task_id=self.task_id, **progress)

    def _write_record(self, pid: int) -> None:
        self._recorded = True
        self.journal.started(
            {
                "task_id": self.task_id,
                "pid": pid,
                "pgid": pid,
                "start_ticks": process_start_ticks(pid),
                "attempt": self.spec.attempt if self.spec else None,
                "session_id": self.spec.session_id if self.spec else None,
                "service_pid": os.getpid(),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    def _stop_group(self, proc: subprocess.Popen[bytes]) -> None:
        stop_group(proc.pid, lambda t: _wait_child(proc, t))

    def _kill_leftovers(self, pgid: int) -> None:
        """The agent exited: anything it left in its group goes too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _wait_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def stop_group(pgid: int, wait: Callable[[float], bool], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the group, wait up to `grace` for its leader, then SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    wait(grace)


def wait_pid(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to exit (pidfd: no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return True
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            return bool(selector.select(timeout))
    finally:
        os.close(fd)


def leftover_agents(journal: Path, legacy_runs: Path, vault: Path) -> Iterator[tuple[str, int]]:
    """(task_id, pid) of agents a previous service left running: by run record, then by /proc."""
    seen: set[int] = set()
    for record in [*live_records(journal), *_legacy_records(legacy_runs)]:
        try:
            pid, ticks = int(record["pid"]), record.get("start_ticks")
        except (ValueError, KeyError, TypeError):
            continue
        alive_since = process_start_ticks(pid)
        if pid not in seen and alive_since is not None and alive_since == ticks:
            seen.add(pid)  # the same process, not a reused pid
            yield str(record["task_id"]), pid
    # A crash between starting the agent and writing its record: find it by its environment.
    want = f"AI_EMPLOYEE_VAULT={vault}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in seen or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in environ:
            task = next((v for v in environ if v.startswith(b"AI_EMPLOYEE_TASK_ID=")), None)
            if task is not None and os.getpgid(int(entry.name)) == int(entry.name):
                yield task.split(b"=", 1)[1].decode(), int(entry.name)


def _legacy_records(runs_dir: Path) -> Iterator[dict[str, Any]]:
    """`.ai-employee/runs/<task_id>.json`, written by versions before the journal."""
    for record_path in sorted(runs_dir.glob("*.json")):
        try:
            record = json.loads(record_path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(record, dict):
            yield record


def stop_leftovers(journal: Path, legacy_runs: Path, vault: Path) -> list[tuple[str, int]]:
    """Stop every leftover agent (and its group) before any retry starts; clear the records."""
    stopped = []
    for task_id, pid in leftover_agents(journal, legacy_runs, vault):
        stop_group(pid, functools.partial(wait_pid, pid), grace=2.0)
        log.warning(
            "stopped a leftover agent",
            action_type="recover",
            task_id=task_id,
            parameters={"pid": pid},
            result="stopped before the task's retry",
        )
        stopped.append((task_id, pid))
    for record_path in legacy_runs.glob("*.json"):
        record_path.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)
    return stopped
