"""Permission requests: what Claude Code asked for and was refused, as rules a person can grant.

A run in a permission mode that does not allow a tool ends with `permission_denials`, one per
refused call: `{"tool_name": "Bash", "tool_input": {"command": "npm install"}, ...}`. Each
becomes an `Ask`: the tool, what it wanted (shown to the person), and the narrowest rule that
allows exactly that call on the resumed session (one `--allowedTools` flag each). Checked with
the real CLI 2.1.328 (and by the tests with 2.1.337, the pin now): `Bash(<command>)` allows
that command and no other; `Edit(//<abs path>)` allows writing that one file (a `Write(...)`
rule with a path does not); a bare tool name allows the tool everywhere, so it is only used
for tools with no narrower rule. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .base import Ask

FILE_WRITERS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
"""Tools whose calls are allowed per file by an `Edit(//path)` rule."""

FILE_READERS = frozenset({"Read", "Glob", "Grep", "LS"})
"""Tools whose calls are allowed per file or folder by a `Read(//path)` rule."""


def ask_for(tool: str, tool_input: Mapping[str, Any]) -> Ask:
    """The ask for one refused call, with the narrowest rule that allows it."""
    if tool == "Bash":
        command = str(tool_input.get("command") or "").strip()
        if command and "\n" not in command:
            return Ask(tool, command, f"Bash({command})")
        return Ask(tool, command or "(no command)", "Bash")
    path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
    if tool in FILE_WRITERS and path.startswith("/"):
        return Ask(tool, path, f"Edit(/{path})")
    if tool in FILE_READERS:
        where = path or str(tool_input.get("path") or "")
        if where.startswith("/"):
            return Ask(tool, where, f"Read(/{where})")
    if tool == "WebFetch":
        url = str(tool_input.get("url") or "")
        host = urlsplit(url).hostname
        if host:
            return Ask(tool, url, f"WebFetch(domain:{host})")
    shown = json.dumps(dict(tool_input), ensure_ascii=False, default=str)
    return Ask(tool, shown if len(shown) <= 300 else shown[:297] + "...", tool)


def asks_from(denials: Iterable[Any]) -> tuple[Ask, ...]:
    """The asks in a result's `permission_denials`, one per rule, in the order asked."""
    seen: dict[str, Ask] = {}
    for denial in denials:
        if not isinstance(denial, Mapping):
            continue
        tool = str(denial.get("tool_name") or "").strip()
        if not tool:
            continue
        tool_input = denial.get("tool_input")
        ask = ask_for(tool, tool_input if isinstance(tool_input, Mapping) else {})
        seen.setdefault(ask.rule, ask)
    return tuple(seen.values())
