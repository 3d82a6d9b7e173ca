"""The agent contract's command lines: split like a shell would, placeholders checked, then
replaced inside each element (never re-split), and the environment given to what runs.

One rule for `agent_command` (agents/command.py) and the notification hooks (notify.py):
config.py checks every such key with `split` when it loads, so a line that cannot be split or
names an unknown placeholder is a configuration error, not a failure at the first run.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

PLACEHOLDERS = ("{prompt_file}", "{task_file}", "{workdir}", "{task_id}")
"""What may stand in an element of the command line, replaced by its value when it runs."""

_PLACEHOLDER = re.compile(r"(?<!\$)\{[a-z_][a-z0-9_]*\}")
"""What looks like a placeholder: `{name}`, but not a shell's `${name}` inside `sh -c '...'`."""


def split(command: str) -> list[str]:
    """The command line as argv, or ValueError saying why not (its quoting, or a placeholder
    that is not one of PLACEHOLDERS, such as a `{title}` that would stay as written)."""
    try:
        argv = shlex.split(command)
    except ValueError as err:
        raise ValueError(f"cannot be split: {err}") from err
    unknown = sorted(
        {m for element in argv for m in _PLACEHOLDER.findall(element)} - set(PLACEHOLDERS)
    )
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join(unknown)} (known: {', '.join(PLACEHOLDERS)})"
        )
    return argv


def values(
    prompt_file: Path | str, task_file: Path | str, workdir: Path | str, task_id: str
) -> dict[str, str]:
    """The placeholders' values (an unknown one is the empty string)."""
    return {
        "{prompt_file}": str(prompt_file),
        "{task_file}": str(task_file),
        "{workdir}": str(workdir),
        "{task_id}": task_id,
    }


def substitute(template: Sequence[str], placeholders: Mapping[str, str]) -> list[str]:
    """Each placeholder replaced inside each element; never re-split: data stays data."""
    out = []
    for element in template:
        for placeholder, value in placeholders.items():
            element = element.replace(placeholder, value)
        out.append(element)
    return out


def contract_env(
    task_id: str,
    task_file: Path,
    vault: Path,
    base: Mapping[str, str] | None = None,
    allowed: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """The service's environment, minus CLAUDECODE, plus the AI_EMPLOYEE_TASK_* variables;
    with `allowed` (names, and `PREFIX_*` patterns), only the names it allows."""
    env = dict(os.environ if base is None else base)
    if allowed is not None:
        env = {name: value for name, value in env.items() if env_allows(allowed, name)}
    env.pop("CLAUDECODE", None)
    env["AI_EMPLOYEE_TASK_ID"] = task_id
    env["AI_EMPLOYEE_TASK_FILE"] = str(task_file)
    env["AI_EMPLOYEE_VAULT"] = str(vault)
    return env


AGENT_ENV_BASE: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ", "LANG", "LANGUAGE",
    "LC_*", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy",
    "https_proxy", "no_proxy", "all_proxy",
)  # fmt: skip
"""What every agent and check gets of the service's environment (`agent_env` adds names)."""

AGENT_ENV_CLAUDE: tuple[str, ...] = (
    "ANTHROPIC_*", "CLAUDE_CODE_*", "CLAUDE_CONFIG_DIR", "API_TIMEOUT_MS", "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING", "MAX_THINKING_TOKENS",
)  # fmt: skip
"""... and Claude's CLI (also through its ACP adapter: `agent = "acp"`) its keys and settings."""


def env_allows(allowed: tuple[str, ...], name: str) -> bool:
    """Whether `allowed` (names, and `PREFIX_*` patterns) lets `name` through."""
    return any(
        name == rule or (rule.endswith("*") and name.startswith(rule[:-1])) for rule in allowed
    )
