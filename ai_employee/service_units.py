"""`ai-employee service install|uninstall|status`: a systemd user unit or a launchd agent.

The templates live in the repository's `service/` folder; this module fills them in with absolute
paths (service managers start programs with a bare PATH) and asks the manager to load them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Literal
from xml.sax.saxutils import escape

from .config import Config
from .errors import UsageError

Manager = Literal["systemd", "launchd"]
UNIT_NAME = "ai-employee.service"
LAUNCHD_LABEL = "com.ai-employee.agent"
TEMPLATES = Path(__file__).resolve().parent.parent / "service"


def default_manager() -> Manager:
    return "launchd" if sys.platform == "darwin" else "systemd"


@dataclass(frozen=True)
class UnitFile:
    manager: Manager
    path: Path
    text: str


def _systemd_quote(value: str) -> str:
    """A value for a unit file: %-escaped, double-quoted when it has spaces or quotes."""
    value = value.replace("%", "%%")
    if any(c in value for c in " \"\\'") or not value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def render(config: Config, manager: Manager, home: Path | None = None) -> UnitFile:
    """The unit (or plist) for this vault and this Python, with absolute paths."""
    home = home or Path.home()
    python = sys.executable
    vault = str(config.vault)
    claude = config.claude_path
    claude_dir = str(Path(claude).parent) if os.sep in claude else ""
    path_dirs = [
        d for d in (str(Path(python).parent), claude_dir, "/usr/local/bin", "/usr/bin", "/bin") if d
    ]
    path = ":".join(dict.fromkeys(path_dirs))
    grace = int(config.shutdown_grace_seconds)
    if manager == "systemd":
        template = Template((TEMPLATES / "ai-employee.service.in").read_text())
        rw = [
            vault,
            str(config.apps_dir),
            *(str(r) for r in config.extra_roots),
            f"-{home / '.claude'}",
            f"-{home / '.claude.json'}",
            f"-{home / '.config'}",
        ]
        text = template.substitute(
            vault_display=vault.replace("%", "%%"),
            doc_url=_systemd_quote(f"file://{TEMPLATES.parent / 'docs' / 'OPERATIONS.md'}"),
            exec_start=" ".join(
                _systemd_quote(a) for a in (python, "-m", "ai_employee", "run", "--vault", vault)
            ),
            workdir=_systemd_quote(vault),
            env_vault=_systemd_quote(f"AI_EMPLOYEE_VAULT={vault}"),
            env_claude=_systemd_quote(f"AI_EMPLOYEE_CLAUDE_PATH={claude}"),
            env_path=_systemd_quote(f"PATH={path}"),
            timeout_stop=f"{grace + 30}s",
            rw_paths=" ".join(_systemd_quote(p) for p in rw),
        )
        return UnitFile(manager, home / ".config" / "systemd" / "user" / UNIT_NAME, text)
    template = Template((TEMPLATES / "com.ai-employee.agent.plist.in").read_text())
    text = template.substitute(
        label=LAUNCHD_LABEL,
        python=escape(python),
        vault=escape(vault),
        workdir=escape(vault),
        path=escape(path),
        claude=escape(claude),
        exit_timeout=grace + 30,
        log_file=escape(str(home / "Library" / "Logs" / "ai-employee.log")),
    )
    return UnitFile(manager, home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist", text)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise UsageError(
            f"{argv[0]} is not available on this machine; use --print and install the file by hand"
        )
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise UsageError(f"{what} failed: {said[-1] if said else f'exit {done.returncode}'}")


def install(unit: UnitFile) -> list[str]:
    """Write the unit, enable and start it; returns what a person should know next."""
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    unit.path.write_text(unit.text)
    if unit.manager == "systemd":
        _check(_run(["systemctl", "--user", "daemon-reload"]), "systemctl --user daemon-reload")
        _check(
            _run(["systemctl", "--user", "enable", "--now", UNIT_NAME]),
            f"systemctl --user enable --now {UNIT_NAME}",
        )
        user = os.environ.get("USER", "$USER")
        return [
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
        f"installed {unit.path} and loaded {LAUNCHD_LABEL}",
        "logs: ~/Library/Logs/ai-employee.log   (or: ai-employee logs --follow)",
    ]


def uninstall(unit: UnitFile) -> list[str]:
    """Stop and remove the unit; the vault is left alone."""
    if unit.manager == "systemd":
        _run(["systemctl", "--user", "disable", "--now", UNIT_NAME])
        unit.path.unlink(missing_ok=True)
        _check(_run(["systemctl", "--user", "daemon-reload"]), "systemctl --user daemon-reload")
    else:
        _run(["launchctl", "bootout", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"])
        unit.path.unlink(missing_ok=True)
    return [f"removed {unit.path}; the vault was not touched"]


def manager_status(unit: UnitFile) -> str:
    if unit.manager == "systemd":
        argv = ["systemctl", "--user", "status", UNIT_NAME, "--no-pager", "--lines", "5"]
    else:
        argv = ["launchctl", "print", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"]
    try:
        done = _run(argv)
    except UsageError as err:
        return str(err)
    head = f"$ {shlex.join(argv)}"
    return "\n".join([head, (done.stdout or done.stderr).rstrip()])
