"""The service's environment file: secrets such as ANTHROPIC_API_KEY, kept out of the unit.

systemd reads it itself (`EnvironmentFile=`); launchd has no such setting, so its agent runs
`ai-employee run --env-file PATH` and this module reads the same file. The format is the common
part of both: `KEY=value` lines, `#` or `;` comments, blank lines, and a value that may be wrapped
in double quotes (with `\\"` and `\\\\` inside) or single quotes (taken as written). Nothing is
expanded. A line that is none of these is an error naming the file and the line.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import ConfigError

ENV_FILE_HEADER = """\
# Environment for the ai-employee service: one KEY=value per line, nothing is expanded.
# systemd reads it through EnvironmentFile=, launchd through `ai-employee run --env-file`.
# Keep it mode 0600. Secrets belong here, not in the unit, the plist or the vault (which
# sync tools copy to other machines). Restart the service after editing it.
#
# ANTHROPIC_API_KEY=sk-ant-...
# CLAUDE_CODE_OAUTH_TOKEN=...
"""
"""What `service install` writes into a new environment file: comments only, no setting."""

_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")


def env_file_path(environ: dict[str, str] | os._Environ[str], home: Path) -> Path:
    """Where the service's environment file lives: `$XDG_CONFIG_HOME/ai-employee/service.env`.

    Outside the vault on purpose: a vault is often synced, and secrets must not travel with it.
    """
    config_home = environ.get("XDG_CONFIG_HOME") or ""
    base = Path(config_home) if os.path.isabs(config_home) else home / ".config"
    return base / "ai-employee" / "service.env"


def parse_env_text(text: str, source: str) -> dict[str, str]:
    """The assignments of an environment file's text, in order; one clear error for a bad line."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{source}:{number}: expected KEY=value, found {line.strip()!r}")
        values[match["key"]] = _unquote(match["value"], f"{source}:{number}")
    return values


def _unquote(value: str, where: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner) and inner[i + 1] in '"\\':
                out.append(inner[i + 1])
                i += 2
                continue
            if inner[i] == '"':
                raise ConfigError(f"{where}: a double quote inside a quoted value needs \\")
            out.append(inner[i])
            i += 1
        return "".join(out)
    if value[:1] in ("'", '"'):
        raise ConfigError(f"{where}: the quote that opens {value!r} is never closed")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """The file's assignments; a missing file is no assignment (systemd's `-` prefix)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the environment file: {err}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: the environment file is not UTF-8 text") from err
    return parse_env_text(text, str(path))


def readable_by_others(path: Path) -> bool:
    """True when the group or others may read the file (a secret should be 0600)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def create_env_file(path: Path) -> bool:
    """Create the file with mode 0600 holding only the header; never touch an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(ENV_FILE_HEADER)
    return True
