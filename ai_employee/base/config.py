"""Configuration: flag > env `AI_EMPLOYEE_<KEY>` > `<vault>/.ai-employee.toml` > default.

The whole table lives in `KEYS`: each key's kind, default and meaning. Everything else (the env
names, the commented defaults file written by `init`, the docs table) is derived from it, so a key
cannot be documented in one place and parsed differently in another.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import commandline
from .errors import ConfigError

Kind = Literal["str", "int", "float", "bool", "list", "path", "choice", "executable", "command"]
"""How a key's value is parsed; "command" is a string that must split into a command line with
only the agent contract's placeholders (commandline.split), or be empty."""

CONFIG_FILE_NAME = ".ai-employee.toml"
"""The configuration file's name inside the vault."""

ENV_PREFIX = "AI_EMPLOYEE_"
"""Environment variables naming a configuration key start with this."""

DEFAULT_VAULT = Path("vault")
"""The vault when neither `--vault` nor AI_EMPLOYEE_VAULT names one: ./vault."""


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: how to parse it, its default, and what it means (for the docs)."""

    name: str
    kind: Kind
    default: Any
    meaning: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


KEYS: tuple[KeySpec, ...] = (
    KeySpec("apps_dir", "path", "../apps", "where work dirs live (relative: to the vault)"),
    KeySpec("extra_roots", "list", [], "other folders a task's work dir may be in"),
    KeySpec(
        "auto_execute_types",
        "list",
        ["claude_app", "claude_task", "claude_code"],
        "types that run without a person's approval",
    ),
    KeySpec("default_type", "str", "claude_task", "type of a note that names none"),
    KeySpec("max_parallel", "int", 1, "agent runs at once", minimum=1),
    KeySpec(
        "settle_seconds",
        "float",
        2.0,
        "quiet time before reading a note written in place",
        minimum=0,
    ),
    KeySpec("sweep_seconds", "float", 60.0, "safety reconcile interval", minimum=1),
    KeySpec("polling", "bool", False, "polling observer (network folders, WSL)"),
    KeySpec("max_note_bytes", "int", 1_048_576, "larger notes are refused", minimum=64),
    KeySpec(
        "planner", "choice", "template", "how plans are written", choices=("template", "claude")
    ),
    KeySpec(
        "agent", "choice", "claude", "which agent runs tasks", choices=("claude", "command", "acp")
    ),
    KeySpec(
        "agent_command", "command", "", "the command line for agent = command (docs/AGENTS.md)"
    ),
    KeySpec(
        "acp_command",
        "command",
        "",
        "the ACP agent's command line for agent = acp (docs/AGENTS.md)",
    ),
    KeySpec(
        "acp_permission_wait_seconds",
        "float",
        300.0,
        "how long an ACP agent's permission request waits for a person's answer, the agent "
        "alive (0: refused at once; an approval then loads the session again)",
        minimum=0,
    ),
    KeySpec(
        "claude_path",
        "executable",
        "claude",
        "the claude binary: a name is looked up on PATH (then where Claude Code installs itself, "
        "and a checkout's own copy), `~` and relative paths are expanded",
    ),
    KeySpec("model", "str", "", "passed to claude as --model when set"),
    KeySpec(
        "max_commit_file_bytes",
        "int",
        10 * 1024 * 1024,
        "a file a round wrote over this size is left out of its commit (and named in the Result)",
        minimum=1,
    ),
    KeySpec(
        "merge",
        "choice",
        "branch",
        "after a person accepts a repo task's work: leave its branch to merge (`branch`), or "
        "fast-forward the branch it began from to it (`ff`), never in a checkout with changes",
        choices=("branch", "ff"),
    ),
    KeySpec(
        "permission_mode",
        "choice",
        "acceptEdits",
        "claude's --permission-mode",
        choices=(
            "acceptEdits",
            "auto",
            "bypassPermissions",
            "default",
            "dontAsk",
            "manual",
            "plan",
        ),
    ),
    KeySpec("allowed_tools", "list", [], "passed to claude as --allowedTools when set"),
    KeySpec(
        "sandbox",
        "choice",
        "none",
        "the command agent and tasks' checks in bubblewrap: they write only their work dir "
        "and a private /tmp; claude runs: Claude Code's own Bash sandbox, which needs socat "
        "too (docs/RELIABILITY.md)",
        choices=("none", "bwrap"),
    ),
    KeySpec(
        "sandbox_network",
        "bool",
        True,
        "with sandbox = bwrap: the network is on (false: none); claude runs: Claude Code's "
        "sandbox lets only the domains its own settings allow",
    ),
    KeySpec(
        "agent_env",
        "list",
        [],
        "names (or PREFIX_* patterns) of the service's environment that agents and checks get "
        "beyond PATH, HOME, the locale, proxies and certificates (claude and acp: also "
        "ANTHROPIC_* and CLAUDE_CODE_*); nothing else is passed",
    ),
    KeySpec("disallowed_tools", "list", [], "passed to claude as --disallowedTools when set"),
    KeySpec("max_turns", "int", 50, "claude --max-turns per run", minimum=1),
    KeySpec("max_budget_usd", "float", 0.0, "claude --max-budget-usd per run (0: none)", minimum=0),
    KeySpec(
        "daily_budget_usd",
        "float",
        0.0,
        "new runs wait when the day's cost reaches it (0: none)",
        minimum=0,
    ),
    KeySpec(
        "task_timeout_seconds",
        "float",
        1800.0,
        "an agent run (one round of a checked task) is stopped after this",
        minimum=1,
    ),
    KeySpec(
        "stall_seconds", "float", 300.0, "a run with no output this long is stopped", minimum=1
    ),
    KeySpec("max_attempts", "int", 3, "runs per task before Failed/", minimum=1),
    KeySpec(
        "max_rounds",
        "int",
        3,
        "agent rounds per attempt of a task with a `verify` check before it fails",
        minimum=1,
        maximum=10,
    ),
    KeySpec(
        "verify_timeout_seconds",
        "float",
        600.0,
        "a task's `verify` check is stopped (and fails) after this",
        minimum=1,
        maximum=86400,
    ),
    KeySpec("retry_initial_seconds", "float", 30.0, "first retry backoff", minimum=0),
    KeySpec("retry_max_seconds", "float", 900.0, "longest retry backoff", minimum=0),
    KeySpec(
        "shutdown_grace_seconds",
        "float",
        30.0,
        "on SIGTERM, time for running tasks to finish",
        minimum=0,
    ),
    KeySpec("log_retention_days", "int", 90, "older daily logs are removed", minimum=1),
    KeySpec(
        "dashboard_host",
        "str",
        "127.0.0.1",
        "the web page's address (any other than loopback needs the token)",
    ),
    KeySpec(
        "dashboard_port",
        "int",
        8787,
        "the web page's port (0: any free one)",
        minimum=0,
        maximum=65535,
    ),
    KeySpec(
        "on_pending_approval",
        "command",
        "",
        "notification hook: a task waits in Pending_Approval/ for a person (a command line "
        "with the agent contract's placeholders, run without a shell; docs/OPERATIONS.md)",
    ),
    KeySpec("on_done", "command", "", "notification hook: a task's run ended done"),
    KeySpec("on_failed", "command", "", "notification hook: a task failed (it is in Failed/)"),
    KeySpec(
        "on_needs_attention",
        "command",
        "",
        "notification hook: a note was refused, a copy is held, a task failed, the agent "
        "asked for a tool, or a usage limit paused the claude runs",
    ),
    KeySpec(
        "hook_timeout_seconds",
        "float",
        30.0,
        "a notification hook still running after this is stopped",
        minimum=1,
    ),
)
KEYS_BY_NAME: Mapping[str, KeySpec] = {spec.name: spec for spec in KEYS}

TYPE_OVERRIDE_KEYS: Mapping[str, KeySpec] = {
    "permission_mode": KEYS_BY_NAME["permission_mode"],
    "allowed_tools": KEYS_BY_NAME["allowed_tools"],
    "disallowed_tools": KEYS_BY_NAME["disallowed_tools"],
    "task_timeout_seconds": KEYS_BY_NAME["task_timeout_seconds"],
    "requires_approval": KeySpec("requires_approval", "bool", False, "always ask a person first"),
    "verify": KeySpec(
        "verify",
        "command",
        "",
        "the check of this type's work: a command line run in the work dir after each round",
    ),
    "verify_timeout_seconds": KEYS_BY_NAME["verify_timeout_seconds"],
    "max_rounds": KEYS_BY_NAME["max_rounds"],
    "review": KeySpec(
        "review",
        "bool",
        False,
        "a person reviews this type's work before it is done (a note's `review:` wins; a "
        "task with `repo:` is reviewed unless its note or its type says no)",
    ),
    "merge": KEYS_BY_NAME["merge"],
    "agent": KEYS_BY_NAME["agent"],
    "acp_command": KEYS_BY_NAME["acp_command"],
}
"""Keys a `[types.NAME]` table may set for one task type."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class TypeConfig:
    """Per-type overrides from `[types.NAME]`; None means "use the global value"."""

    permission_mode: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] | None = None
    task_timeout_seconds: float | None = None
    requires_approval: bool = False
    verify: str | None = None
    verify_timeout_seconds: float | None = None
    max_rounds: int | None = None
    review: bool | None = None
    merge: str | None = None
    agent: str | None = None
    """Which agent runs this type's tasks (claude, command, acp), else the global `agent`."""
    acp_command: str | None = None
    """... and with `acp`, which ACP agent, else the global `acp_command`."""


@dataclass(frozen=True)
class Config:
    """The resolved configuration. `sources` says where each value came from."""

    vault: Path
    apps_dir: Path
    extra_roots: tuple[Path, ...]
    auto_execute_types: tuple[str, ...]
    default_type: str
    max_parallel: int
    settle_seconds: float
    sweep_seconds: float
    polling: bool
    max_note_bytes: int
    planner: str
    agent: str
    agent_command: str
    acp_command: str
    acp_permission_wait_seconds: float
    claude_path: str
    model: str
    max_commit_file_bytes: int
    merge: str
    permission_mode: str
    allowed_tools: tuple[str, ...]
    agent_env: tuple[str, ...]
    sandbox: str
    sandbox_network: bool
    disallowed_tools: tuple[str, ...]
    max_turns: int
    max_budget_usd: float
    daily_budget_usd: float
    task_timeout_seconds: float
    stall_seconds: float
    max_attempts: int
    max_rounds: int
    verify_timeout_seconds: float
    retry_initial_seconds: float
    retry_max_seconds: float
    shutdown_grace_seconds: float
    log_retention_days: int
    dashboard_host: str
    dashboard_port: int
    on_pending_approval: str
    on_done: str
    on_failed: str
    on_needs_attention: str
    hook_timeout_seconds: float
    types: Mapping[str, TypeConfig] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Folders a task's work dir may be in."""
        return (self.apps_dir, *self.extra_roots)

    def for_type(self, task_type: str) -> TypeConfig:
        return self.types.get(task_type, TypeConfig())

    def requires_approval(self, task_type: str) -> bool:
        """True when a task of this type may only run after a person approved it."""
        return (
            task_type not in self.auto_execute_types or self.for_type(task_type).requires_approval
        )

    def review_for(self, task_type: str, asked: bool | None, on_repo: bool = False) -> bool:
        """Whether a person reviews a task's work before it is done: its note's `review:`
        (`asked`) when it says, else its type's, else yes for a task on a person's repository
        (`on_repo`), no otherwise."""
        if asked is not None:
            return asked
        by_type = self.for_type(task_type).review
        return on_repo if by_type is None else by_type

    def merge_for(self, task_type: str) -> str:
        """After an accepted review of a repo task: `branch` (left to merge) or `ff`."""
        return self.for_type(task_type).merge or self.merge

    def timeout_for(self, task_type: str) -> float:
        override = self.for_type(task_type).task_timeout_seconds
        return self.task_timeout_seconds if override is None else override


def env_name(key: str) -> str:
    """The environment variable for a configuration key."""
    return ENV_PREFIX + key.upper()


def resolve_vault(flag: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The vault path by precedence flag > AI_EMPLOYEE_VAULT > ./vault, made absolute."""
    raw: str | os.PathLike[str] = flag or env.get(env_name("vault")) or DEFAULT_VAULT
    return Path(raw).expanduser().absolute()


def load_config(
    vault_flag: str | os.PathLike[str] | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Read the configuration for a vault by the precedence flag > env > file > default."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    vault = resolve_vault(vault_flag, env)
    file_values, file_types = _read_file(vault / CONFIG_FILE_NAME)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {
        "vault": "flag --vault"
        if vault_flag
        else ("env " + env_name("vault") if env.get(env_name("vault")) else "default")
    }
    for spec in KEYS:
        source = f"{vault / CONFIG_FILE_NAME}"
        if flags and flags.get(spec.name) is not None:
            raw, source, base = flags[spec.name], f"flag --{spec.name.replace('_', '-')}", cwd
        elif env_name(spec.name) in env:
            raw, source, base = env[env_name(spec.name)], f"env {env_name(spec.name)}", cwd
        elif spec.name in file_values:
            raw, base = file_values[spec.name], vault
        else:
            raw, source, base = spec.default, "default", vault
        values[spec.name] = parse_value(spec, raw, source, base)
        sources[spec.name] = source
    types = {
        name: _parse_type_table(name, table, vault / CONFIG_FILE_NAME)
        for name, table in file_types.items()
    }
    _check_acp(values, types)
    return Config(vault=vault, types=types, sources=sources, **values)


def claude_places() -> list[Path]:
    """Where `claude_path = "claude"` is looked for when PATH has none (a service started by
    systemd or launchd gets a short PATH), in this order: Claude Code's own installs (its native
    installer's ~/.local/bin/claude, the older ~/.claude/local/claude), then the copy
    scripts/setup.sh installs in a checkout of this project (what scripts/run.sh runs)."""
    places = [Path("~/.local/bin/claude").expanduser(), Path("~/.claude/local/claude").expanduser()]
    checkout = Path(__file__).resolve().parents[2]  # base/, ai_employee/, then the checkout
    if (checkout / "scripts" / "setup.sh").is_file():  # not an installed package's folder
        sdk = checkout / ".cache" / "claude-agent-sdk"  # the claude-agent-sdk wheel's CLI
        places.append(sdk / "claude_agent_sdk" / "_bundled" / "claude")
    return places


def find_claude(name: str, base: Path) -> str:
    """claude_path as a program: as `resolve_executable` finds it, or, for the plain name
    `claude` when PATH has none, the first of `claude_places` that is there."""
    found = resolve_executable(name, base)
    if os.path.isabs(found) or name != "claude":
        return found
    for place in claude_places():
        if place.is_file() and os.access(place, os.X_OK):
            return str(place)
    return found


def resolve_executable(name: str, base: Path) -> str:
    """An absolute path for a program: `~` expanded, a path with a `/` taken against `base` (the
    vault for the file, the working directory for env and flags), a bare name looked up on PATH.
    A name PATH does not have stays as given, so the error that follows can show it."""
    expanded = os.path.expanduser(name)
    if os.sep in expanded:
        return os.path.normpath(expanded if os.path.isabs(expanded) else base / expanded)
    return shutil.which(expanded) or expanded


def parse_value(spec: KeySpec, raw: Any, source: str, base: Path) -> Any:
    """Turn a raw value (a TOML value or an env string) into the key's type, or say why not."""
    from_env = isinstance(raw, str) and not source.endswith(CONFIG_FILE_NAME)
    parse = _PARSERS.get(spec.kind, _parse_text)
    try:
        return parse(spec, raw, base, from_env)
    except _Invalid as err:
        raise ConfigError(f"{spec.name} = {raw!r} from {source}: {err}") from err


class _Invalid(Exception):
    """A raw value its key cannot take; the message says why (parse_value names the rest)."""


def _parse_bool(spec: KeySpec, raw: Any, base: Path, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise _Invalid("expected true or false")


def _parse_number(spec: KeySpec, raw: Any, base: Path, from_env: bool) -> float:
    value: float
    try:
        if isinstance(raw, bool):
            raise ValueError
        if spec.kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(raw if not isinstance(raw, str) else raw.strip())
        else:
            value = float(raw if not isinstance(raw, str) else raw.strip())
    except (TypeError, ValueError) as err:
        raise _Invalid(
            f"expected {'a whole number' if spec.kind == 'int' else 'a number'}"
        ) from err
    if value != value or value in (float("inf"), float("-inf")):
        raise _Invalid("expected a finite number")
    if spec.minimum is not None and value < spec.minimum:
        raise _Invalid(f"must be at least {spec.minimum:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise _Invalid(f"must be at most {spec.maximum:g}")
    return value


def _parse_list(spec: KeySpec, raw: Any, base: Path, from_env: bool) -> tuple[Any, ...]:
    if from_env or isinstance(raw, str):
        items = [part.strip() for part in str(raw).split(",") if part.strip()]
    elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        items = list(raw)
    else:
        raise _Invalid("expected a list of strings")
    if spec.name == "extra_roots":
        return tuple(_as_path(item, base) for item in items)
    return tuple(items)


def _parse_text(spec: KeySpec, raw: Any, base: Path, from_env: bool) -> Any:
    """A string, a choice, a path, a program or a command line."""
    if not isinstance(raw, str):
        raise _Invalid("expected a string")
    if spec.kind == "choice" and raw not in spec.choices:
        raise _Invalid("expected one of " + ", ".join(spec.choices))
    if spec.kind == "path":
        if not raw.strip():
            raise _Invalid("expected a path")
        return _as_path(raw, base)
    if spec.kind == "executable":
        if not raw.strip():
            raise _Invalid("expected a program name or path")
        return (
            find_claude(raw, base) if spec.name == "claude_path" else resolve_executable(raw, base)
        )
    if spec.kind == "command":
        try:
            commandline.split(raw)
        except ValueError as err:
            raise _Invalid(str(err)) from err
    return raw


_PARSERS: dict[str, Callable[[KeySpec, Any, Path, bool], Any]] = {
    "bool": _parse_bool,
    "int": _parse_number,
    "float": _parse_number,
    "list": _parse_list,
}
"""How each kind of key is read (the rest are text: `_parse_text`)."""


def _as_path(raw: str, base: Path) -> Path:
    path = Path(raw).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}, {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the configuration file: {err}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    types = data.pop("types", {})
    if not isinstance(types, dict) or not all(isinstance(t, dict) for t in types.values()):
        raise ConfigError(f"types = {types!r} from {path}: expected [types.NAME] tables")
    for key in data:
        if key not in KEYS_BY_NAME:
            hint = (
                " (the vault is chosen by --vault or AI_EMPLOYEE_VAULT)" if key == "vault" else ""
            )
            raise ConfigError(f"{key} = {data[key]!r} from {path}: unknown key{hint}")
    return data, types


def _check_acp(values: Mapping[str, Any], types: Mapping[str, TypeConfig]) -> None:
    """`agent = "acp"` (or a type's) needs an ACP agent's command line: said at load."""
    for name, per_type in [("", None), *types.items()]:
        agent = (per_type.agent if per_type else None) or values["agent"]
        own = per_type.acp_command if per_type else None
        command = own if own is not None else values["acp_command"]
        if agent == "acp" and not command:
            where = f"types.{name}." if name else ""
            raise ConfigError(
                f'{where}agent = "acp" needs acp_command, the ACP agent\'s command line, e.g. '
                'acp_command = "npx @zed-industries/claude-agent-acp" (docs/AGENTS.md)'
            )


def _parse_type_table(name: str, table: Mapping[str, Any], path: Path) -> TypeConfig:
    values: dict[str, Any] = {}
    for key, raw in table.items():
        spec = TYPE_OVERRIDE_KEYS.get(key)
        if spec is None:
            raise ConfigError(
                f"types.{name}.{key} = {raw!r} from {path}: unknown key "
                f"(allowed: {', '.join(TYPE_OVERRIDE_KEYS)})"
            )
        values[key] = parse_value(
            KeySpec(
                f"types.{name}.{key}",
                spec.kind,
                spec.default,
                spec.meaning,
                spec.choices,
                spec.minimum,
                spec.maximum,
            ),
            raw,
            str(path),
            path.parent,
        )
    return TypeConfig(**values)


def default_config_text() -> str:
    """The commented `.ai-employee.toml` that `init` writes: every key at its default."""
    lines = [
        "# ai-employee configuration. Every key is optional; the values shown are the defaults.",
        "# Precedence: command-line flag > environment AI_EMPLOYEE_<KEY> > this file > default.",
        "# Relative paths here resolve against the vault folder.",
        "",
    ]
    for spec in KEYS:
        lines.append(
            f"# {spec.meaning}" + (f" ({' | '.join(spec.choices)})" if spec.choices else "")
        )
        lines.append(f"# {spec.name} = {_toml_value(spec.default)}")
        lines.append("")
    lines += [
        "# Per-type overrides. requires_approval = true makes a type wait for a person.",
        "# [types.git_push]",
        '# permission_mode = "acceptEdits"',
        '# allowed_tools = ["Bash(git push:*)"]',
        "# requires_approval = true",
        "# A check every task of a type must pass before it is done (a note's verify wins):",
        "# [types.claude_app]",
        '# verify = "python3 -m pytest -q"',
        "# max_rounds = 3",
        "",
    ]
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return repr(value)


def markdown_table() -> str:
    """The keys as a markdown table for docs/CONFIGURATION.md (a test keeps the doc in sync)."""
    rows = ["| key | env | default | meaning |", "|---|---|---|---|"]
    for spec in KEYS:
        choices = f" ({' | '.join(spec.choices)})" if spec.choices else ""
        default = _toml_value(spec.default)
        rows.append(
            f"| `{spec.name}` | `{env_name(spec.name)}` | `{default}` | {spec.meaning}{choices} |"
        )
    return "\n".join(rows)
