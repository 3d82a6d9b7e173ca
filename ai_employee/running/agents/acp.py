"""`agent = "acp"`: any agent that speaks the Agent Client Protocol, through acp_bridge.py.

Each round is `python -m ai_employee.running.acp_bridge ... -- <acp_command>`: the bridge is the
ACP client (initialize, a new or loaded session, one prompt) and prints what happened as JSON
lines, which this backend reads like Claude's stream-json: the messages and tool calls into the
transcript, the session id and the session's cost onto the note, a permission request that
waits for a person (`RunState.waiting`: the run then tells the main loop, and writes the
person's answer to the bridge's stdin with `answer_line`), the requests it had to refuse as
asks (the task then waits for a person, as for Claude's denied tools), and how the turn ended as
an outcome. Tool kinds the configured `permission_mode` allows are answered at once:
`acceptEdits` allows reading and editing in the work dir, `bypassPermissions` everything,
`default` and `plan` reading only; a person's grant allows one tool call's rule (`kind(title)`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ...base import commandline
from ...base.config import Config
from ...base.errors import ConfigError
from .base import Ask, Outcome, OutcomeKind, Question, RunSpec, RunState

_READ = ("read", "search", "think")
_EDIT = (*_READ, "edit", "move")
ALLOWED_KINDS: dict[str, tuple[str, ...]] = {
    "default": _READ,
    "plan": _READ,
    "acceptEdits": _EDIT,
    "bypassPermissions": (*_EDIT, "delete", "execute", "fetch", "switch_mode", "other"),
}
"""The ACP tool kinds each permission mode answers without a person."""

STOPPED: dict[str, tuple[OutcomeKind, str]] = {
    "refusal": (OutcomeKind.PERMANENT, "the agent refused the task (stop reason: refusal)"),
    "max_tokens": (OutcomeKind.TRANSIENT, "the agent's answer hit its token limit (max_tokens)"),
    "max_turn_requests": (
        OutcomeKind.TRANSIENT,
        "the turn hit the agent's limit of model requests (max_turn_requests)",
    ),
    "cancelled": (OutcomeKind.TRANSIENT, "the agent cancelled the turn"),
}
"""How a turn that ended without its work done is judged, by its stop reason."""

MAX_RESULT_CHARS = 8000


class AcpAgent:
    """Runs an ACP agent through the bridge; judges the round by the bridge's result line."""

    name = "acp"
    uses_sessions = True
    names_sessions = True
    """The agent names its sessions (`session/new`): a fresh attempt has none until it says."""
    reads_prompt = True
    news_only_on_resume = False
    """A later round gets the whole task again with its news: its session may not have been
    loaded (an agent without loadSession, a session it lost) and a new one must know it."""

    def __init__(self, config: Config, command: str | None = None) -> None:
        self.config = config
        command = command if command is not None else config.acp_command
        try:
            self.template = commandline.split(command)
        except ValueError as err:
            raise ConfigError(f"acp_command = {command!r}: {err}") from err
        if not self.template:
            raise ConfigError(
                "acp_command = '' : agent = \"acp\" needs the ACP agent's command line, e.g. "
                'acp_command = "npx @agentclientprotocol/claude-agent-acp" (docs/AGENTS.md)'
            )

    def argv(self, spec: RunSpec) -> list[str]:
        mode = self.config.for_type(spec.task_type).permission_mode or self.config.permission_mode
        argv = [
            sys.executable,
            "-m",
            "ai_employee.running.acp_bridge",
            "--cwd",
            str(spec.workdir),
            "--prompt",
            str(spec.prompt_file),
        ]
        if spec.resume and spec.session_id:
            argv += ["--session", spec.session_id, "--resume"]
        for kind in ALLOWED_KINDS.get(mode, ALLOWED_KINDS["default"]):
            argv += ["--allow-kind", kind]
        for rule in spec.allowed_tools:
            argv += ["--allow", rule]
        argv += ["--wait-seconds", f"{self.config.acp_permission_wait_seconds:g}"]
        argv += ["--mode", mode]
        return [*argv, "--", *self.template]

    def answer_line(self, number: int, allow: bool) -> bytes:
        """A person's answer to the request the bridge said waits as `ask` `number`."""
        said = {"ask": number, "answer": "allow" if allow else "reject"}
        return (json.dumps(said) + "\n").encode()

    def stdin(self, spec: RunSpec) -> Path | None:
        return None

    def prompt_header(self, spec: RunSpec) -> str:
        return spec.handbook

    def on_line(self, line: str, state: RunState) -> dict[str, Any] | None:
        try:
            message = json.loads(line)
        except ValueError:
            state.keep(line)  # the agent's stderr (merged), or noise
            return None
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind == "stderr":
            state.keep(str(message.get("line") or ""))
        elif kind == "result":
            state.data["result"] = message
        elif kind == "session":
            state.session_id = str(message.get("session_id") or "") or None
        elif kind == "mode":
            wanted, current = message.get("wanted"), message.get("current")
            if current != wanted:  # the agent runs in a mode of its own: said in the Result
                text = f"the agent offers no mode {wanted!r}; it runs in its mode {current!r}"
                state.data.setdefault("notes", []).append(text)
        elif kind == "note":  # e.g. the agent cannot load a session: said in the Result
            state.data.setdefault("notes", []).append(str(message.get("text") or ""))
        elif kind == "update":
            return _update(message.get("update"), state)
        elif kind == "permission":
            answer = message.get("answer")
            state.waiting = None
            if answer == "waiting" and isinstance(message.get("ask"), int):
                wait_s = message.get("wait_s")
                wait_s = float(wait_s) if isinstance(wait_s, int | float) else 0.0
                state.waiting = Question(_ask(message), message["ask"], wait_s)
            return {"result": f"permission {answer}", "parameters": {"rule": message.get("rule")}}
        return None

    def finish(self, exit_code: int, state: RunState) -> Outcome:
        result = state.data.get("result")
        said = "".join(state.data.get("said", []))[-MAX_RESULT_CHARS:].strip()
        notes = "".join(f"Note: {n}\n\n" for n in state.data.get("notes", []))
        said = notes + said
        tail = "\n".join(state.tail[-20:]).strip()
        if not isinstance(result, dict):
            return Outcome(
                OutcomeKind.TRANSIENT,
                error=f"the ACP bridge exited {exit_code} without a result: {_last(state)}",
                result=tail,
                exit_code=exit_code,
            )
        session = result.get("session_id") or state.session_id
        cost = result.get("cost_usd") if isinstance(result.get("cost_usd"), int | float) else None
        common: dict[str, Any] = {"exit_code": exit_code, "cost_usd": cost, "session_id": session}
        asks = tuple(_ask(a) for a in result.get("asks") or [] if isinstance(a, dict))
        if asks:  # a person decides first, whatever became of the turn after the refusal
            rules = ", ".join(a.rule for a in asks)
            return Outcome(
                OutcomeKind.ASKED, error=f"asked for {rules}", result=said, asked=asks, **common
            )
        if result.get("error"):
            permanent = exit_code == 127 or result.get("class") == "protocol"
            kind = OutcomeKind.PERMANENT if permanent else OutcomeKind.TRANSIENT
            error = str(result["error"]).splitlines()[0]
            if tail:
                error += f"; its last words: {_last(state)}"
            return Outcome(kind, error=error, result=tail, **common)
        reason = str(result.get("stop_reason") or "")
        if reason == "end_turn":
            return Outcome(OutcomeKind.SUCCESS, result=said or "(no message)", **common)
        unknown = (
            OutcomeKind.PERMANENT,
            f"the ACP agent broke the protocol: an unknown stop reason {reason!r}",
        )
        judged, error = STOPPED.get(reason, unknown)
        return Outcome(judged, error=error, result=said, **common)

    def not_found(self, spec: RunSpec, error: OSError) -> Outcome:
        return Outcome(
            OutcomeKind.PERMANENT,
            error=f"cannot start the ACP bridge ({sys.executable}): {error.strerror or error}",
        )


def _update(update: object, state: RunState) -> dict[str, Any] | None:
    """One `session/update`: the agent's words kept for the Result, a tool call logged."""
    if not isinstance(update, dict):
        return None
    kind = update.get("sessionUpdate")
    if kind == "agent_message_chunk":
        content = update.get("content")
        if isinstance(content, dict) and isinstance(content.get("text"), str):
            state.data.setdefault("said", []).append(content["text"])
        return None
    if kind == "tool_call":
        title, tool_kind = update.get("title"), update.get("kind")
        return {"result": f"tool {title}", "parameters": {"kind": tool_kind}}
    return None


def _ask(asked: dict[str, Any]) -> Ask:
    call = asked.get("tool_call") if isinstance(asked.get("tool_call"), dict) else {}
    assert isinstance(call, dict)
    raw = call.get("rawInput")
    shown = json.dumps(raw, ensure_ascii=False)[:300] if raw else str(call.get("title") or "")
    return Ask(tool=str(call.get("kind") or "other"), asked=shown, rule=str(asked.get("rule")))


def _last(state: RunState) -> str:
    lines = [line.strip() for line in state.tail if line.strip()]
    return (lines[-1] if lines else "no output")[:300]
