"""The ACP client of one agent round: `python -m ai_employee.running.acp_bridge ... -- AGENT...`.

`agent = "acp"` runs this module as the round's process (agents/acp.py builds its command
line), so the service's threads stay threads and the round is a process like any other: its own
process group (which the ACP agent, started here, shares: a stop of the group stops both), a
transcript of its output lines, a stall timer, a timeout. Here, in this process's own event
loop, the Agent Client Protocol is spoken with the agent: `initialize`, `session/new` (or
`session/load` to go on with a session), one `session/prompt` with the prompt file's text.

What it prints, one JSON object per line on stdout (agents/acp.py reads them):
  {"type": "init", "agent": {...}, "load_session": bool}
  {"type": "session", "session_id": "..."}
  {"type": "update", "update": {...}}            each `session/update`, as the agent sent it
  {"type": "permission", "rule": "...", "tool_call": {...}, "answer": "allow_once" | ...}
  {"type": "result", "stop_reason": ..., "session_id": ..., "cost_usd": ..., "asks": [...],
   "error": "...", "exit_code": ...}                   always last
The agent's stderr is copied to ours (merged into the transcript by the service) up to
STDERR_CAP bytes: an agent that writes more never blocks. A permission request is answered at
once: allowed (its kind is allowed by `--allow-kind`, or its rule was granted with `--allow`),
else rejected and remembered as an ask (the task then waits for a person, as Claude's denied
tools do). On SIGTERM the turn is cancelled (`session/cancel`) before this process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import acp
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    DeniedOutcome,
    FileSystemCapabilities,
    Implementation,
    RequestPermissionResponse,
)

STDERR_CAP = 256 * 1024
"""The agent's stderr copied at most (the rest is read and dropped)."""
STDERR_LINE = 4096
"""... and of each of its lines."""

MAX_LINE = 4 * 1024 * 1024
"""A JSON-RPC message from the agent larger than this ends the round (a protocol error)."""

EXIT_STOPPED = 4
"""The turn ended without the work done: refusal, max_tokens, max_turn_requests, cancelled."""
EXIT_AGENT_GONE = 3
"""The agent exited, or broke the protocol, before the turn ended."""
EXIT_CANNOT_START = 127


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"type": kind, **fields}, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def rule_of(tool_call: Any) -> str:
    """The permission rule a person grants for one tool call: `<kind>(<title>)`, or, for a
    call without a title, `<kind>(<its input as JSON>)` (never an empty, catch-all rule)."""
    title = (tool_call.title or "").strip()
    if not title:
        title = json.dumps(tool_call.raw_input, ensure_ascii=False, sort_keys=True, default=str)
    return f"{tool_call.kind or 'other'}({title})"


ALLOW_ORDER = ("allow_once", "allow_always")
REJECT_ORDER = ("reject_once", "reject_always")


def _first(options: list[Any], kinds: tuple[str, ...]) -> Any:
    """The agent's option of the first of `kinds` it offers (by kind: option ids differ
    between agents and versions)."""
    for kind in kinds:
        for option in options:
            if option.kind == kind:
                return option
    return None


class Client:
    """This side of the protocol: updates printed, permission requests answered."""

    def __init__(self, allow_kinds: set[str], allow_rules: set[str]) -> None:
        self.allow_kinds = allow_kinds
        self.allow_rules = allow_rules
        self.asks: list[dict[str, Any]] = []
        self.cost: float | None = None
        """The session's cost so far, as the agent last said (ACP's `usage_update`)."""
        self.cost_before: float = 0.0
        """... as it said before this round's prompt (a loaded session's earlier rounds)."""

    async def session_update(self, session_id: str, update: Any, **_: Any) -> None:
        data = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        cost = data.get("cost") if data.get("sessionUpdate") == "usage_update" else None
        if isinstance(cost, dict) and isinstance(cost.get("amount"), int | float):
            self.cost = float(cost["amount"])  # the session's total so far
        emit("update", update=data)

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[Any], **_: Any
    ) -> RequestPermissionResponse:
        rule = rule_of(tool_call)
        allowed = (tool_call.kind or "other") in self.allow_kinds or rule in self.allow_rules
        option = _first(options, ALLOW_ORDER) if allowed else None
        call = tool_call.model_dump(mode="json", by_alias=True, exclude_none=True)
        if option is None:  # not allowed (or no way to allow it once): a person decides
            self.asks.append({"rule": rule, "tool_call": call})
            option = _first(options, REJECT_ORDER)
        emit("permission", rule=rule, tool_call=call, answer=option.kind if option else "none")
        if option is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    async def write_text_file(self, session_id: str, path: str, content: str, **_: Any) -> None:
        raise acp.RequestError.method_not_found("fs/write_text_file")  # not offered

    async def read_text_file(self, session_id: str, path: str, **_: Any) -> Any:
        raise acp.RequestError.method_not_found("fs/read_text_file")  # not offered


def round_cost(client: Client) -> float | None:
    """This round's cost: the session's total now less its total before the prompt (ACP's
    `usage_update` cost is the session's); an agent that counts per process starts at 0."""
    if client.cost is None:
        return None
    before = client.cost_before if client.cost >= client.cost_before else 0.0
    return client.cost - before


async def copy_stderr(stream: asyncio.StreamReader) -> None:
    """The agent's stderr to ours, whole lines only (ours shares a pipe with our stdout's JSON
    lines, which a partial line would break), each cut at STDERR_LINE, in all STDERR_CAP;
    always read to the end, so the agent never blocks on it."""
    copied, pending = 0, b""
    while True:
        chunk = await stream.read(65536)
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop() if chunk else b""
        if not chunk and lines[-1:] == [b""]:
            lines.pop()
        for line in lines:
            if copied < STDERR_CAP:
                cut = line[:STDERR_LINE] + (b" ... (cut)" if len(line) > STDERR_LINE else b"")
                sys.stderr.buffer.write(cut + b"\n")
                sys.stderr.flush()
                copied += len(cut) + 1
        pending = pending[: STDERR_LINE + 1]  # a line that never ends is kept only so far
        if not chunk:
            return


class Broken:
    """Why the agent's output broke the protocol (set by `checked_lines`), if it did."""

    why: str | None = None


async def checked_lines(
    source: asyncio.StreamReader, sink: asyncio.StreamReader, broken: Broken
) -> None:
    """The agent's stdout to the protocol's reader, one checked message at a time: a message
    over MAX_LINE bytes, or a line that is not JSON, ends the stream (the SDK would take the
    first whole and skip the second quietly), saying why."""
    try:
        while True:
            try:
                line = await source.readuntil(b"\n")
            except asyncio.IncompleteReadError as err:
                line = err.partial  # the last line, without its newline: then the end
                if line.strip():
                    sink.feed_data(line + b"\n")
                return
            except asyncio.LimitOverrunError:
                broken.why = f"the ACP agent sent a message over {MAX_LINE:,} bytes"
                return
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    shown = line.strip()[:120].decode("utf-8", "replace")
                    broken.why = f"the ACP agent broke the protocol: not JSON-RPC: {shown!r}"
                    return
            sink.feed_data(line)
    finally:
        sink.feed_eof()


async def round_(args: argparse.Namespace) -> int:
    client = Client(set(args.allow_kind), set(args.allow))
    try:
        proc = await asyncio.create_subprocess_exec(
            *args.agent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=args.cwd,
            limit=MAX_LINE,
        )
    except OSError as err:
        emit("result", error=f"cannot start the ACP agent {args.agent[0]!r}: {err.strerror or err}")
        return EXIT_CANNOT_START
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    drain = asyncio.create_task(copy_stderr(proc.stderr))
    messages = asyncio.StreamReader(limit=MAX_LINE + 1)
    broken = Broken()
    reader = asyncio.create_task(checked_lines(proc.stdout, messages, broken))
    conn = acp.connect_to_agent(client, proc.stdin, messages)  # type: ignore[arg-type]
    session_id = args.session or ""
    result: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, cancelled.set)
    try:
        init = await conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=False, write_text_file=False),
                terminal=False,
            ),
            client_info=Implementation(name="ai-employee", version="1"),
        )
        can_load = bool(init.agent_capabilities and init.agent_capabilities.load_session)
        info = init.agent_info.model_dump(mode="json") if init.agent_info else {}
        emit("init", agent=info, load_session=can_load)
        if args.check:  # `doctor`: it starts and answers initialize; nothing more
            emit("result", exit_code=0, stop_reason="checked")
            return 0
        loaded = False
        if args.resume and session_id and can_load:
            try:
                await conn.load_session(cwd=args.cwd, session_id=session_id, mcp_servers=[])
                loaded = True
            except Exception as err:  # an id it never knew (an interrupted attempt's), gone
                emit("note", text=f"session {session_id} could not be loaded ({err}): a new one")
        elif args.resume and session_id:
            emit("note", text="the agent cannot load a session (no loadSession): a new one")
        if not loaded:
            session_id = (await conn.new_session(cwd=args.cwd, mcp_servers=[])).session_id
        emit("session", session_id=session_id)
        text = Path(args.prompt).read_text(encoding="utf-8")
        for _ in range(3):  # a loaded session's replayed updates, handled before the prompt
            await asyncio.sleep(0)
        client.cost_before = client.cost or 0.0
        turn = asyncio.create_task(
            conn.prompt(session_id=session_id, prompt=[acp.text_block(text)])
        )
        stop = asyncio.create_task(cancelled.wait())
        done, _ = await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stop in done and turn not in done:
            await conn.cancel(session_id=session_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(turn, 5)
            result = {"stop_reason": "cancelled", "error": "stopped (SIGTERM)"}
            code = 143
        else:
            stop.cancel()
            reason = str(getattr(turn.result().stop_reason, "value", turn.result().stop_reason))
            result = {"stop_reason": reason}
            code = 0 if reason == "end_turn" else EXIT_STOPPED
    except Exception as err:  # the agent died, answered with an error, or broke the protocol
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 2)
        said = f"{type(err).__name__}: {err}"
        if isinstance(err, ConnectionError) and broken.why:
            said = broken.why
        elif isinstance(err, ConnectionError) and proc.returncode is not None:
            said = f"the ACP agent exited {proc.returncode} before the turn ended"
        result = {"error": said[:2000], "agent_exit_code": proc.returncode}
        if broken.why:
            result["class"] = "protocol"  # the agent breaks the protocol: not worth a retry
        code = EXIT_AGENT_GONE
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 2)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(drain, 2)
        reader.cancel()
    emit(
        "result",
        session_id=session_id,
        cost_usd=round_cost(client),
        asks=client.asks,
        exit_code=code,
        **result,
    )
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_employee.running.acp_bridge")
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--prompt", required=True, help="the prompt file")
    parser.add_argument("--session", default="", help="the session to go on with (--resume)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--allow-kind", action="append", default=[], help="tool kinds allowed")
    parser.add_argument("--allow", action="append", default=[], help="rules a person granted")
    parser.add_argument("--check", action="store_true", help="initialize only (doctor)")
    parser.add_argument("agent", nargs="+", help="the ACP agent's command line (after --)")
    args = parser.parse_args(argv)
    return asyncio.run(round_(args))


if __name__ == "__main__":
    sys.exit(main())
