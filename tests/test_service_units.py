"""The service as systemd and launchd run it: unit files, sd_notify, install and uninstall."""

from __future__ import annotations

import os
import plistlib
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ai_employee.config import load_config
from ai_employee.sdnotify import Notifier
from ai_employee.service_units import render
from ai_employee.vault import Vault

from .test_cli_basics import run_cli


def test_print_shows_both_managers_without_writing(vault: Vault, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "AI_EMPLOYEE_VAULT": str(vault.root)}
    systemd = run_cli("service", "install", "--print", "--manager", "systemd", env=env)
    assert systemd.returncode == 0, systemd.stderr
    assert systemd.stdout.startswith(f"# {tmp_path}/home/.config/systemd/user/ai-employee.service")
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=60",
        "TimeoutStopSec=60s",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        f"ExecStart={sys.executable} -m ai_employee run --vault {vault.root}",
        f"Environment=AI_EMPLOYEE_VAULT={vault.root}",
    ]:
        assert f"\n{line}\n" in systemd.stdout, line
    assert "ProtectHome" not in systemd.stdout
    launchd = run_cli("service", "install", "--print", "--manager", "launchd", env=env)
    assert launchd.stdout.startswith(
        f"# {tmp_path}/home/Library/LaunchAgents/com.ai-employee.agent.plist"
    )
    assert not (tmp_path / "home").exists(), "--print writes nothing"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian's systemd package has it)",
)
def test_the_unit_passes_systemd_analyze_verify(vault: Vault, tmp_path: Path) -> None:
    config = load_config(vault.root, env={"AI_EMPLOYEE_CLAUDE_PATH": "/usr/bin/env"})
    unit = render(config, "systemd", home=tmp_path)
    path = tmp_path / "ai-employee.service"
    path.write_text(unit.text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(path)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # a typo in a key only warns: none allowed


def test_the_plist_loads_and_lints(vault: Vault, tmp_path: Path) -> None:
    config = load_config(vault.root, env={})
    unit = render(config, "launchd", home=tmp_path)
    plist = plistlib.loads(unit.text.encode())
    assert plist["Label"] == "com.ai-employee.agent"
    assert plist["ProgramArguments"] == [
        sys.executable,
        "-m",
        "ai_employee",
        "run",
        "--vault",
        str(vault.root),
    ]
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["RunAtLoad"] is True and plist["ProcessType"] == "Interactive"
    assert plist["ExitTimeOut"] > config.shutdown_grace_seconds
    assert plist["EnvironmentVariables"]["AI_EMPLOYEE_VAULT"] == str(vault.root)
    if shutil.which("plutil"):
        path = tmp_path / "agent.plist"
        path.write_text(unit.text)
        subprocess.run(["plutil", "-lint", str(path)], check=True)


def test_odd_paths_are_quoted_in_the_unit(tmp_path: Path) -> None:
    root = tmp_path / "my vault 100%"
    run_cli("init", "--vault", str(root))
    unit = render(load_config(root, env={}), "systemd", home=tmp_path)
    assert (
        f'ExecStart={sys.executable} -m ai_employee run --vault "{tmp_path}/my vault 100%%"'
        in unit.text
    )


def test_install_and_uninstall_drive_systemctl(vault: Vault, tmp_path: Path) -> None:
    """systemd cannot run in this sandbox: a stand-in systemctl records what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = {
        "HOME": str(tmp_path / "home"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "USER": "alice",
        "AI_EMPLOYEE_VAULT": str(vault.root),
        "AI_EMPLOYEE_CLAUDE_PATH": "claude-not-installed-here",
    }
    installed = run_cli("service", "install", "--manager", "systemd", env=env)
    assert installed.returncode == 0, installed.stderr
    unit = tmp_path / "home/.config/systemd/user/ai-employee.service"
    assert unit.read_text().startswith("# ai-employee as a systemd user service")
    assert "loginctl enable-linger alice" in installed.stdout
    assert "warning: claude was not found on PATH" in installed.stdout
    removed = run_cli("service", "uninstall", "--manager", "systemd", env=env)
    assert removed.returncode == 0
    assert not unit.exists() and vault.root.is_dir()
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now ai-employee.service",
        "--user disable --now ai-employee.service",
        "--user daemon-reload",
    ]


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_ready_watchdog_stopping_in_order(
    vault: Vault, tmp_path: Path, abstract: bool
) -> None:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"\0ai-employee-test-{os.getpid()}" if abstract else str(tmp_path / "notify.sock")
    receiver.bind(name)
    receiver.settimeout(30)
    env = {
        **os.environ,
        "AI_EMPLOYEE_VAULT": str(vault.root),
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": "true",
        "WATCHDOG_USEC": "200000",
        "NOTIFY_SOCKET": "@" + name[1:] if abstract else name,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        seen = []
        while len([m for m in seen if m == "WATCHDOG=1"]) < 2:
            seen.append(receiver.recv(4096).decode().split("\n")[0])
        proc.send_signal(signal.SIGTERM)
        while seen[-1] != "STOPPING=1":
            seen.append(receiver.recv(4096).decode().split("\n")[0])
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.close()
    assert seen[0] == "READY=1"
    assert set(seen[1:-1]) == {"WATCHDOG=1"}
    assert seen[-1] == "STOPPING=1"


def test_notifier_is_silent_without_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.ready() is False
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "60000000"}).watchdog_interval == 30
