"""`ai-employee service install|uninstall|status`: a systemd user unit or a launchd agent.

`plan_install` decides what the service gets (its interpreter, PATH, claude, the environment
file) from the configuration and the shell that runs `service install`; `render` writes that as
a unit file or a plist. Every value is escaped the way its directive is parsed: systemd expands
`%` specifiers everywhere, `$` in ExecStart, unquotes ExecStart, Environment and
ReadWritePaths, and takes WorkingDirectory and EnvironmentFile as written. The plist is made by
`plistlib`. Only `install` and `uninstall` write files or call the service manager.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal
from urllib.parse import quote

from ..base import commandline, fsops
from ..base.config import CONFIG_FILE_NAME, Config, env_name, load_config
from ..base.errors import ConfigError, UsageError, VaultError
from .envfile import create_env_file, env_file_path, readable_by_others

Manager = Literal["systemd", "launchd"]
UNIT_NAME = "ai-employee.service"
LAUNCHD_LABEL = "com.ai-employee.agent"

WATCHDOG_SECONDS = 60
"""systemd's WatchdogSec: the service pings at a third of it from its own thread."""

NO_RESTART_EXIT_CODES = tuple(sorted({ConfigError.exit_code, VaultError.exit_code}))
"""Exits a restart cannot cure (a bad configuration, a missing vault): RestartPreventExitStatus."""

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The unit's PATH when the installing shell has none that is usable."""


def default_manager() -> Manager:
    return "launchd" if sys.platform == "darwin" else "systemd"


def operations_doc() -> Path | None:
    """docs/OPERATIONS.md as installed with the package (the wheel carries the docs), or the
    checkout's own when running from a clone; None if neither is there."""
    packaged = resources.files("ai_employee").joinpath("docs", "OPERATIONS.md")
    if isinstance(packaged, Path) and packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"  # ../../docs
    return checkout if checkout.is_file() else None


@dataclass(frozen=True)
class Claude:
    """Which claude the service will run, and why: said by `install`, written where needed."""

    path: str
    found: bool
    in_unit: bool
    """The unit sets AI_EMPLOYEE_CLAUDE_PATH (it came from the installing shell's environment)."""
    why: str


@dataclass(frozen=True)
class InstallPlan:
    """Everything a unit or plist is made of, decided once for both managers."""

    python: str
    vault: Path
    apps_dir: Path
    path: str
    claude: Claude
    claude_needed: bool
    env_file: Path
    log_file: Path
    writable: tuple[str, ...]
    missing_roots: tuple[Path, ...]
    """extra_roots that do not exist: left read-only by the unit until they do."""
    grace_seconds: int
    doc: Path | None
    in_tmp: tuple[tuple[str, str], ...] = ()
    """What the service needs that lives under /tmp or /var/tmp (what, where): the systemd unit's
    PrivateTmp=yes gives the service a /tmp of its own, where they are not."""


@dataclass(frozen=True)
class UnitFile:
    manager: Manager
    path: Path
    text: str


def service_path(environ: os._Environ[str] | dict[str, str], python: str) -> str:
    """The installing shell's PATH, without the service's own virtualenv (agents must get the
    person's python3 and pip, not ours) and without relative entries; a default if empty."""
    own = ""
    if sys.prefix != sys.base_prefix and Path(python).parent.resolve().is_relative_to(
        Path(sys.prefix).resolve()
    ):
        own = str(Path(python).parent.resolve())
    dirs = [
        d
        for d in environ.get("PATH", "").split(os.pathsep)
        if os.path.isabs(d) and str(Path(d).resolve()) != own
    ]
    return os.pathsep.join(dict.fromkeys(dirs)) or DEFAULT_PATH


def choose_claude(config: Config, environ: os._Environ[str] | dict[str, str]) -> Claude:
    """Which claude the service runs. A value from the vault's config file is left to the file
    (the service reads it at each start, so a later edit counts); one from the installing shell's
    environment is written into the unit, and so wins over the file (said, with the reason)."""
    path = config.claude_path
    found = os.path.isabs(path) and os.access(path, os.X_OK) and Path(path).is_file()
    source = config.sources.get("claude_path", "default")
    file = config.vault / CONFIG_FILE_NAME
    variable = env_name("claude_path")
    if source.startswith("env"):
        if not found:  # not written into the unit: the service finds claude as if it were unset
            unset = {k: v for k, v in environ.items() if k != variable}
            fallback = choose_claude(load_config(config.vault, env=unset), unset)
            why = f"{variable}={path!r} in this shell names no program, so the unit leaves it out"
            return Claude(fallback.path, fallback.found, False, f"{why}; {fallback.why}")
        return Claude(
            path,
            True,
            in_unit=True,
            why=(
                f"from {variable} in this shell; the unit sets it too, so it wins over "
                f"claude_path in {file} (unset it and install again to let the file decide)"
            ),
        )
    if source == "default":
        if not found:
            return Claude(
                path,
                False,
                False,
                "not on this shell's PATH, nor where Claude Code installs itself",
            )
        if shutil.which("claude", path=environ.get("PATH")) == path:
            where = "found on this shell's PATH, which the unit gets"
        else:  # config.claude_places: the service looks there too, whatever its PATH
            where = "not on PATH but where Claude Code installs itself (or this checkout's copy)"
        return Claude(path, True, False, f"{where}; claude_path in {file} would win")
    return Claude(path, found, False, f"claude_path in {file}; read there at each start")


def plan_install(
    config: Config, home: Path, environ: os._Environ[str] | dict[str, str] | None = None
) -> InstallPlan:
    env = os.environ if environ is None else environ
    python = sys.executable
    # A missing path in ReadWritePaths= fails the unit at start; one marked `-` is skipped (and
    # stays read-only). The vault and the apps folder are made before the unit is written.
    roots = [str(r) if r.is_dir() else f"-{r}" for r in config.extra_roots]
    writable = [
        str(config.vault),
        str(config.apps_dir),
        *roots,
        *(f"-{home / p}" for p in (".claude", ".claude.json", ".config", ".cache", ".npm")),
    ]
    return InstallPlan(
        python=python,
        vault=config.vault,
        apps_dir=config.apps_dir,
        path=service_path(env, python),
        claude=choose_claude(config, env),
        claude_needed="claude" in (config.agent, config.planner),
        env_file=env_file_path(env, home),
        log_file=home / "Library" / "Logs" / "ai-employee.log",
        writable=tuple(dict.fromkeys(writable)),
        missing_roots=tuple(r for r in config.extra_roots if not r.is_dir()),
        grace_seconds=int(config.shutdown_grace_seconds),
        doc=operations_doc(),
        in_tmp=_under_tmp(config),
    )


PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 - the folders PrivateTmp= replaces
"""The folders the systemd unit's PrivateTmp=yes replaces with the service's own."""


def _under_tmp(config: Config) -> tuple[tuple[str, str], ...]:
    """The vault, the apps folder, extra roots, the claude and the command agent the service
    runs, those under /tmp or /var/tmp."""
    needed: list[tuple[str, str]] = [
        ("the vault", str(config.vault)),
        ("apps_dir", str(config.apps_dir)),
        *(("extra_roots", str(root)) for root in config.extra_roots),
    ]
    if "claude" in (config.agent, config.planner):
        needed.append(("claude_path", config.claude_path))
    if config.agent == "command":
        with contextlib.suppress(ValueError, IndexError):  # checked when the config was read
            program, *args = commandline.split(config.agent_command)
            needed.append(("agent_command", shutil.which(program) or program))
            needed += [("agent_command", arg) for arg in args if os.path.isabs(arg)]
    return tuple(
        (what, where)
        for what, where in needed
        if os.path.isabs(where)
        and any(Path(where).resolve().is_relative_to(tmp.resolve()) for tmp in PRIVATE_TMP)
    )


# --- systemd ------------------------------------------------------------------------------


def _unit_safe(value: str, what: str) -> str:
    """Refuse what no unit file can hold: control characters, and ends that systemd trims."""
    ends_badly = value != value.strip() or value.endswith("\\")  # trimmed; a line continuation
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or ends_badly:
        raise UsageError(
            f"{what} {value!r} cannot be written into a systemd unit (control characters, "
            "leading or trailing spaces, or a trailing backslash); rename it or write the unit "
            "by hand"
        )
    return value.replace("%", "%%")  # specifiers are expanded in every setting


def _quoted(value: str, what: str) -> str:
    """One word for a setting that unquotes (ExecStart, Environment, ReadWritePaths): in double
    quotes, with backslashes and quotes escaped, when it holds a space, a quote or a backslash."""
    safe = _unit_safe(value, what)
    if safe and not any(c in safe for c in " \t\"'\\"):
        return safe
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_word(value: str, what: str) -> str:
    return _quoted(value, what).replace("$", "$$")  # ExecStart expands $VARIABLES


def render_systemd(plan: InstallPlan) -> str:
    vault = str(plan.vault)
    argv = [plan.python, "-m", "ai_employee", "run", "--vault", vault]
    claude = ""
    if plan.claude.in_unit:
        assignment = f"{env_name('claude_path')}={plan.claude.path}"
        claude = f"Environment={_quoted(assignment, 'the claude path')}\n"
    doc = (
        "file://" + quote(str(plan.doc))
        if plan.doc is not None
        else "man:systemd.service(5)"  # a docs-less install: at least the unit's own manual
    )
    template = resources.files("ai_employee").joinpath("templates", "ai-employee.service.in")
    return Template(template.read_text("utf-8")).substitute(
        vault_display=_unit_safe(vault, "the vault path"),
        doc_url=_unit_safe(doc, "the docs path"),
        exec_start=" ".join(_exec_word(a, "the path") for a in argv),
        workdir=_unit_safe(vault, "the vault path"),
        env_path=_quoted(f"PATH={plan.path}", "PATH"),
        env_claude=claude,
        env_file="-" + _unit_safe(str(plan.env_file), "the environment file's path"),
        no_restart=" ".join(str(code) for code in NO_RESTART_EXIT_CODES),
        watchdog_sec=WATCHDOG_SECONDS,
        timeout_stop=f"{plan.grace_seconds + 30}s",
        rw_paths=" ".join(_quoted(p, "the path") for p in plan.writable),
    )


# --- launchd ------------------------------------------------------------------------------


def render_launchd(plan: InstallPlan) -> str:
    """The agent's plist. launchd has no environment file and no log rotation, so the service
    reads the environment file itself and keeps its own log file to a size."""
    vault = str(plan.vault)
    environment = {"PATH": plan.path}
    if plan.claude.in_unit:
        environment[env_name("claude_path")] = plan.claude.path
    agent = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [
            plan.python,
            "-m",
            "ai_employee",
            "run",
            "--vault",
            vault,
            "--env-file",
            str(plan.env_file),
            "--log-file",
            str(plan.log_file),
        ],
        "WorkingDirectory": vault,
        "EnvironmentVariables": environment,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Interactive",
        "ExitTimeOut": plan.grace_seconds + 30,
        # Where launchd puts what is printed before the service opens its log file itself.
        "StandardOutPath": str(plan.log_file),
        "StandardErrorPath": str(plan.log_file),
    }
    return plistlib.dumps(agent, sort_keys=False).decode("utf-8")


def render(plan: InstallPlan, manager: Manager, home: Path) -> UnitFile:
    """The unit (or plist) for this vault and this Python, with absolute paths."""
    if manager == "systemd":
        path = home / ".config" / "systemd" / "user" / UNIT_NAME
        return UnitFile(manager, path, render_systemd(plan))
    path = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    return UnitFile(manager, path, render_launchd(plan))


def notes(plan: InstallPlan, manager: Manager = "systemd") -> tuple[list[str], list[str]]:
    """What `service install` tells a person: facts, and warnings (for stderr)."""
    facts = [
        f"claude: {plan.claude.path} ({plan.claude.why})",
        f"PATH for the service and its agents: {plan.path}",
        f"secrets: {plan.env_file} (KEY=value lines, mode 0600; see docs/OPERATIONS.md)",
    ]
    warnings = []
    if plan.claude_needed and not plan.claude.found:
        warnings.append(
            f"warning: claude was not found ({plan.claude.path!r}: {plan.claude.why}). "
            "Runs will fail until it is: install Claude Code "
            "(npm install -g @anthropic-ai/claude-code) and run `service install` again, or "
            f"set claude_path in {plan.vault / CONFIG_FILE_NAME}"
        )
    for root in plan.missing_roots:
        warnings.append(
            f"warning: extra_roots folder {root} does not exist: the unit leaves it read-only; "
            "create it and run `service install` again"
        )
    if manager == "systemd":
        for what, where in plan.in_tmp:
            warnings.append(
                f"warning: {what} {where} is under /tmp or /var/tmp: the unit runs with "
                "PrivateTmp=yes (a /tmp of its own), where it is not; move it elsewhere and run "
                "`service install` again"
            )
    if readable_by_others(plan.env_file):
        warnings.append(
            f"warning: {plan.env_file} can be read by other users: "
            f"chmod 600 {shlex.quote(str(plan.env_file))}"
        )
    return facts, warnings


# --- the service manager ------------------------------------------------------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise UsageError(
            f"{argv[0]} is not available on this machine; use --print and install the file by hand"
        )
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL
    )


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise UsageError(f"{what} failed: {said[-1] if said else f'exit {done.returncode}'}")


def install(unit: UnitFile, plan: InstallPlan) -> list[str]:
    """Create the environment file (once), write the unit, (re)start it; what to know next."""
    created = create_env_file(plan.env_file)
    fsops.ensure_dir(plan.apps_dir)  # ReadWritePaths= needs it, and the unit cannot make it
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    fsops.write_atomic(unit.path, unit.text.encode("utf-8"), unit.path.parent)
    said = [f"created {plan.env_file} (empty, mode 0600)"] if created else []
    if unit.manager == "systemd":
        _check(_run(["systemctl", "--user", "daemon-reload"]), "systemctl --user daemon-reload")
        _check(
            _run(["systemctl", "--user", "enable", UNIT_NAME]),
            f"systemctl --user enable {UNIT_NAME}",
        )
        # restart, not `enable --now`: a service already running must take the new unit.
        _check(
            _run(["systemctl", "--user", "restart", UNIT_NAME]),
            f"systemctl --user restart {UNIT_NAME}",
        )
        user = os.environ.get("USER", "$USER")
        return [
            *said,
            f"installed {unit.path} and started {UNIT_NAME}",
            f"to keep it running without a login session: loginctl enable-linger {user}",
            f"logs: journalctl --user -u {UNIT_NAME} -f   (or: ai-employee logs --follow)",
        ]
    domain = f"gui/{os.getuid()}"
    _run(["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"])  # a previous copy, if loaded
    _check(
        _run(["launchctl", "bootstrap", domain, str(unit.path)]), f"launchctl bootstrap {domain}"
    )
    return [
        *said,
        f"installed {unit.path} and loaded {LAUNCHD_LABEL}",
        f"logs: {plan.log_file}   (or: ai-employee logs --follow)",
    ]


def uninstall(unit: UnitFile) -> list[str]:
    """Stop and remove the unit; the vault and the environment file are left alone."""
    if unit.manager == "systemd":
        _run(["systemctl", "--user", "disable", "--now", UNIT_NAME])
        unit.path.unlink(missing_ok=True)
        _check(_run(["systemctl", "--user", "daemon-reload"]), "systemctl --user daemon-reload")
    else:
        _run(["launchctl", "bootout", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"])
        unit.path.unlink(missing_ok=True)
    return [f"removed {unit.path}; the vault was not touched"]


def manager_status(unit: UnitFile) -> str:
    """What the service manager says of the unit, with the command that asked it."""
    installed = f"unit: {unit.path}" + ("" if unit.path.exists() else " (not installed)")
    if unit.manager == "systemd":
        argv = ["systemctl", "--user", "status", UNIT_NAME, "--no-pager", "--lines", "5"]
    else:
        argv = ["launchctl", "print", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"]
    try:
        done = _run(argv)
    except UsageError as err:
        return f"{installed}\n{err}"
    said = (done.stdout or done.stderr).rstrip() or f"(exit {done.returncode}, nothing said)"
    return "\n".join([installed, f"$ {shlex.join(argv)}", said])
