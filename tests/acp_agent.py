"""A scripted ACP agent for tests: JSON-RPC over stdio, no model. What it does in a turn comes
from a `behave:` line in the prompt:
  ok              say "did it" (two chunks), report the session's cost so far (usage_update:
                  $0.0125 a turn, cumulative, as ACP defines it), end_turn
  ask             ask to write hello.txt (session/request_permission, kind edit); allowed: write
                  it and say so; rejected: say so; end_turn either way
  ask2            as ask, then (allowed or not) ask to write bye.txt the same way
  ask_die         as ask, then exit 3 a second later, while the request waits
  die             write to stderr and exit 3 mid-turn
  orphan          start a child that keeps its stdout open for 60 s, then exit 5 mid-turn
  refuse          end the turn with stopReason refusal
  noisy           write 2 MB to stderr first, then as ok
  count           count its turns in the work dir's rounds.txt, then as ok
  huge            send a 5 MB message (over the bridge's limit)
  garbled         write a line that is not JSON
With ACP_NO_LOAD=1 it says it cannot load sessions (`loadSession: false`).
Every session it makes is remembered in $ACP_SESSIONS (one id per line), so `session/load` of
a session it made (in an earlier process) works, as a real agent's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path


def ask_to_write(session: str, request_id: int, path: Path) -> None:
    """A tool call to write `path`, and the permission request for it."""
    content = path.name.split(".")[0] + "\n"
    call = {"toolCallId": f"call-{request_id}", "title": f"Write {path.name}", "kind": "edit"}
    call["rawInput"] = {"file_path": str(path), "content": content}
    update(session, {"sessionUpdate": "tool_call", "status": "pending", **call})
    send({"id": request_id, "method": "session/request_permission", "params": {
        "sessionId": session, "toolCall": call, "options": [
            {"optionId": "a1", "name": "Allow", "kind": "allow_once"},
            {"optionId": "r1", "name": "Reject", "kind": "reject_once"}]}})  # fmt: skip


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def update(session: str, body: dict[str, object]) -> None:
    send({"method": "session/update", "params": {"sessionId": session, "update": body}})


def say(session: str, text: str) -> None:
    update(
        session, {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
    )


def remembered(sessions: Path, session: str, behave: str | None) -> str:
    """A session's `behave` (a later turn's prompt may not repeat the task): kept beside the
    sessions file, so a loaded session keeps it too."""
    if sessions == Path(os.devnull):  # nowhere to keep it
        return behave or "ok"
    store = sessions.with_name(sessions.name + ".behave.json")
    known = json.loads(store.read_text()) if store.exists() else {}
    if behave is not None and session not in known:
        known[session] = behave
        store.write_text(json.dumps(known))
    return str(known.get(session, behave or "ok"))


def turn_count(sessions: Path, session: str, add: int = 1) -> int:
    """The session's turns with a cost so far (this one added): kept beside the sessions
    file, so a loaded session's cost goes on from where it was."""
    if sessions == Path(os.devnull):
        return 1
    store = sessions.with_name(sessions.name + ".turns.json")
    known = json.loads(store.read_text()) if store.exists() else {}
    known[session] = known.get(session, 0) + add
    store.write_text(json.dumps(known))
    return int(known[session])


def main() -> int:
    sessions = Path(os.environ.get("ACP_SESSIONS", os.devnull))
    cwd = Path.cwd()
    # our request id -> (session, prompt id, the file it asks to write, a second ask after)
    pending: dict[int, tuple[str, int, str, bool]] = {}
    next_id = 1000
    for line in sys.stdin:
        message = json.loads(line)
        method, mid = message.get("method"), message.get("id")
        params = message.get("params") or {}
        if method == "initialize":
            capabilities = {"loadSession": os.environ.get("ACP_NO_LOAD") != "1"}
            info = {"name": "scripted-acp", "version": "1.0"}
            result = {"protocolVersion": 1, "agentCapabilities": capabilities, "agentInfo": info}
            send({"id": mid, "result": result})
        elif method == "session/new":
            session = f"sess-{uuid.uuid4().hex[:12]}"
            with sessions.open("a") as out:
                out.write(session + "\n")
            send({"id": mid, "result": {"sessionId": session}})
        elif method == "session/load":
            known = sessions.read_text().split() if sessions.exists() else []
            if params.get("sessionId") not in known:
                send({"id": mid, "error": {"code": -32002, "message": "no such session"}})
            else:
                say(params["sessionId"], "(replayed)")
                spent = 0.0125 * turn_count(sessions, params["sessionId"], add=0)
                update(params["sessionId"], {"sessionUpdate": "usage_update", "used": 10,
                       "size": 1000, "cost": {"amount": spent, "currency": "USD"}})  # fmt: skip
                send({"id": mid, "result": {}})
        elif method == "session/prompt":
            session = params["sessionId"]
            text = " ".join(b.get("text", "") for b in params.get("prompt", []))
            said = [
                w.split(":", 1)[1].strip() for w in text.splitlines() if w.startswith("behave:")
            ]
            behave = remembered(sessions, session, said[0] if said else None)
            if behave == "noisy":
                sys.stderr.write("x" * 2_000_000)
                sys.stderr.flush()
            if behave == "count":
                counter = cwd / "rounds.txt"
                turns = int(counter.read_text()) if counter.exists() else 0
                counter.write_text(f"{turns + 1}\n")
            if behave == "huge":
                say(session, "y" * 5_000_000)
            if behave == "garbled":
                sys.stdout.write("this is not json\n")
                sys.stdout.flush()
            if behave == "orphan":  # the child holds the pipe: no EOF until it ends
                subprocess.Popen(["sleep", "60"], stdout=sys.stdout, stderr=subprocess.DEVNULL)
                os._exit(5)
            if behave == "die":
                sys.stderr.write("fatal: the scripted agent broke\n")
                sys.stderr.flush()
                os._exit(3)
            if behave == "refuse":
                send({"id": mid, "result": {"stopReason": "refusal"}})
                continue
            if behave in ("ask", "ask2", "ask_die"):
                next_id += 1
                pending[next_id] = (session, mid, "hello.txt", behave == "ask2")
                ask_to_write(session, next_id, cwd / "hello.txt")
                if behave == "ask_die":
                    threading.Timer(1.0, os._exit, (3,)).start()
                continue
            say(session, "did ")
            say(session, "it")
            total = 0.0125 * turn_count(sessions, session)  # the session's, as ACP says
            update(session, {"sessionUpdate": "usage_update", "used": 10, "size": 1000,
                             "cost": {"amount": total, "currency": "USD"}})  # fmt: skip
            send({"id": mid, "result": {"stopReason": "end_turn"}})
        elif mid in pending and "result" in message:  # the answer to a permission request
            session, prompt_id, name, more = pending.pop(mid)
            outcome = message["result"].get("outcome", {})
            if outcome.get("optionId") == "a1":
                (cwd / name).write_text(name.split(".")[0] + "\n")
                say(session, f"wrote {name}")
            else:
                say(session, f"was not allowed to write {name}")
            if more:  # then a second request, in the same turn
                next_id += 1
                pending[next_id] = (session, prompt_id, "bye.txt", False)
                ask_to_write(session, next_id, cwd / "bye.txt")
                continue
            send({"id": prompt_id, "result": {"stopReason": "end_turn"}})
        elif method == "session/cancel":
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
