"""The service's environment file: secrets such as ANTHROPIC_API_KEY, kept out of the unit.

systemd reads it itself (`EnvironmentFile=`); launchd has no such setting, so its agent runs
`ai-employee run --env-file PATH` and this module reads the same file. The format is the common
part of both: `KEY=value` lines, `#` or `;` comments, blank lines, and a value that may be wrapped
in double quotes (with `\\"`, `\\\\`, `\\$` and `` \\` `` inside) or single quotes (taken as
written). Nothing is expanded. A line that is none of these, or that systemd would read
differently, is an error naming the file and the line.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..base.errors import ConfigError

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

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANKS = " \t"
_LINE_END = re.compile(r"\r\n|[\r\n]")
_DOUBLE_QUOTED_ESCAPES = frozenset('"\\$`')
"""What a backslash may escape inside double quotes (systemd drops the backslash there too)."""


def env_file_path(environ: dict[str, str] | os._Environ[str], home: Path) -> Path:
    """Where the service's environment file lives: `$XDG_CONFIG_HOME/ai-employee/service.env`.

    Outside the vault on purpose: a vault is often synced, and secrets must not travel with it.
    """
    config_home = environ.get("XDG_CONFIG_HOME") or ""
    base = Path(config_home) if os.path.isabs(config_home) else home / ".config"
    return base / "ai-employee" / "service.env"


def parse_env_text(text: str, source: str) -> dict[str, str]:
    """The assignments of an environment file's text, in order; one clear error for a bad line.

    Only what systemd's EnvironmentFile= reads the same way is accepted (tested against
    systemd's own parser): anything it would read differently (a backslash outside quotes, a
    line continuation, text after a closing quote, control characters) is an error here, so
    one file means the same under systemd and launchd.
    """
    values: dict[str, str] = {}
    # systemd ends a line at \r as at \n (so a file with Windows line ends reads the same).
    for number, line in enumerate(_LINE_END.split(text), start=1):
        where = f"{source}:{number}"
        body = line.strip(_BLANKS)
        if not body or body[0] in "#;":
            continue
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in body):
            raise ConfigError(f"{where}: a control character in {body!r}")
        key, equals, raw = body.partition("=")
        key = key.rstrip(_BLANKS)
        if not equals or not _KEY.fullmatch(key):
            raise ConfigError(f"{where}: expected KEY=value, found {body!r}")
        values[key] = _value(raw.lstrip(_BLANKS), where)
    return values


def _value(raw: str, where: str) -> str:
    quote = raw[:1]
    if quote not in ("'", '"'):
        if any(c in raw for c in "\\'\""):
            raise ConfigError(
                f"{where}: systemd reads a backslash or a quote in {raw!r} differently; "
                'write the value in double quotes, with \\\\ for a backslash and \\" for a quote'
            )
        return raw
    if len(raw) < 2 or raw[-1] != quote:
        if quote in raw[1:]:
            raise ConfigError(f"{where}: text after the closing quote in {raw!r}")
        raise ConfigError(f"{where}: the quote that opens {raw!r} is never closed")
    inner = raw[1:-1]
    if quote == "'":
        if "'" in inner or "\\" in inner:
            raise ConfigError(
                f"{where}: a ' or a \\ cannot be written in single quotes; use double quotes"
            )
        return inner
    out, i = [], 0
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            if i + 1 >= len(inner) or inner[i + 1] not in _DOUBLE_QUOTED_ESCAPES:
                raise ConfigError(
                    f'{where}: in double quotes a backslash may only escape \\ " $ or `'
                )
            out.append(inner[i + 1])
            i += 2
            continue
        if c == '"':
            raise ConfigError(f"{where}: a double quote inside a quoted value needs \\")
        out.append(c)
        i += 1
    return "".join(out)


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
