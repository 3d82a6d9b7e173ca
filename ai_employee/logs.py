"""Logging: JSON lines to `<vault>/Logs/YYYY-MM-DD.jsonl`, readable lines on a terminal.

Only the entry point calls `configure_logging`; every module just does
`structlog.get_logger(__name__)` and logs events with the audit fields below.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog

AUDIT_FIELDS: tuple[str, ...] = (
    "timestamp",
    "level",
    "event",
    "action_type",
    "actor",
    "target",
    "task_id",
    "parameters",
    "approval_status",
    "approved_by",
    "result",
    "error",
)
"""Every line of the audit log has these keys (null when they do not apply), then any others."""

SERVICE_ACTOR = "ai-employee"
"""The actor of what the service does by itself."""


def os_user() -> str:
    """The person running a command: the actor of vault-editing commands and approvals."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def log_path(logs_dir: Path, day: datetime) -> Path:
    return logs_dir / f"{day.astimezone(UTC):%Y-%m-%d}.jsonl"


class DailyJsonlSink:
    """A structlog processor that appends each event as one JSON line to the day's file."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._day = ""
        self._file: TextIO | None = None

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        line = json.dumps(_ordered(event_dict), default=str, ensure_ascii=False)
        day = str(event_dict.get("timestamp", ""))[:10]
        try:
            if day != self._day or self._file is None:
                self.close()
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                self._file = (self.logs_dir / f"{day}.jsonl").open("a", encoding="utf-8")
                self._day = day
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as err:  # the log must never take the service down
            print(f"ai-employee: cannot write the log in {self.logs_dir}: {err}", file=sys.stderr)
        return event_dict

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _ordered(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    out = {key: event_dict.get(key) for key in AUDIT_FIELDS}
    out.update((k, v) for k, v in event_dict.items() if k not in out)
    return out


def _audit_defaults(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("actor", SERVICE_ACTOR)
    event_dict.setdefault("action_type", event_dict.get("event"))
    return event_dict


_sink: DailyJsonlSink | None = None


def configure_logging(
    logs_dir: Path | None,
    *,
    console: TextIO | None = None,
    json_console: bool | None = None,
    level: int = logging.INFO,
    console_level: int = logging.INFO,
) -> None:
    """Set up structlog once: the vault's daily JSON file (if given) and the console."""
    global _sink
    if _sink is not None:
        _sink.close()
    _sink = DailyJsonlSink(logs_dir) if logs_dir is not None else None
    stream = console or sys.stderr
    as_json = json_console if json_console is not None else not stream.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _audit_defaults,
        structlog.processors.format_exc_info,
    ]
    if _sink is not None:
        processors.append(_sink)
    processors.append(_ConsoleFilter(console_level))
    if as_json:
        processors.append(_JsonRenderer())
    else:
        processors.append(_ConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


class _ConsoleFilter:
    """Drops events below the console's level (the vault's file has already kept them)."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        name = str(event_dict.get("level", "info")).upper()
        if logging.getLevelNamesMapping().get(name, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event_dict


class _JsonRenderer:
    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return json.dumps(_ordered(event_dict), default=str, ensure_ascii=False)


class _ConsoleRenderer:
    """`HH:MM:SS level event task target result key=value...`, for a person at a terminal."""

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return format_line(dict(event_dict))


def format_line(entry: dict[str, Any]) -> str:
    """One audit entry as a readable line (also used by `ai-employee logs`)."""
    ts = str(entry.get("timestamp") or "")
    shown_time = ts[11:19] if len(ts) >= 19 else ts
    parts = [shown_time, f"{entry.get('level', 'info'):<7}", str(entry.get("event", ""))]
    if entry.get("task_id"):
        parts.append(f"[{entry['task_id']}]")
    if entry.get("target"):
        parts.append(str(entry["target"]))
    if entry.get("result") not in (None, ""):
        parts.append(f"-> {entry['result']}")
    if entry.get("error"):
        parts.append(f"error: {entry['error']}")
    skip = {*AUDIT_FIELDS}
    extra = [f"{k}={v}" for k, v in entry.items() if k not in skip and v not in (None, "", [], {})]
    return " ".join(p for p in parts if p) + ("  " + " ".join(extra) if extra else "")


def iter_log_entries(logs_dir: Path) -> Iterator[dict[str, Any]]:
    """Every entry of the daily logs, oldest first. Lines that are not JSON are skipped."""
    if not logs_dir.is_dir():
        return
    for path in sorted(logs_dir.glob("????-??-??.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                entry = _parse(line)
                if entry is not None:
                    yield entry


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def remove_old_logs(logs_dir: Path, retention_days: int, now: datetime) -> list[Path]:
    """Delete daily logs older than the retention; returns what it removed."""
    removed = []
    cutoff = now.astimezone(UTC).date().toordinal() - retention_days
    for path in logs_dir.glob("????-??-??.jsonl"):
        try:
            day = datetime.strptime(path.stem, "%Y-%m-%d").date().toordinal()
        except ValueError:
            continue
        if day < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def follow_entries(
    logs_dir: Path, *, poll_seconds: float = 0.2, stop: Callable[[], bool] = lambda: False
) -> Iterator[dict[str, Any]]:
    """Every entry, then each new one as it is appended, across the daily file changing."""
    current: Path | None = None
    offset = 0
    while not stop():
        files = sorted(logs_dir.glob("????-??-??.jsonl"))
        for path in files:
            if current is None or path.name > current.name:
                if current is not None:
                    yield from _read_from(current, offset)[0]  # the rest of yesterday's file
                current, offset = path, 0
                if path != files[-1]:
                    yield from _read_from(path, 0)[0]
        if current is None:
            time.sleep(poll_seconds)
            continue
        entries, offset = _read_from(current, offset)
        yield from entries
        if not entries:
            time.sleep(poll_seconds)


def _read_from(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete lines of `path` from `offset`, and the offset after them."""
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    lines = complete.decode("utf-8", errors="replace").splitlines()
    return [e for e in map(_parse, lines) if e is not None], offset + len(complete)


def cost_on(logs_dir: Path, day: datetime) -> float:
    """What runs recorded as cost on a UTC day (`run finished` entries of that day's log)."""
    path = log_path(logs_dir, day)
    total = 0.0
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if '"run finished"' not in line:
                    continue
                entry = _parse(line)
                cost = ((entry or {}).get("parameters") or {}).get("cost_usd")
                if isinstance(cost, int | float):
                    total += float(cost)
    except FileNotFoundError:
        return 0.0
    return total
