"""The audit log (`Logs/YYYY-MM-DD.jsonl`) for the page: newest first, filtered. Reading only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...base import fsops
from ...base.logs import format_line

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
MAX_DAY_BYTES = 64 * 1024 * 1024
"""The log page reads at most this much of one day's file (its end)."""


def last_entry(logs_dir: Path) -> dict[str, Any] | None:
    """The newest entry of the log (the service's last word), if any: read from the end of
    the newest day's file, whatever its size."""
    return next(_backwards(logs_dir, TAIL_BYTES), None)


def actions(logs_dir: Path, scan: int = 2000) -> list[str]:
    """The action types seen among the newest entries (the filter's choices)."""
    seen: set[str] = set()
    for i, entry in enumerate(_backwards(logs_dir)):
        if i >= scan:
            break
        if isinstance(entry.get("action_type"), str):
            seen.add(entry["action_type"])
    return sorted(seen)


def _backwards(logs_dir: Path, per_day: int = MAX_DAY_BYTES) -> Iterator[dict[str, Any]]:
    """Entries newest first, from the last `per_day` bytes of each day's file."""
    try:
        files = sorted(logs_dir.glob("????-??-??.jsonl"), reverse=True)
    except OSError:
        return
    for path in files:
        data = fsops.read_regular(path, per_day, from_end=True)
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
