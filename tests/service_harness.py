"""Run the real service (real inotify, real files) in a thread, and read what it did."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ai_employee.base.config import Config, load_config
from ai_employee.base.logs import configure_logging
from ai_employee.daemon.service import Service
from ai_employee.notes.taskfile import TaskNote, held_reason, parse_note
from ai_employee.notes.vault import Vault

from .helpers import wait_for

TEST_AGENT_ENV = "FAKE_*,ACP_*,CODEX_HOME"
"""What the tests' own agents read of the environment (agent_env: nothing else passes)."""


def svc_config(vault: Vault, **overrides: Any) -> Config:
    """Defaults with short quiet times, and an agent that just sleeps (runs stay `executing`),
    so tests about watching and planning are quick; any key can be overridden."""
    env = {
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.2",
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": "sleep 60",
        "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
        "AI_EMPLOYEE_AGENT_ENV": TEST_AGENT_ENV,
    }
    env.update({f"AI_EMPLOYEE_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(vault.root, env=env)


@contextlib.contextmanager
def running_service(config: Config, **kwargs: Any) -> Iterator[Service]:
    configure_logging(config.vault / "Logs", style="json", console_level=100)
    ready = threading.Event()
    service = Service(config, on_ready=ready.set, **kwargs)
    result: list[int | BaseException] = []

    def target() -> None:
        try:
            result.append(service.run())
        except BaseException as err:
            result.append(err)
            ready.set()

    thread = threading.Thread(target=target, name="service", daemon=True)
    thread.start()
    assert ready.wait(30), "the service did not become ready"
    if result and isinstance(result[0], BaseException):
        raise result[0]
    try:
        yield service
    finally:
        service.stop()
        thread.join(60)
        assert not thread.is_alive(), "the service did not stop"
        if result and isinstance(result[0], BaseException):
            raise result[0]
        assert result == [0]


def note(path: Path) -> TaskNote:
    return parse_note(path.read_text(encoding="utf-8"), path.name)


def note_if(path: Path, holds: Callable[[TaskNote], object]) -> TaskNote | None:
    """The note at `path` if it is there and `holds` is true of it, else None (for wait_for)."""
    try:
        parsed = note(path)
    except (FileNotFoundError, ValueError):
        return None
    return parsed if holds(parsed) else None


def recorded(path: Path) -> TaskNote | None:
    """The note once a run's end is recorded on it (`completed_at`), else None."""
    return note_if(path, lambda n: n.meta.get("completed_at"))


def status_of(path: Path) -> str | None:
    try:
        return str(note(path).meta.get("status"))
    except (FileNotFoundError, ValueError):
        return None


def wait_status(path: Path, status: str, timeout: float = 15.0) -> TaskNote:
    wait_for(lambda: status_of(path) == status, timeout, f"{path.name} to be {status}")
    return note(path)


def wait_planned(path: Path, timeout: float = 15.0) -> TaskNote:
    """Until the note has been planned (it may already run: the status moves on)."""

    def planned() -> TaskNote | None:
        try:
            found = note(path)
        except (FileNotFoundError, ValueError):
            return None
        return found if found.meta.get("planned_at") else None

    return wait_for(planned, timeout, f"{path.name} to be planned")


def audit(vault: Vault) -> list[dict[str, Any]]:
    entries = []
    for log_file in sorted(vault.logs.glob("*.jsonl")):
        entries += [json.loads(line) for line in log_file.read_text().splitlines() if line]
    return entries


def events(vault: Vault, event: str, task_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in audit(vault)
        if e["event"] == event and (task_id is None or e.get("task_id") == task_id)
    ]


def drop(vault: Vault, tmp_path: Path, name: str, text: str, folder: str = "Needs_Action") -> Path:
    """Write a note outside the vault, then rename it in (how scripts and sync tools deliver)."""
    staged = tmp_path / f"staged-{name}"
    staged.write_text(text, encoding="utf-8")
    target = vault.root / folder / name
    staged.rename(target)
    return target


def service_process(
    vault: Vault, env: dict[str, str], *, own_group: bool = False
) -> subprocess.Popen[str]:
    """`ai-employee run` as a child process (what systemd starts), once it is ready.
    `own_group`: in a process group of its own, which `os.killpg` ends whole (the service,
    its git and its agents at once: a power cut)."""
    full_env = {
        **os.environ,
        "AI_EMPLOYEE_AGENT_ENV": TEST_AGENT_ENV,
        **env,
        "AI_EMPLOYEE_VAULT": str(vault.root),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run"],
        env=full_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=own_group,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if '"service ready"' in line:
            return proc
        assert time.monotonic() < deadline, "no ready line"
    raise AssertionError(f"service exited early: {proc.wait()}")


def stop_service(proc: subprocess.Popen[str]) -> None:
    """A `service_process` stopped: SIGTERM, SIGKILL if it does not go within 30 s, its pipe
    closed (a service left running would spill into the next test)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def cancel(vault: Vault, task_id: str) -> subprocess.CompletedProcess[str]:
    """`ai-employee cancel TASK` as a person types it."""
    return person(vault, "cancel", task_id)


def cli(vault: Vault, *args: str) -> subprocess.CompletedProcess[str]:
    """`ai-employee ARGS --vault VAULT` as a person types it."""
    return subprocess.run(
        [sys.executable, "-m", "ai_employee", *args, "--vault", str(vault.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def person(vault: Vault, verb: str, task_id: str) -> subprocess.CompletedProcess[str]:
    """`ai-employee VERB TASK` (approve, reject, retry, cancel) as a person types it."""
    return cli(vault, verb, task_id)


def held_as(task: TaskNote) -> str:
    """Why a note is held as a copy of another task (its `error` says), or ""."""
    return held_reason(task.meta.get("error")) or ""


def copy_of(task: TaskNote) -> str | None:
    """The task_id of the task a held copy's reason names."""
    found = re.match(
        r"(?:a version of|the same text as|it carries the task_id of"
        r"|a sync tool's conflict copy of) (\S+) ",
        held_as(task),
    )
    return found[1] if found else None
