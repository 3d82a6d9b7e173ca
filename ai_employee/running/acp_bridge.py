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
  {"type": "mode", "current": ..., "offered": [...], "wanted": ...}   the session's mode
  {"type": "update", "update": {...}}            each `session/update`, as the agent sent it
  {"type": "permission", "rule": "...", "tool_call": {...}, "answer": "allow_once" | ...}
  {"type": "permission", ..., "answer": "waiting", "ask": N, "wait_s": S}   a person decides
  {"type": "stderr", "line": "..."}              the agent's stderr, line by line
  {"type": "note", "text": "..."}                e.g. a session that could not be loaded
  {"type": "result", "stop_reason": ..., "session_id": ..., "cost_usd": ..., "asks": [...],
   "error": "...", "exit_code": ...}                   always last
The agent's stderr is copied up to STDERR_CAP bytes: an agent that writes more never blocks. A
permission request whose kind `--allow-kind` allows, or whose rule a person granted (`--allow`),
is allowed at once. Any other waits up to `--wait-seconds` for a person's answer on our stdin
(`{"ask": N, "answer": "allow" | "reject"}`, written by the service when the person approves or
rejects the task): allowed, the turn goes on; rejected, it is answered `reject_once` and the turn
cancelled. With no answer in time (or no wait) it is refused and remembered as an ask: the task
waits for a person, and an approval loads the session again. On SIGTERM the turn is cancelled
(`session/cancel`, a waiting request answered `cancelled`) before this process exits; before
the turn began, it just ends.
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

REJECTED = "a person ended the task while its agent waited (answered reject_once)"


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


class Answers:
    """A person's answers to this round's waiting permission requests, read from our stdin:
    the service writes one JSON line per answer, `{"ask": N, "answer": "allow" | "reject"}`,
    N the `ask` of the waiting `permission` line it answers (a late answer to an ask whose wait
    is over names an old N and is dropped)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                said = json.loads(line)
                self.queue.put_nowait((int(said["ask"]), str(said["answer"])))

    def end_all(self) -> None:
        """The turn is being cancelled: every waiting ask ends now, unanswered."""
        self.queue.put_nowait((0, "cancelled"))

    async def for_ask(self, ask: int, wait_s: float) -> str | None:
        """The answer to `ask` ("allow", "reject", "cancelled"), or None when none came within
        `wait_s` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            try:
                number, answer = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return None
            if answer == "cancelled":
                self.queue.put_nowait((number, answer))  # for any other ask that waits
                return answer
            if number == ask:
                return answer
        return None


class Client:
    """This side of the protocol: updates printed, permission requests answered."""

    def __init__(self, allow_kinds: set[str], allow_rules: set[str], wait_s: float = 0) -> None:
        self.allow_kinds = allow_kinds
        self.allow_rules = allow_rules
        self.wait_s = wait_s
        """How long a request no kind or rule allows waits for a person (0: refused at once)."""
        self.answers = Answers()
        self.rejected = asyncio.Event()
        """A person rejected the task while its agent waited: the turn is cancelled."""
        self._one_ask = asyncio.Lock()
        self._asked = 0
        self.asks: list[dict[str, Any]] = []
        """The requests refused with no person's answer: the task waits for one."""
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
        call = tool_call.model_dump(mode="json", by_alias=True, exclude_none=True)
        allow = _first(options, ALLOW_ORDER)
        allowed = (tool_call.kind or "other") in self.allow_kinds or rule in self.allow_rules
        said = None
        if not allowed and allow is not None and self.wait_s > 0:
            said = await self._ask_person(rule, call)
        if said == "cancelled":
            emit("permission", rule=rule, tool_call=call, answer="cancelled")
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        granted = allow is not None and (allowed or said == "allow")
        if said == "reject":
            self.rejected.set()
        elif not granted:  # no person answered (or no way to allow it once): one decides later
            self.asks.append({"rule": rule, "tool_call": call})
        option = allow if granted else _first(options, REJECT_ORDER)
        by = {"by": "person"} if said in ("allow", "reject") else {}
        emit(
            "permission", rule=rule, tool_call=call, answer=option.kind if option else "none", **by
        )
        if option is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    async def _ask_person(self, rule: str, call: dict[str, Any]) -> str | None:
        """Say that a request waits for a person, and wait for their answer (one request at a
        time: a person sees one question). None: no answer within the wait."""
        async with self._one_ask:
            self._asked += 1
            emit(
                "permission", rule=rule, tool_call=call, answer="waiting", ask=self._asked,
                wait_s=self.wait_s,
            )  # fmt: skip
            return await self.answers.for_ask(self._asked, self.wait_s)

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
    """The agent's stderr, line by line, as `{"type": "stderr", "line": ...}` on our stdout (a
    line of its own never passes for one of ours), each cut at STDERR_LINE, in all STDERR_CAP;
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
                cut = line[:STDERR_LINE].decode("utf-8", "replace")
                emit("stderr", line=cut + (" ... (cut)" if len(line) > STDERR_LINE else ""))
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


class Stopped(Exception):
    """SIGTERM came before the turn began: nothing to cancel, the round ends."""


async def until_stopped(work: Any, stopped: asyncio.Event) -> Any:
    """`work`'s result, unless SIGTERM comes first (Stopped; `work` is cancelled)."""
    task, stop = asyncio.ensure_future(work), asyncio.create_task(stopped.wait())
    done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stop.cancel()
        return task.result()
    task.cancel()
    raise Stopped


class ExitNoticed(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol for a process's pipes, which also says when the process exits."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class Agent:
    """The ACP agent's process and our connection to it."""

    exited: asyncio.Event
    """Set when its process exits (whatever holds its pipes)."""

    def __init__(self, proc: asyncio.subprocess.Process, client: Client) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.broken = Broken()
        messages = asyncio.StreamReader(limit=MAX_LINE + 1)
        self.drain = asyncio.create_task(copy_stderr(proc.stderr))
        self.reader = asyncio.create_task(checked_lines(proc.stdout, messages, self.broken))
        self.conn = acp.connect_to_agent(client, proc.stdin, messages)  # type: ignore[arg-type]

    @classmethod
    async def start(cls, args: argparse.Namespace, client: Client) -> Agent:
        """OSError: it cannot be started. (asyncio.create_subprocess_exec, with a protocol that
        says when the process exits: Python 3.11's `Process.wait()` returns only once its
        pipes close too, which a child of the agent that keeps its stdout never lets happen.)"""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: ExitNoticed(limit=MAX_LINE, loop=loop),
            *args.agent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=args.cwd,
        )
        agent = cls(asyncio.subprocess.Process(transport, protocol, loop), client)
        agent.exited = protocol.exited
        return agent

    async def open_session(self, args: argparse.Namespace) -> str | None:
        """`initialize`, then the session the turn runs in: the one to go on with, loaded when
        the agent can, else a new one (said in a `note` line). None for `--check`."""
        init = await self.conn.initialize(
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
            return None
        session_id = args.session or ""
        if args.resume and session_id and can_load:
            try:
                cwd = args.cwd
                loaded = await self.conn.load_session(
                    cwd=cwd, session_id=session_id, mcp_servers=[]
                )
                await self.set_mode(session_id, loaded.modes, args.mode)
                return session_id
            except Exception as err:  # an id it never knew (an interrupted attempt's), gone
                emit("note", text=f"session {session_id} could not be loaded ({err}): a new one")
        elif args.resume and session_id:
            emit("note", text="the agent cannot load a session (no loadSession): a new one")
        new = await self.conn.new_session(cwd=args.cwd, mcp_servers=[])
        await self.set_mode(new.session_id, new.modes, args.mode)
        return new.session_id

    async def set_mode(self, session_id: str, modes: Any, wanted: str) -> None:
        """The session's mode set to `wanted` (the task's permission_mode) when the agent
        offers a mode of that id (Claude's adapter does); else left, and said, so an agent
        that runs in an "auto" mode of its own is seen to."""
        if modes is None or not wanted:
            return
        offered = [mode.id for mode in modes.available_modes]
        if wanted in offered and modes.current_mode_id != wanted:
            await self.conn.set_session_mode(session_id=session_id, mode_id=wanted)
        current = wanted if wanted in offered else modes.current_mode_id
        emit("mode", current=current, offered=offered, wanted=wanted)

    async def take_turn(
        self, session_id: str, text: str, client: Client, stopped: asyncio.Event
    ) -> tuple[dict[str, Any], int]:
        """One `session/prompt`, raced against SIGTERM, a person's rejection and the agent's
        exit (an agent whose child holds its stdout open is gone all the same): the result
        line's fields and our exit code."""
        turn = asyncio.create_task(
            self.conn.prompt(session_id=session_id, prompt=[acp.text_block(text)])
        )
        waits = {
            turn,
            asyncio.create_task(self.exited.wait()),
            asyncio.create_task(stopped.wait()),
            asyncio.create_task(client.rejected.wait()),
        }
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits - {turn}:
            task.cancel()
        if stopped.is_set() or client.rejected.is_set():  # over a turn that ended meanwhile
            error, code = (
                ("stopped (SIGTERM)", 143) if stopped.is_set() else (REJECTED, EXIT_STOPPED)
            )
            if not turn.done():
                client.answers.end_all()
                await self.conn.cancel(session_id=session_id)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(turn, 5)
            return {"stop_reason": "cancelled", "error": error}, code
        if not turn.done():  # it exited: the turn ends as soon as the connection does
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(turn), 1)
            if not turn.done():
                turn.cancel()
                gone = self.proc.returncode
                raise ConnectionError(f"the ACP agent exited {gone} before the turn ended")
        stop_reason = turn.result().stop_reason
        reason = str(getattr(stop_reason, "value", stop_reason))
        return {"stop_reason": reason}, 0 if reason == "end_turn" else EXIT_STOPPED

    def failed(self, err: Exception) -> dict[str, Any]:
        """The result's fields when the agent died, answered with an error, or broke the
        protocol."""
        said = f"{type(err).__name__}: {err}"
        if isinstance(err, ConnectionError) and self.broken.why:
            said = self.broken.why
        elif isinstance(err, ConnectionError) and self.proc.returncode is not None:
            said = f"the ACP agent exited {self.proc.returncode} before the turn ended"
        result = {"error": said[:2000], "agent_exit_code": self.proc.returncode}
        if self.broken.why:
            result["class"] = "protocol"  # the agent breaks the protocol: not worth a retry
        return result

    async def end(self) -> None:
        """The agent stopped (SIGTERM, then SIGKILL after 2 s), its stderr read to the end."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.exited.wait(), 2)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain, 2)
        self.reader.cancel()
        # Closed here, while the loop runs: else its __del__ closes it after asyncio.run has
        # closed the loop, and prints "Event loop is closed" to our stderr.
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()


async def round_(args: argparse.Namespace) -> int:
    client = Client(set(args.allow_kind), set(args.allow), args.wait_seconds)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    if args.wait_seconds > 0:  # the service's answers come on our stdin
        ours = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(ours), sys.stdin)
        answers = asyncio.create_task(client.answers.read(ours))
    try:
        agent = await Agent.start(args, client)
    except OSError as err:
        emit("result", error=f"cannot start the ACP agent {args.agent[0]!r}: {err.strerror or err}")
        return EXIT_CANNOT_START
    session_id = args.session or ""
    try:
        opened = await until_stopped(agent.open_session(args), stopped)
        if opened is None:
            emit("result", exit_code=0, stop_reason="checked")
            return 0
        session_id = opened
        emit("session", session_id=session_id)
        text = Path(args.prompt).read_text(encoding="utf-8")
        for _ in range(3):  # a loaded session's replayed updates, handled before the prompt
            await asyncio.sleep(0)
        client.cost_before = client.cost or 0.0
        result, code = await agent.take_turn(session_id, text, client, stopped)
    except Stopped:
        result, code = {"stop_reason": "cancelled", "error": "stopped (SIGTERM)"}, 143
    except Exception as err:  # the agent died, answered with an error, or broke the protocol
        with contextlib.suppress(Exception):
            await asyncio.wait_for(agent.exited.wait(), 2)
        result, code = agent.failed(err), EXIT_AGENT_GONE
    finally:
        await agent.end()
        if args.wait_seconds > 0:
            answers.cancel()
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
    parser.add_argument("--mode", default="", help="the session mode to set, if offered")
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=0.0,
        help="how long a request nothing allows waits for a person's answer on stdin",
    )
    parser.add_argument("agent", nargs="+", help="the ACP agent's command line (after --)")
    args = parser.parse_args(argv)
    return asyncio.run(round_(args))


if __name__ == "__main__":
    sys.exit(main())
