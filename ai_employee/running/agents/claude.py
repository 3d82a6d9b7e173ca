"""`agent = "claude"`: Claude Code in headless mode, judged by its own final `result` message.

argv, never a shell: `claude -p --output-format stream-json --verbose` (stream-json needs
--verbose under -p), the prompt on stdin from the prompt file (an open pipe would hang -p), an
explicit `--permission-mode` (without it -p denies every tool call), tools, turns, budget, model,
the handbook as `--append-system-prompt`, `--add-dir` per extra root, and the session: a fresh
`--session-id <uuid>` per fresh attempt, `--resume <uuid>` to continue an interrupted one.
See docs/research/claude-code-cli.md for what the CLI prints in each case.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...base.config import Config
from ..usage_limit import MIN_PAUSE, limit_name, parse_limit_message, reset_from_event
from .base import Outcome, OutcomeKind, RunSpec, RunState
from .permissions import asks_from

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""API statuses worth another attempt later (rate limits, overload, server errors)."""


def not_logged_in(claude_path: str) -> str:
    """The error of a run whose claude is not logged in, naming the claude the service runs."""
    return (
        f"Claude Code is not logged in: run `{shlex.quote(claude_path)}` once and log in "
        "(/login), or set ANTHROPIC_API_KEY for the service"
    )


_PERMANENT_STDERR = (
    ("is already in use", "the session id is already in use (a second run of one attempt?)"),
    ("unknown option", "claude rejected its command line"),
    ("cannot be used with root", "bypassPermissions is refused when running as root"),
    ("Invalid session ID", "claude rejected the session id"),
)


def claude_sandbox(network: bool) -> dict[str, object]:
    """Claude Code's own sandbox for its Bash tool (`sandbox = "bwrap"`; it runs bubblewrap on
    Linux): each command writes only the work dir (and the extra roots) and its temporary
    folder; a command that fails in the sandbox is never run again outside it, and the CLI
    refuses to start where it cannot make a sandbox (Linux: bubblewrap and socat). `network`
    false: no host is allowed (Claude's own calls to its API are not the Bash tool's)."""
    sandbox: dict[str, object] = {
        "enabled": True,
        "allowUnsandboxedCommands": False,
        "failIfUnavailable": True,
    }
    if not network:
        sandbox["network"] = {"allowedDomains": []}
    return {"sandbox": sandbox}


class ClaudeAgent:
    """Runs Claude Code; success, transient and permanent failures told apart."""

    name = "claude"
    uses_sessions = True
    reads_prompt = True  # on stdin

    def __init__(self, config: Config, now: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.now = now or (lambda: datetime.now(UTC))

    def argv(self, spec: RunSpec) -> list[str]:
        config = self.config
        per_type = config.for_type(spec.task_type)
        mode = per_type.permission_mode or config.permission_mode
        allowed = (
            per_type.allowed_tools if per_type.allowed_tools is not None else config.allowed_tools
        )
        disallowed = (
            per_type.disallowed_tools
            if per_type.disallowed_tools is not None
            else config.disallowed_tools
        )
        argv = [
            config.claude_path,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            mode,
            "--max-turns",
            str(config.max_turns),
        ]
        # One flag per rule: a granted `Bash(...)` rule may hold commas and spaces.
        for rule in (*(allowed or ()), *spec.allowed_tools):
            argv += ["--allowedTools", rule]
        for rule in disallowed or ():
            argv += ["--disallowedTools", rule]
        if config.max_budget_usd > 0:
            argv += ["--max-budget-usd", f"{config.max_budget_usd:g}"]
        if config.model:
            argv += ["--model", config.model]
        if spec.handbook.strip():
            argv += ["--append-system-prompt", spec.handbook.strip()]
        for root in config.extra_roots:
            argv += ["--add-dir", str(root)]
        if config.sandbox == "bwrap":
            argv += ["--settings", json.dumps(claude_sandbox(config.sandbox_network))]
        if spec.session_id:
            argv += ["--resume" if spec.resume else "--session-id", spec.session_id]
        return argv

    def stdin(self, spec: RunSpec) -> Path | None:
        return spec.prompt_file

    def prompt_header(self, spec: RunSpec) -> str:
        return ""  # the handbook goes in --append-system-prompt, never in the prompt too

    def on_line(self, line: str, state: RunState) -> dict[str, Any] | None:
        try:
            message = json.loads(line)
        except ValueError:
            state.keep(line)  # stderr text (merged) or noise: kept for the error message
            return None
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind == "result":
            state.data["result"] = message
            return None
        if kind == "rate_limit_event":
            return _usage_limit_seen(message.get("rate_limit_info"), state)
        if kind == "assistant":
            return _assistant_said(message, state)
        if kind == "system":
            return _system_said(message, state)
        return None

    def finish(self, exit_code: int, state: RunState) -> Outcome:
        result = state.data.get("result")
        if not isinstance(result, dict):
            return self._no_result(exit_code, state)
        cost = result.get("total_cost_usd")
        turns = result.get("num_turns")
        session = result.get("session_id") or state.data.get("session_id")
        text = result.get("result")
        if not isinstance(text, str):
            text = "; ".join(str(e) for e in result.get("errors") or []) or "\n".join(state.tail)
        common: dict[str, Any] = {
            "exit_code": exit_code,
            "cost_usd": float(cost) if isinstance(cost, int | float) else None,
            "session_id": str(session) if session else None,
            "turns": int(turns) if isinstance(turns, int) else None,
            "result": text,
        }
        asked = asks_from(result.get("permission_denials") or [])
        if not result.get("is_error") and exit_code == 0 and turns:
            if asked:
                mode = state.data.get("permission_mode") or self.config.permission_mode
                rules = ", ".join(a.rule for a in asked)
                error = f"claude asked for {rules} (permission_mode {mode}): a person decides"
                return Outcome(OutcomeKind.ASKED, error=error, asked=asked, **common)
            return Outcome(OutcomeKind.SUCCESS, **common)
        if not result.get("is_error") and not turns:
            return Outcome(OutcomeKind.TRANSIENT, error="claude ended after zero turns", **common)
        paused = self._usage_limit(result, state.data.get("limit"), text)
        if paused is not None:
            resets_at, limit = paused
            error = f"claude hit its {limit}; it resets at {resets_at:%Y-%m-%dT%H:%M:%SZ}"
            return Outcome(
                OutcomeKind.PAUSED, error=error, resets_at=resets_at, limit=limit, **common
            )
        kind, error = self._classify(result, text)
        return Outcome(kind, error=error, **common)

    def _usage_limit(
        self, result: dict[str, Any], info: object, text: str
    ) -> tuple[datetime, str] | None:
        """The reset and name of a usage limit the run hit: the `rate_limit_event` rejected
        with a `resetsAt`, else the CLI's message ("You've hit your 5-hour limit · resets
        8:13pm (UTC)") on a result that is the API's limit (429, `usage_limit_reached`), never
        the agent's own words. At least MIN_PAUSE from now. None for any other failure (a 429
        without a reset is backed off)."""
        now = self.now()
        found = None
        if isinstance(info, dict):
            resets_at = reset_from_event(info)
            if resets_at is not None:
                found = resets_at, limit_name(info.get("rateLimitType"))
        limited = result.get("api_error") == "usage_limit_reached" or (
            result.get("api_error_status") == 429
        )
        if found is None and limited:
            found = parse_limit_message(text, now)
        if found is None:
            return None
        return max(found[0], now + MIN_PAUSE), found[1]

    def _classify(self, result: dict[str, Any], text: str) -> tuple[OutcomeKind, str]:
        subtype = result.get("subtype")
        status = result.get("api_error_status")
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        if text.startswith("Not logged in"):
            return OutcomeKind.PERMANENT, not_logged_in(self.config.claude_path)
        if subtype == "error_max_turns":
            return OutcomeKind.PERMANENT, (
                f"claude reached max_turns ({self.config.max_turns}) before finishing; raise "
                "max_turns in .ai-employee.toml or split the task"
            )
        if subtype == "error_max_budget_usd":
            return OutcomeKind.PERMANENT, (
                f"claude reached max_budget_usd (${self.config.max_budget_usd:g}) for one run; "
                "raise max_budget_usd in .ai-employee.toml"
            )
        if status in (401, 403):
            return OutcomeKind.PERMANENT, (
                f"the API refused the credentials ({status}: {first_line}); check "
                f"ANTHROPIC_API_KEY or log in again with `{shlex.quote(self.config.claude_path)}`"
            )
        if status in TRANSIENT_STATUSES:
            return OutcomeKind.TRANSIENT, f"API error {status}: {first_line}"
        if "No conversation found" in text:
            return OutcomeKind.TRANSIENT, f"{first_line} (the next attempt starts a new session)"
        if isinstance(status, int) and 400 <= status < 500:
            return OutcomeKind.PERMANENT, f"API error {status}: {first_line}"
        return OutcomeKind.TRANSIENT, first_line or f"claude failed ({subtype})"

    def _no_result(self, exit_code: int, state: RunState) -> Outcome:
        said = " ".join(line.strip() for line in state.tail[-3:]).strip()
        for needle, meaning in _PERMANENT_STDERR:
            if needle in said:
                return Outcome(
                    OutcomeKind.PERMANENT,
                    error=f"{meaning}: {said[:200]}",
                    exit_code=exit_code,
                    result=said,
                )
        return Outcome(
            OutcomeKind.TRANSIENT,
            error=f"claude exited {exit_code} without a result: {said[:200] or 'no output'}",
            exit_code=exit_code,
            result=said,
        )

    def not_found(self, spec: RunSpec, error: OSError) -> Outcome:
        return Outcome(
            OutcomeKind.PERMANENT,
            error=f"claude not found at {self.config.claude_path!r} ({error.strerror}); install "
            "it (npm install -g @anthropic-ai/claude-code) or set claude_path",
        )


def _usage_limit_seen(info: object, state: RunState) -> dict[str, Any] | None:
    """Keep a `rate_limit_info` that says the limit is reached (status `rejected`, the first
    one seen); a progress record for the log when it is news."""
    if not isinstance(info, dict) or info.get("status") != "rejected" or "limit" in state.data:
        return None
    state.data["limit"] = info
    limit = limit_name(info.get("rateLimitType"))
    return {
        "result": "usage limit reached",
        "parameters": {"limit": limit, "resets_at": info.get("resetsAt")},
    }


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _assistant_said(message: dict[str, Any], state: RunState) -> dict[str, Any] | None:
    """An assistant message: a tool call is logged (the first of the message), text is kept
    for the error message, the CLI's own word about a usage limit is read."""
    params = message.get("api_error_params")  # the CLI's own message about the limit
    if isinstance(params, dict):
        _usage_limit_seen(params.get("rate_limit_info"), state)
    content = (message.get("message") or {}).get("content") or []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            state.data["tools"] = state.data.get("tools", 0) + 1
            return {
                "result": f"tool {block.get('name')}",
                "parameters": {"tool": block.get("name"), "input": _short(block.get("input"))},
            }
        if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
            state.keep(str(block["text"]))
    return None


def _system_said(message: dict[str, Any], state: RunState) -> dict[str, Any] | None:
    """A system message: the session's start, an API retry, a permission denied."""
    subtype = message.get("subtype")
    if subtype == "api_retry":
        return {
            "result": "the API asked to retry",
            "parameters": {
                "attempt": message.get("attempt"),
                "status": message.get("error_status"),
                "error": message.get("error"),
            },
        }
    if subtype == "permission_denied":
        state.data.setdefault("denied", []).append(message.get("tool_name"))
        return {"result": f"permission denied: {message.get('tool_name')}"}
    if subtype == "init":
        state.data["session_id"] = message.get("session_id")
        state.data["permission_mode"] = message.get("permissionMode")
        return {
            "result": "claude started",
            "parameters": {
                "model": message.get("model"),
                "permission_mode": message.get("permissionMode"),
                "cwd": message.get("cwd"),
            },
        }
    return None
