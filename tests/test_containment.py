"""Every process a run starts ends with the run, whatever session or group it made for itself
and whether or not it heeds SIGTERM: after the agent exits, after a cancel, after the service
was SIGKILLed and started again, and Claude's own Bash tool under a CLI killed mid-command."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ai_employee.base.processes import wait_pid
from ai_employee.notes.vault import Folder, Vault

from .claude_harness import bash, claude_config
from .fake_anthropic import FakeAnthropic
from .helpers import wait_for
from .service_harness import (
    cancel,
    drop,
    events,
    running_service,
    service_process,
    status_of,
    stop_service,
    svc_config,
    wait_status,
)

AGENT = Path(__file__).with_name("containment_agent.py")


def agent(then: str) -> str:
    return f"{sys.executable} {AGENT} {{workdir}} {then}"


def task(title: str) -> str:
    return f"---\ntitle: {title}\ntype: claude_app\nlanguage: py\napp: {title.lower()}\n---\nGo.\n"


def child_of(vault: Vault, app: str) -> int:
    pid_file = vault.root.parent / "apps" / "py" / app / "child.pid"
    return int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 15, "pid"))


def gone(pid: int) -> bool:
    """The process exited (it is not ours to reap: its parent is init by now)."""
    return wait_pid(pid, 10) or not Path(f"/proc/{pid}").exists()


def test_a_child_in_its_own_session_that_ignores_sigterm_ends_when_the_agent_exits(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(svc_config(vault, agent_command=agent("exit"))):
        drop(vault, tmp_path, "Exits.md", task("Exits"))
        child = child_of(vault, "exits")
        wait_status(vault.folder(Folder.DONE) / "Exits.md", "done", 30)
        assert gone(child), "the agent's child outlived the run"
        assert events(vault, "stopped what the run left")


def test_a_cancel_ends_the_child_too(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault, agent_command=agent("sleep"))):
        path = drop(vault, tmp_path, "Stop.md", task("Stop"))
        running = wait_status(path, "executing")
        child = child_of(vault, "stop")
        assert cancel(vault, str(running.task_id)).returncode == 0
        wait_status(vault.folder(Folder.DONE) / "Stop.md", "cancelled", 30)
        assert gone(child)


def test_after_the_service_is_killed_the_next_start_ends_the_child(
    vault: Vault, tmp_path: Path
) -> None:
    env = {
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": agent("sleep"),
        "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
    }
    first = service_process(vault, env)
    try:
        drop(vault, tmp_path, "Kill.md", task("Kill"))
        child = child_of(vault, "kill")
        first.kill()  # SIGKILL: the agent and its child live on
        first.wait(10)
    finally:
        stop_service(first)
    assert Path(f"/proc/{child}").exists(), "the child outlived the service"
    second = service_process(vault, env)
    try:
        assert gone(child), "the next start ends what the dead service's run left"
    finally:
        stop_service(second)


def test_claudes_bash_tool_ends_with_its_run_when_the_cli_is_killed(
    vault: Vault, tmp_path: Path, claude_bin: Path, claude_env: FakeAnthropic
) -> None:
    """Claude Code starts each Bash command in a session of its own: a SIGKILL of the CLI
    leaves it running, unless the run ends it."""
    marker = tmp_path / "bash-started"
    claude_env.enqueue(bash(f"touch {marker} && exec sleep 600"))
    config = claude_config(vault, claude_bin, allowed_tools="Bash")
    with running_service(config):  # type: ignore[arg-type]
        drop(vault, tmp_path, "Sleep.md", task("Sleep"))
        wait_for(marker.exists, 30, "the Bash tool's command to start")
        sleeping = _pids_of("sleep 600")
        assert sleeping, "the Bash tool's sleep"
        cli = [pid for pid in _pids_of(str(claude_bin)) if pid not in sleeping]
        for pid in cli:
            os.kill(pid, signal.SIGKILL)  # the CLI dies without cleaning up
        wait_for(lambda: _ended(vault, "Sleep.md"), 30, "the run's end")
        assert all(gone(pid) for pid in sleeping), "Bash's sleep outlived the run"


def _pids_of(command: str) -> list[int]:
    found = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                cmdline = Path(f"/proc/{proc}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if command in cmdline and int(proc) != os.getpid():
                found.append(int(proc))
    return found


def _ended(vault: Vault, name: str) -> bool:
    """The run's end is recorded (its agent died: planned for a retry, or failed)."""
    return status_of(vault.folder(Folder.NEEDS_ACTION) / name) in ("planned", "failed", None)
