"""The audit log (`Logs/YYYY-MM-DD.jsonl`) for the page: newest first, filtered. Reading only."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logs import format_line

MAX_ENTRIES = 500
"""The log page shows at most this many entries (the newest)."""

LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogFilters:
    task: str = ""
    action: str = ""
    level: str = ""

    @classmethod
    def from_query(cls, query: Any) -> LogFilters:
        def get(name: str) -> str:
            return str(query.get(name) or "").strip()[:100]

        level = get("level")
        return cls(get("task"), get("action"), level if level in LEVELS else "")

    def keep(self, entry: dict[str, Any]) -> bool:
        if self.task and entry.get("task_id") != self.task:
            return False
        if self.action and entry.get("action_type") != self.action:
            return False
        if self.level:  # this level and above
            level = str(entry.get("level") or "info")
            if level in LEVELS and LEVELS.index(level) < LEVELS.index(self.level):
                return False
        return True


@dataclass(frozen=True)
class LogLine:
    entry: dict[str, Any]
    text: str

    @property
    def level(self) -> str:
        return str(self.entry.get("level") or "info")


def newest(logs_dir: Path, filters: LogFilters, limit: int = MAX_ENTRIES) -> list[LogLine]:
    """The newest entries that pass the filters, newest first."""
    lines: list[LogLine] = []
    for entry in _backwards(logs_dir):
        if filters.keep(entry):
            lines.append(LogLine(entry, format_line(entry)))
            if len(lines) >= limit:
                break
    return lines


TAIL_BYTES = 64 * 1024


def last_entry(logs_dir: Path) -> dict[str, Any] | None:
    """The newest entry of the log (the service's last word), if any: read from the end of
    the newest day's file, whatever its size."""
    try:
        files = sorted(logs_dir.glob("????-??-??.jsonl"), reverse=True)
    except OSError:
        return None
    for path in files:
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - TAIL_BYTES))
                tail = handle.read()
        except OSError:
            continue
        for raw in reversed(tail.splitlines()):
            entry = _parse(raw)
            if entry is not None:
                return entry
    return None


def actions(logs_dir: Path, scan: int = 2000) -> list[str]:
    """The action types seen among the newest entries (the filter's choices)."""
    seen: set[str] = set()
    for i, entry in enumerate(_backwards(logs_dir)):
        if i >= scan:
            break
        if isinstance(entry.get("action_type"), str):
            seen.add(entry["action_type"])
    return sorted(seen)


def _backwards(logs_dir: Path) -> Iterator[dict[str, Any]]:
    try:
        files = sorted(logs_dir.glob("????-??-??.jsonl"), reverse=True)
    except OSError:
        return
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for raw in reversed(data.splitlines()):
            entry = _parse(raw)
            if entry is not None:
                yield entry


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
