"""A run's transcript (`Logs/tasks/<task_id>.jsonl`) as turns a person reads.

`turns_of` is pure: one transcript line in, the turns it shows out. A claude run's output lines
are stream-json messages (text, tool calls, their results, the result); any other agent's lines
(and a task's check's) are shown as they are; a check's start and end and a new round are turns
of their own. `read_from` reads the complete lines after an offset, so a page that
follows a live run asks only for what is new.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...running.agents.base import OutcomeKind

MAX_TURN_CHARS = 20_000
"""A turn's text is cut here (a tool result can be a whole file)."""

_OUTCOMES = frozenset(kind.value for kind in OutcomeKind)

FAILED_ENDS = frozenset({"transient", "permanent"})
"""Ends shown as failures (red), whatever comes next."""

MAX_READ_BYTES = 4 * 1024 * 1024
"""At most this much of a transcript is read per look; the rest comes at the next."""


@dataclass(frozen=True)
class Turn:
    """One thing that happened in a run, as the task page shows it."""

    kind: str
    """start, text, tool, result (a tool's), final (the run's result), end, error (a failed
    result or end, or a note of ours), commit (a round's commit, the task's changes), output."""
    text: str
    label: str = ""
    ts: str = ""


def _cut(text: str) -> str:
    if len(text) <= MAX_TURN_CHARS:
        return text
    return text[:MAX_TURN_CHARS] + f"\n… ({len(text) - MAX_TURN_CHARS:,} more characters)"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(block.get("text", "")) if isinstance(block, dict) else str(block)
            for block in content
        ]
        return "\n".join(p for p in parts if p)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _stream_turns(message: dict[str, Any], ts: str) -> list[Turn]:
    kind = message.get("type")
    if kind == "system":
        if message.get("subtype") == "init":
            model = message.get("model") or ""
            return [Turn("start", f"session {message.get('session_id', '')}", str(model), ts)]
        return []
    if kind in ("assistant", "user"):
        body = message.get("message")
        content = body.get("content") if isinstance(body, dict) else None
        if isinstance(content, str):
            return [Turn("text", _cut(content), "", ts)] if kind == "assistant" else []
        turns = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and block.get("text"):
                turns.append(Turn("text", _cut(str(block["text"])), "", ts))
            elif btype == "tool_use":
                args = json.dumps(block.get("input", {}), ensure_ascii=False, indent=1)
                turns.append(Turn("tool", _cut(args), str(block.get("name", "tool")), ts))
            elif btype == "tool_result":
                label = "error" if block.get("is_error") else "result"
                turns.append(Turn("result", _cut(_content_text(block.get("content"))), label, ts))
        return turns
    if kind == "result":
        # The CLI says `subtype: success` beside `is_error: true` (not logged in, an API error):
        # the error decides.
        failed = message.get("is_error") is True
        cost = message.get("total_cost_usd")
        label = "error" if failed else str(message.get("subtype") or "")
        if isinstance(cost, int | float):
            label = f"{label} · ${cost:.4f}".strip(" ·")
        text = message.get("result")
        turn = "error" if failed else "final"
        return [Turn(turn, _cut(str(text) if text is not None else ""), label, ts)]
    return []


def turns_of(record: dict[str, Any]) -> list[Turn]:
    """The turns one transcript line shows (none for stream-json bookkeeping)."""
    shown = _SHOWN.get(str(record.get("kind")))
    return shown(record, str(record.get("ts") or "")) if shown is not None else []


Record = dict[str, Any]


def _start(record: Record, ts: str) -> list[Turn]:
    resumed = " (resumed)" if record.get("resume") else ""
    return [Turn("start", f"attempt {record.get('attempt')}{resumed}", "run started", ts)]


def _end(record: Record, ts: str) -> list[Turn]:
    outcome = str(record.get("outcome") or "")
    parts = [OutcomeKind(outcome).said if outcome in _OUTCOMES else outcome]
    if record.get("exit_code") is not None:
        parts.append(f"exit {record['exit_code']}")
    if isinstance(record.get("duration_s"), int | float):
        parts.append(f"{record['duration_s']:.1f} s")
    text = str(record.get("error") or "")
    turn = "error" if outcome in FAILED_ENDS else "end"
    return [Turn(turn, _cut(text), " · ".join(p for p in parts if p), ts)]


def _error(record: Record, ts: str) -> list[Turn]:
    return [Turn("error", _cut(str(record.get("error") or "")), "error", ts)]


def _check(record: Record, ts: str) -> list[Turn]:
    """A task's check started (verify)."""
    argv = record.get("argv")
    command = " ".join(str(a) for a in argv) if isinstance(argv, list) else ""
    return [Turn("start", _cut(command), "check started", ts)]


def _check_end(record: Record, ts: str) -> list[Turn]:
    passed = record.get("passed") is True
    text = "passed" if passed else str(record.get("error") or "failed")
    label = f"check {'passed' if passed else 'failed'} · round {record.get('round')}"
    return [Turn("end", _cut(text), label, ts)]


def _commit(record: Record, ts: str) -> list[Turn]:
    """A round's changes committed in the work dir (workrepo.py)."""
    sha = str(record.get("sha") or "")
    parts = [sha[:12] if sha else "nothing changed"]
    if record.get("agent_commits"):
        parts.append(f"{record['agent_commits']} commit(s) by the agent kept")
    if isinstance(record.get("left_out"), list):
        parts.append("left out (too big): " + ", ".join(map(str, record["left_out"])))
    label = f"round {record.get('round')}" + (" committed" if sha else "")
    return [Turn("commit", "; ".join(parts), label, ts)]


def _changes(record: Record, ts: str) -> list[Turn]:
    base = str(record.get("base") or "")[:12]
    text = f"{record.get('summary') or 'no change'} since {base}"
    return [Turn("commit", text, "the task's changes", ts)]


def _worktree(record: Record, ts: str) -> list[Turn]:
    """A task on a person's repository: its worktree made (or found) for the attempt."""
    found = " (found again after a crash)" if record.get("reused") else ""
    text = f"{record.get('path')} on {record.get('branch')} of {record.get('repo')}{found}"
    return [Turn("commit", _cut(text), "worktree", ts)]


def _worktree_end(record: Record, ts: str) -> list[Turn]:
    text = str(record.get("kept") or f"removed; the branch {record.get('branch')} stays")
    return [Turn("commit", _cut(text), "worktree", ts)]


def _round(record: Record, ts: str) -> list[Turn]:
    resumed = " (same session)" if record.get("resume") else ""
    text = f"round {record.get('round')} of {record.get('of')}{resumed}"
    return [Turn("start", text, "next round: the check failed", ts)]


def _out(record: Record, ts: str) -> list[Turn]:
    """A line of the agent's output: a claude stream-json message, or text as it is."""
    line = str(record.get("line") or "")
    if line.startswith("{"):
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and "type" in message:
            return _stream_turns(message, ts)
    return [Turn("output", _cut(line), "", ts)] if line.strip() else []


_SHOWN: dict[str, Callable[[Record, str], list[Turn]]] = {
    "start": _start,
    "end": _end,
    "error": _error,
    "check": _check,
    "check_end": _check_end,
    "commit": _commit,
    "changes": _changes,
    "worktree": _worktree,
    "worktree_end": _worktree_end,
    "round": _round,
    "out": _out,
}
"""How each kind of transcript line is shown (the run's own lines and the agent's output)."""


def read_from(path: Path, offset: int) -> tuple[list[Turn], int]:
    """The turns of the complete lines after `offset`, and the offset after them. A file
    shorter than `offset` was started again (a new attempt): it is read from its start. Only a
    regular file is read (never through a symlink, never a FIFO); a line longer than
    `MAX_READ_BYTES` is left out, said in one turn."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return [], offset
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return [], offset
        if st.st_size < offset:
            offset = 0
        chunk = os.pread(fd, MAX_READ_BYTES, offset)
    except OSError:
        return [], offset
    finally:
        os.close(fd)
    end = chunk.rfind(b"\n") + 1
    if end == 0 and len(chunk) == MAX_READ_BYTES:  # one line longer than a whole read
        note = Turn("error", f"a line of over {MAX_READ_BYTES:,} bytes was left out", "output")
        return [note], offset + len(chunk)  # its rest is not JSON: skipped at the next read
    turns: list[Turn] = []
    for raw in chunk[:end].splitlines():
        try:
            record = json.loads(raw.decode("utf-8", errors="replace"))
        except ValueError:
            continue
        if isinstance(record, dict):
            turns.extend(turns_of(record))
    return turns, offset + end
