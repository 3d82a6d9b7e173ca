"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import TypeVar

from ai_employee.notes.taskfile import OWNED_KEYS

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines only in `before` and lines only in `after`, by a line diff that keeps line endings."""
    removed, added = [], []
    matcher = difflib.SequenceMatcher(
        a=before.splitlines(keepends=True), b=after.splitlines(keepends=True), autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += matcher.a[i1:i2]
        if tag in ("replace", "insert"):
            added += matcher.b[j1:j2]
    return removed, added


def is_owned_line(line: str) -> bool:
    stripped = line.lstrip("\ufeff")
    return any(stripped.startswith(f"{key}:") for key in OWNED_KEYS)


def owned_block_lines(text: str) -> set[str]:
    """Lines of `text` that belong to our keys: a `key:` line plus its indented continuation."""
    lines, inside = set(), False
    for line in text.splitlines(keepends=True):
        if is_owned_line(line):
            inside = True
            lines.add(line)
        elif inside and line[:1] in (" ", "\t") and line.strip():
            lines.add(line)
        else:
            inside = False
    return lines
