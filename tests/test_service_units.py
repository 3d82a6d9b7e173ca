"""The service as systemd and launchd run it: unit files, sd_notify, install and uninstall.

Units are checked by systemd itself: `systemd-analyze verify`, and `systemd --test --user`, which
loads a unit the way the user manager does and prints every setting as it was parsed (it refuses
to run as root, so a test running as root runs it as `nobody`).
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ai_employee.base.config import Config, load_config
from ai_employee.daemon import service_units
from ai_employee.daemon.envfile import ENV_FILE_HEADER
from ai_employee.daemon.sdnotify import Notifier, WatchdogPinger, loop_alive
from ai_employee.daemon.service_units import Manager, UnitFile, plan_install, render, service_path
from ai_employee.notes.vault import Vault, init_vault

from .helpers import wait_for
from .test_cli_basics import run_cli

SYSTEMD = Path("/lib/systemd/systemd")

ODD_NAMES = [
    "My Vault 100%",
    "20%h off",  # %h is a specifier: unescaped, systemd would put the home folder here
    'it\'s a "quoted" $HOME',
    "back\\slash;semi",
    "Notizen Ünïcødé ✓ 日本",
]


def _unit(
    config: Config, manager: Manager, home: Path, environ: dict[str, str] | None = None
) -> UnitFile:
    return render(plan_install(config, home, environ), manager, home)


def _unit_settings(unit_text: str) -> dict[str, list[str]]:
    """The unit as systemd's user manager parsed it: each setting's dumped values."""
    with tempfile.TemporaryDirectory(prefix="unit-test-") as top:
        root = Path(top)
        (root / "units").mkdir()
        (root / "units" / "ai-employee.service").write_text(unit_text)
        runtime = root / "runtime"
        runtime.mkdir()
        for path in (root, root / "units", root / "units" / "ai-employee.service", runtime):
            path.chmod(0o755 if path.is_dir() else 0o644)
        runtime.chmod(0o777)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root),
            "XDG_RUNTIME_DIR": str(runtime),
            "SYSTEMD_UNIT_PATH": f"{root / 'units'}:",
        }
        argv = [str(SYSTEMD), "--test", "--user", "--unit=ai-employee.service", "--no-pager"]
        if os.geteuid() == 0:  # "Don't run test mode as root."
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    said = (done.stdout + done.stderr).splitlines()
    problems = [line for line in said if re.search(r"ai-employee\.service:\d+:", line)]
    assert problems == [], problems  # "Unknown key", "Failed to parse", ...
    settings: dict[str, list[str]] = {}
    inside = False
    for line in done.stdout.splitlines():
        if line.startswith("\t-> Unit "):
            inside = line == "\t-> Unit ai-employee.service:"
            continue
        if inside and ": " in line:
            key, _, value = line.strip().partition(": ")
            settings.setdefault(key, []).append(value)
    assert settings, "the unit is not in systemd's dump"
    return settings


@pytest.fixture
def odd_vault(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Vault]:
    root = tmp_path / request.param
    init_vault(root, tmp_path / "apps")
    yield Vault(root)


@pytest.mark.parametrize("odd_vault", ODD_NAMES, indirect=True)
def test_any_vault_path_reaches_systemd_exactly(odd_vault: Vault, tmp_path: Path) -> None:
    vault = str(odd_vault.root)
    path = f"/opt/with space/bin:{tmp_path}/100%:/usr/bin"
    unit = _unit(load_config(vault, env={}), "systemd", home=tmp_path, environ={"PATH": path})
    parsed = _unit_settings(unit.text)
    assert parsed["WorkingDirectory"] == [vault]
    assert parsed["Description"] == [f"ai-employee: markdown task notes to finished work ({vault})"]
    assert f"PATH={path}" in parsed["Environment"]
    # The dump re-quotes ExecStart as a shell would (`$` as `\$`). systemd runs `$$` as `$`
    # and expands a lone `$NAME`: only the doubled form may stand for the vault's `$`.
    [command] = parsed["Command Line"]
    argv = [word.replace("\\$\\$", "$") for word in shlex.split(command)]
    assert argv == [sys.executable, "-m", "ai_employee", "run", "--vault", vault]
    assert parsed["ReadWritePaths"][0].startswith(f"{vault} {tmp_path / 'apps'} -")
    assert parsed["EnvironmentFile"] == [f"-{tmp_path}/.config/ai-employee/service.env"]
    assert parsed["WatchdogSec"] == ["1min"]
    assert parsed["Restart"] == ["on-failure"]


def test_systemd_analyze_verify_accepts_the_unit_for_my_vault_100(tmp_path: Path) -> None:
    root = tmp_path / "My Vault 100%"
    init_vault(root, tmp_path / "apps")
    config = load_config(root, env={"AI_EMPLOYEE_CLAUDE_PATH": "/usr/bin/env"})
    unit = _unit(config, "systemd", home=tmp_path)
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


def test_print_writes_only_the_unit_to_stdout(vault: Vault, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home), "AI_EMPLOYEE_VAULT": str(vault.root), "PATH": os.environ["PATH"]}
    systemd = run_cli("service", "install", "--print", "--manager", "systemd", env=env)
    assert systemd.returncode == 0, systemd.stderr
    assert systemd.stdout.startswith("# ai-employee as a systemd user service")
    assert f"# install would write {home}/.config/systemd/user/ai-employee.service" in (
        systemd.stderr
    )
    lines = systemd.stdout.splitlines()
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "RestartPreventExitStatus=2 3",
        "WatchdogSec=60",
        "TimeoutStopSec=60s",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        f"ExecStart={sys.executable} -m ai_employee run --vault {vault.root}",
        f"WorkingDirectory={vault.root}",
        f"EnvironmentFile=-{home}/.config/ai-employee/service.env",
    ]:
        assert line in lines, line
    assert not any("ProtectHome" in line for line in lines)
    launchd = run_cli("service", "install", "--print", "--manager", "launchd", env=env)
    assert launchd.returncode == 0, launchd.stderr
    plist = plistlib.loads(launchd.stdout.encode())  # stdout is the plist, nothing else
    assert plist["Label"] == "com.ai-employee.agent"
    assert f"# install would write {home}/Library/LaunchAgents/com.ai-employee.agent.plist" in (
        launchd.stderr
    )
    assert not home.exists(), "--print writes nothing"


@pytest.mark.parametrize("odd_vault", ODD_NAMES, indirect=True)
def test_the_plist_is_made_by_plistlib_for_any_vault_path(odd_vault: Vault, tmp_path: Path) -> None:
    config = load_config(odd_vault.root, env={})
    plist = plistlib.loads(_unit(config, "launchd", home=tmp_path).text.encode())
    log_file = str(tmp_path / "Library" / "Logs" / "ai-employee.log")
    assert plist["ProgramArguments"] == [
        sys.executable,
        "-m",
        "ai_employee",
        "run",
        "--vault",
        str(odd_vault.root),
        "--env-file",
        f"{tmp_path}/.config/ai-employee/service.env",
        "--log-file",
        log_file,
    ]
    assert plist["WorkingDirectory"] == str(odd_vault.root)
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["RunAtLoad"] is True and plist["ProcessType"] == "Interactive"
    assert plist["ExitTimeOut"] > config.shutdown_grace_seconds
    assert plist["StandardOutPath"] == plist["StandardErrorPath"] == log_file
    if shutil.which("plutil"):
        path = tmp_path / "agent.plist"
        path.write_text(_unit(config, "launchd", home=tmp_path).text)
        subprocess.run(["plutil", "-lint", str(path)], check=True)


def test_the_unit_path_is_the_installing_shells_without_our_own_virtualenv(
    tmp_path: Path,
) -> None:
    own_bin = str(Path(sys.executable).parent)
    assert sys.prefix != sys.base_prefix, "the tests run in a virtualenv"
    shell = f"/home/me/.local/bin:{own_bin}:relative/bin::/usr/bin:/home/me/.local/bin"
    assert service_path({"PATH": shell}, sys.executable) == "/home/me/.local/bin:/usr/bin"
    assert service_path({}, sys.executable) == "/usr/local/bin:/usr/bin:/bin"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 2.1.328 (Claude Code)\n")
    path.chmod(0o755)
    return path


def test_claude_from_the_shell_is_written_into_the_unit_and_said_to_win(
    vault: Vault, tmp_path: Path
) -> None:
    claude = _executable(tmp_path / "bin" / "claude")
    config = load_config(vault.root, env={"AI_EMPLOYEE_CLAUDE_PATH": str(claude)})
    plan = plan_install(config, tmp_path, {"PATH": "/usr/bin"})
    assert plan.claude.in_unit and plan.claude.found
    assert "wins over claude_path" in plan.claude.why
    unit = _unit(config, "systemd", home=tmp_path, environ={"PATH": "/usr/bin"})
    assert f"Environment=AI_EMPLOYEE_CLAUDE_PATH={claude}" in unit.text.splitlines()
    plist = plistlib.loads(_unit(config, "launchd", home=tmp_path).text.encode())
    assert plist["EnvironmentVariables"]["AI_EMPLOYEE_CLAUDE_PATH"] == str(claude)


@pytest.mark.parametrize(
    ("written", "expected"),
    [("~/tools/claude", "{home}/tools/claude"), ("tools/claude", "{vault}/tools/claude")],
    ids=["tilde", "relative"],
)
def test_claude_path_from_the_file_is_expanded_and_left_to_the_file(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, expected: str
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    want = Path(expected.format(home=home, vault=vault.root))
    _executable(want)
    (vault.root / ".ai-employee.toml").write_text(f'claude_path = "{written}"\n')
    config = load_config(vault.root, env={})
    assert config.claude_path == str(want)
    plan = plan_install(config, home, {"PATH": "/usr/bin"})
    assert plan.claude.found and not plan.claude.in_unit
    unit = _unit(config, "systemd", home=home, environ={"PATH": "/usr/bin"})
    assert "AI_EMPLOYEE_CLAUDE_PATH" not in unit.text  # a later edit of the file counts


def test_install_warns_loudly_when_claude_cannot_be_found(vault: Vault, tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
        "AI_EMPLOYEE_VAULT": str(vault.root),
    }
    # Not the plain name: a checkout of this project has its own copy of `claude` (run.sh's),
    # which the default finds when PATH has none.
    (vault.root / ".ai-employee.toml").write_text('claude_path = "claude-not-installed-here"\n')
    printed = run_cli("service", "install", "--print", env=env)
    assert printed.returncode == 0
    assert (
        "# warning: claude was not found ('claude-not-installed-here': claude_path in "
        f"{vault.root / '.ai-employee.toml'}; read there at each start)"
    ) in printed.stderr
    quiet = run_cli("service", "install", "--print", env={**env, "AI_EMPLOYEE_AGENT": "command"})
    assert "claude was not found" not in quiet.stderr  # the command agent needs no claude


def test_install_and_uninstall_drive_systemctl(vault: Vault, tmp_path: Path) -> None:
    """systemd cannot run in this sandbox: a stand-in systemctl records what it was asked."""
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls.txt"
    fake = _executable(bin_dir / "systemctl")
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    home = tmp_path / "home"
    env = {
        "HOME": str(home),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "USER": "alice",
        "AI_EMPLOYEE_VAULT": str(vault.root),
    }
    (vault.root / ".ai-employee.toml").write_text('claude_path = "claude-not-installed-here"\n')
    installed = run_cli("service", "install", "--manager", "systemd", env=env)
    assert installed.returncode == 0, installed.stderr
    unit = home / ".config/systemd/user/ai-employee.service"
    assert unit.read_text().startswith("# ai-employee as a systemd user service")
    assert "loginctl enable-linger alice" in installed.stdout
    assert "ai-employee: warning: claude was not found" in installed.stderr
    secrets = home / ".config/ai-employee/service.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.read_text() == ENV_FILE_HEADER
    assert f"created {secrets} (empty, mode 0600)" in installed.stdout
    secrets.write_text("ANTHROPIC_API_KEY=sk-test\n")
    again = run_cli("service", "install", "--manager", "systemd", env=env)
    assert again.returncode == 0, again.stderr
    assert secrets.read_text() == "ANTHROPIC_API_KEY=sk-test\n", "never overwritten"
    removed = run_cli("service", "uninstall", "--manager", "systemd", env=env)
    assert removed.returncode == 0
    assert not unit.exists() and vault.root.is_dir() and secrets.exists()
    install_calls = ["--user daemon-reload", "--user enable ai-employee.service"]
    install_calls.append("--user restart ai-employee.service")  # a running one takes the new unit
    assert calls.read_text().splitlines() == [
        *install_calls,
        *install_calls,
        "--user disable --now ai-employee.service",
        "--user daemon-reload",
    ]


def test_service_status_says_where_the_unit_is_and_what_the_manager_said(
    vault: Vault, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    fake = _executable(bin_dir / "systemctl")
    fake.write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = run_cli("--vault", str(vault.root), "service", "status", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        f"unit: {home}/.config/systemd/user/ai-employee.service (not installed)",
        "$ systemctl --user status ai-employee.service --no-pager --lines 5",
        "Failed to connect to bus: No medium found",
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
        "WATCHDOG_USEC": "300000",
        "NOTIFY_SOCKET": "@" + name[1:] if abstract else name,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        seen = []
        while len([m for m in seen if m == "WATCHDOG=1"]) < 3:
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


def test_notifier_reads_the_watchdog_only_when_it_is_for_this_process() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_seconds is None
    assert notifier.ready() is False
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "60000000"}).watchdog_seconds == 60
    other = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}
    assert Notifier(other).watchdog_seconds is None


@pytest.mark.parametrize(
    ("since_beat", "waiting", "alive"),
    [
        (0.0, False, True),
        (39.9, False, True),
        (40.0, False, True),
        (40.1, False, False),
        (3600.0, True, True),
        (0.0, True, True),
    ],
)
def test_the_loop_is_alive_while_it_waits_or_made_progress_lately(
    since_beat: float, waiting: bool, alive: bool
) -> None:
    assert loop_alive(1000.0 + since_beat, 1000.0, waiting, limit=40.0) is alive


def test_the_pinger_pings_a_third_of_the_watchdog_and_stops_for_a_stuck_loop(
    tmp_path: Path,
) -> None:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "notify.sock"))
    receiver.setblocking(False)
    now = [0.0]
    pinger = WatchdogPinger(
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}), 0.3, clock=lambda: now[0]
    )
    assert pinger.interval == pytest.approx(0.1) and pinger.limit == pytest.approx(0.2)
    pinger.start()
    try:
        wait_for(lambda: pinger.pings >= 3, what="three pings from a live loop")
        now[0] = 10.0  # the loop's last beat was long ago, and it is not waiting: stuck
        stuck_at = pinger.checks + 1
        wait_for(lambda: pinger.checks > stuck_at + 3, what="the pinger's next looks")
        pings_when_stuck = pinger.pings
        wait_for(lambda: pinger.checks > stuck_at + 6, what="more looks")
        assert pinger.pings == pings_when_stuck, "no ping for a stuck loop"
        with pinger.waiting():  # a loop blocked waiting for an event is healthy
            wait_for(lambda: pinger.pings > pings_when_stuck, what="pings while waiting")
    finally:
        pinger.stop()
    received = 0
    while True:
        try:
            assert receiver.recv(64) == b"WATCHDOG=1"
        except BlockingIOError:
            break
        received += 1
    receiver.close()
    assert received == pinger.pings


def test_a_documentation_link_that_exists(vault: Vault, tmp_path: Path) -> None:
    unit = _unit(load_config(vault.root, env={}), "systemd", home=tmp_path)
    [doc] = [line.split("=", 1)[1] for line in unit.text.splitlines() if "Documentation=" in line]
    path = Path(unquote(urlparse(doc.replace("%%", "%")).path))
    assert path.name == "OPERATIONS.md" and path.is_file()


def test_a_vault_path_no_unit_can_hold_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ends with a backslash\\"
    init_vault(root, tmp_path / "apps")
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = run_cli("--vault", str(root), "service", "install", "--print", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"ai-employee: error: the vault path {str(root)!r} cannot be written into a systemd "
        "unit (control characters, leading or trailing spaces, or a trailing backslash); "
        "rename it or write the unit by hand\n"
    )


def test_a_shell_claude_that_names_nothing_leaves_the_file_to_decide(
    vault: Vault, tmp_path: Path
) -> None:
    claude = _executable(vault.root / "tools" / "claude")
    (vault.root / ".ai-employee.toml").write_text('claude_path = "tools/claude"\n')
    environ = {"AI_EMPLOYEE_CLAUDE_PATH": "/nowhere/claude", "PATH": "/usr/bin"}
    config = load_config(vault.root, env=environ)
    plan = plan_install(config, tmp_path, environ)
    assert plan.claude.path == str(claude) and plan.claude.found and not plan.claude.in_unit
    assert plan.claude.why.startswith(
        "AI_EMPLOYEE_CLAUDE_PATH='/nowhere/claude' in this shell names no program, so the unit "
        "leaves it out; claude_path in "
    )
    assert "AI_EMPLOYEE_CLAUDE_PATH" not in _unit(config, "systemd", tmp_path, environ).text


def test_folders_the_unit_must_write_exist_or_are_marked_optional(
    vault: Vault, tmp_path: Path
) -> None:
    missing = tmp_path / "not yet"
    (vault.root / ".ai-employee.toml").write_text(f'extra_roots = ["{missing}"]\n')
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    apps = vault.root.parent / "apps"
    shutil.rmtree(apps)
    env = {"HOME": str(tmp_path / "home"), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = run_cli("--vault", str(vault.root), "service", "install", env=env)
    assert done.returncode == 0, done.stderr
    assert apps.is_dir(), "the apps folder is made: a missing ReadWritePaths= entry fails the unit"
    unit = (tmp_path / "home/.config/systemd/user/ai-employee.service").read_text()
    [line] = [x for x in unit.splitlines() if x.startswith("ReadWritePaths=")]
    assert f'"-{missing}"' in line
    assert f"warning: extra_roots folder {missing} does not exist" in done.stderr


def test_install_warns_of_what_the_units_private_tmp_would_hide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PrivateTmp=yes gives the service a /tmp of its own: a vault or agent in the installing
    person's /tmp is not there for it. (The tests' own folders are under /tmp.)"""
    home = tmp_path / "home"
    agent = _executable(tmp_path / "bin" / "my-agent")
    vault = tmp_path / "vault"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    env = {
        "HOME": str(home),
        "AI_EMPLOYEE_VAULT": str(vault),
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": f"{agent} {tmp_path / 'agent.py'} {{prompt_file}}",
    }
    assert str(vault).startswith("/tmp/")
    printed = run_cli("service", "install", "--print", "--manager", "systemd", env=env)
    warned = [line for line in printed.stderr.splitlines() if "PrivateTmp=yes" in line]
    assert [line.split(" is under ")[0] for line in warned] == [
        f"# warning: the vault {vault}",
        f"# warning: apps_dir {tmp_path / 'apps'}",
        f"# warning: agent_command {agent}",
        f"# warning: agent_command {tmp_path / 'agent.py'}",  # python3 /tmp/x.py: the script
    ]
    launchd = run_cli("service", "install", "--print", "--manager", "launchd", env=env)
    assert "PrivateTmp" not in launchd.stderr  # launchd has no such thing
    config = load_config(
        vault, env={"AI_EMPLOYEE_AGENT": "command", "AI_EMPLOYEE_AGENT_COMMAND": "true"}
    )
    monkeypatch.setattr(service_units, "PRIVATE_TMP", (tmp_path / "elsewhere",))
    assert plan_install(config, home).in_tmp == ()
