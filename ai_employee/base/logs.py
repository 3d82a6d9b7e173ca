"""Logging: JSON lines to `<vault>/Logs/YYYY-MM-DD.jsonl`; on the console, lines for whoever
reads them (a person at a terminal, journald, a log file, a program).

Only the entry point calls `configure_logging`; every module just does
`structlog.get_logger(__name__)` and logs events with the audit fields below.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO, cast

import structlog

from .errors import UsageError

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
    """A structlog processor that appends each event as one JSON line to the day's file.

    Each line is one `write` to a file opened for appending, under a thread lock (any thread
    may log) and an flock (the CLI's commands, other processes, append to the same file). A
    line the disk takes only in part (full) is cut off again, so the file holds whole lines
    only; while lines cannot be written, that is said on stderr once (where the same
    lines go, to the journal), and how many were missed once writing works again.
    """

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._day = ""
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._missed = 0

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        line = json.dumps(_ordered(event_dict), default=str, ensure_ascii=False) + "\n"
        day = str(event_dict.get("timestamp", ""))[:10]
        with self._lock:
            try:
                self._append(day, line.encode("utf-8"))
            except OSError as err:  # the log must never take the service down
                if not self._missed:
                    print(
                        f"ai-employee: cannot write the log in {self.logs_dir}: {err} "
                        "(said once; lines go to stderr only until it can)",
                        file=sys.stderr,
                    )
                self._missed += 1
                return event_dict
            if self._missed:
                missed, self._missed = self._missed, 0
                print(
                    f"ai-employee: the log in {self.logs_dir} is written again "
                    f"({missed} line(s) went to stderr only)",
                    file=sys.stderr,
                )
        return event_dict

    def _append(self, day: str, data: bytes) -> None:
        if day != self._day or self._fd is None:
            self._close()
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self.logs_dir / f"{day}.jsonl", flags, 0o644)
            self._day = day
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # the CLI's commands append to this file too
        try:
            size = os.fstat(self._fd).st_size
            written = os.write(self._fd, data)  # an error: nothing was written
            if written != len(data):
                os.ftruncate(self._fd, size)  # the part that fit: cut off
                raise OSError(errno.ENOSPC, "the line was written only in part")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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

ConsoleStyle = Literal["color", "plain", "journal", "json"]
"""How console lines look: for a terminal, a log file, journald, or a program reading JSON."""

JOURNAL_PRIORITIES: Mapping[str, int] = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "info": 6,
    "debug": 7,
}
"""sd-daemon(3) priority prefixes by level: journald files `<3>...` as an error."""

_COLORS: Mapping[str, str] = {
    "critical": "\x1b[1;31m",
    "exception": "\x1b[31m",
    "error": "\x1b[31m",
    "warning": "\x1b[33m",
    "info": "\x1b[32m",
    "debug": "\x1b[2m",
}
_RESET = "\x1b[0m"


def console_style(stream: TextIO, environ: Mapping[str, str]) -> ConsoleStyle:
    """journald when JOURNAL_STREAM names this very stream (sd-daemon's rule), colour on a
    terminal (unless NO_COLOR or TERM=dumb), JSON lines for anything else (a pipe, a file)."""
    if _is_journal(stream, environ.get("JOURNAL_STREAM", "")):
        return "journal"
    if stream.isatty():
        no_color = "NO_COLOR" in environ or environ.get("TERM") == "dumb"
        return "plain" if no_color else "color"
    return "json"


def _is_journal(stream: TextIO, journal_stream: str) -> bool:
    dev, _, ino = journal_stream.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def configure_logging(
    logs_dir: Path | None,
    *,
    console: TextIO | None = None,
    style: ConsoleStyle | None = None,
    level: int = logging.INFO,
    console_level: int = logging.INFO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Set up structlog once: the vault's daily JSON file (if given) and the console.

    The console's style is chosen by `console_style` unless given.
    """
    global _sink
    if _sink is not None:
        _sink.close()
    _sink = DailyJsonlSink(logs_dir) if logs_dir is not None else None
    stream = console or sys.stderr
    chosen = style or console_style(stream, os.environ if environ is None else environ)
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
    processors.append(_JsonRenderer() if chosen == "json" else _ConsoleRenderer(chosen))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Console(stream))),
        cache_logger_on_first_use=False,
    )


class _Console:
    """The console stream. A reader that goes away (a closed pipe, a full disk) ends the
    console's lines, never the service: the vault's log keeps every event."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except OSError:
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError:
                self.gone = True


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
    """A readable line for a person (see `format_line`)."""

    def __init__(self, style: ConsoleStyle) -> None:
        self.style = style

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return format_line(dict(event_dict), style=self.style)


def format_line(entry: dict[str, Any], *, style: ConsoleStyle = "plain") -> str:
    """One audit entry as a readable line (also used by `ai-employee logs`).

    `2026-12-02 14:03:05 info    run finished [k3x9p2ma] Done/x.md -> done  $0.0123 41.2 s`:
    local time with the date, the level, what happened, the task, the note, the outcome, the
    key figures (cost, duration, error) and any other fields. For journald the line starts with
    the level's priority instead of the time and the level (`<3>note refused ...`).
    """
    name = str(entry.get("level") or "info")
    shown_level = f"{name:<7}"
    if style == "color":
        shown_level = _COLORS.get(name, "") + shown_level + _RESET
    # journald keeps its own time, and shows the level from the priority prefix.
    parts = [] if style == "journal" else [_local_time(entry.get("timestamp")), shown_level]
    parts.append(str(entry.get("event", "")))
    if entry.get("task_id"):
        parts.append(f"[{entry['task_id']}]")
    if entry.get("target"):
        parts.append(str(entry["target"]))
    if entry.get("result") not in (None, ""):
        parts.append(f"-> {entry['result']}")
    figures = _figures(entry)
    if figures:
        parts.append(" " + " ".join(figures))
    if entry.get("error"):
        parts.append(f" error: {entry['error']}")
    skip = {*AUDIT_FIELDS}
    extra = [f"{k}={v}" for k, v in entry.items() if k not in skip and v not in (None, "", [], {})]
    line = " ".join(p for p in parts if p) + ("  " + " ".join(extra) if extra else "")
    if style == "journal":  # journald files each line by its own prefix (a traceback has many)
        return journal_lines(line, JOURNAL_PRIORITIES.get(name, 6))
    return line


def journal_lines(text: str, priority: int) -> str:
    """`text` with the sd-daemon priority prefix on each of its lines."""
    return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


def _local_time(timestamp: object) -> str:
    """An ISO timestamp (we write UTC) as local time with the date; as given if not ISO."""
    text = str(timestamp or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}"
    except (OverflowError, ValueError):  # year 1 or 9999 moved into the local zone
        return text


def _figures(entry: dict[str, Any]) -> list[str]:
    """The numbers a person looks for first: what a run cost and how long it took."""
    parameters = entry.get("parameters")
    if not isinstance(parameters, dict):
        return []
    shown = []
    cost = parameters.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        shown.append(f"${cost:.4f}")
    duration = parameters.get("duration_s")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        shown.append(f"{duration:.1f} s")
    return shown


LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
"""`--log-file`: past this size the file becomes `<name>.1` (the one older file kept)."""


class CappedLogFile:
    """The service's own console log where no manager rotates it (launchd's StandardOutPath).

    Points the process's stdout and stderr at `path` (so a traceback lands there too) and keeps
    it under `max_bytes`: past that, at a start or a write, it becomes `path.1` and a new file
    begins. Written by whichever thread logs; each write is one `os.write` on fd 2.
    """

    def __init__(self, path: Path, max_bytes: int = LOG_FILE_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._at_line_start = True
        try:
            self._point_at_file()
        except OSError as err:
            raise UsageError(f"cannot open the log file {path}: {err}") from err

    def _point_at_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size >= self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            for std in (1, 2):
                os.dup2(fd, std)  # inheritable: what an agent prints unasked lands here too
        finally:
            os.close(fd)

    def write(self, text: str) -> int:
        """One write; the file moves aside first when it is full and a new line begins (a
        line is never split between the two files). A write that fails (a full disk) is
        dropped: the console must never take the service down, the vault's log has it all."""
        try:
            if self._at_line_start and os.fstat(2).st_size >= self.max_bytes:
                self._point_at_file()
            os.write(2, text.encode("utf-8", errors="replace"))
            self._at_line_start = text.endswith("\n")
        except OSError:
            pass
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 2


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
