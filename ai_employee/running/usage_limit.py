"""Usage limits: when Claude Code says a plan's limit is reached, every claude run waits.

A subscription (a Claude Code login, `CLAUDE_CODE_OAUTH_TOKEN`) has 5-hour and weekly limits.
When one is reached the CLI prints a `rate_limit_event` whose `rate_limit_info.status` is
`rejected`, with `resetsAt` (epoch seconds) and `rateLimitType` (`five_hour`, `seven_day`...),
then ends with "You've hit your 5-hour limit · resets 8:13pm (UTC)". `Pause` is what the service
holds then: no claude run starts before `until`. The parsing here is pure; `load_pause` and
`save_pause` keep the pause in `.ai-employee/usage_limit.json` so a restart during the pause
waits too. See docs/research/claude-code-cli.md (usage limits) for what the CLI prints.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..base import fsops

LIMIT_NAMES: Mapping[str, str] = {
    "five_hour": "5-hour limit",
    "seven_day": "weekly limit",
    "seven_day_opus": "weekly Opus limit",
    "seven_day_sonnet": "weekly Sonnet limit",
}
"""How a person reads the CLI's `rateLimitType`."""

MIN_PAUSE = timedelta(seconds=5)
"""The shortest pause: a reset already past by this machine's clock (one ahead of the API's)
waits this long, so a limit that holds is never tried again in a tight loop."""

PAUSE_FILE = "usage_limit.json"
"""In `.ai-employee/`: the pause a running service holds (absent when there is none)."""

_MESSAGE = re.compile(
    r"hit your (?P<limit>.+?) limit\W+resets (?P<hour>\d{1,2})(?::(?P<minute>\d\d))?\s*"
    r"(?P<ampm>am|pm)?(?:\s*\((?P<zone>[^)]+)\))?",
    re.IGNORECASE,
)


def limit_name(rate_limit_type: object) -> str:
    """`five_hour` -> "5-hour limit"; an unknown type is named as it is."""
    text = str(rate_limit_type or "").strip()
    if not text:
        return "usage limit"
    return LIMIT_NAMES.get(text, f"{text.replace('_', ' ')} limit")


def reset_from_event(info: Mapping[str, Any]) -> datetime | None:
    """`resetsAt` of a `rate_limit_info` (epoch seconds) as an aware time, if it has one."""
    resets = info.get("resetsAt")
    if isinstance(resets, bool) or not isinstance(resets, int | float) or resets <= 0:
        return None
    try:
        return datetime.fromtimestamp(float(resets), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_limit_message(text: str, now: datetime) -> tuple[datetime, str] | None:
    """The reset time and limit name in "You've hit your 5-hour limit · resets 8:13pm (UTC)",
    when that message is all there is: the next such time, in the zone it names (UTC when none
    or an unknown one); a time less than an hour past is `now` (the message is to the minute)."""
    match = _MESSAGE.search(text)
    if match is None:
        return None
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    ampm = (match["ampm"] or "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone: Any = UTC
    if match["zone"]:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(match["zone"].strip())
    local_now = now.astimezone(zone)
    reset = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if reset <= local_now - timedelta(hours=1):  # printed to the minute: a time just past is
        reset += timedelta(days=1)  # this one (now), not tomorrow's
    reset = max(reset, local_now)
    limit = match["limit"].strip().lower()
    return reset.astimezone(UTC), limit if limit.endswith("limit") else f"{limit} limit"


def local_time(when: datetime, now: datetime) -> str:
    """A reset time as a person reads it, in this machine's zone, to the minute (rounded up:
    nothing starts before it): "20:13 UTC", or with the date when it is not today
    ("Tue 8 Dec 20:13 UTC")."""
    if when.second or when.microsecond:
        when = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
    local = when.astimezone()
    zone = local.tzname() or ""
    if local.date() == now.astimezone().date():
        return f"{local:%H:%M} {zone}".strip()
    return f"{local:%a} {local.day} {local:%b %H:%M} {zone}".strip()


@dataclass(frozen=True)
class Pause:
    """No claude run starts before `until`: the `limit` was reached (by `task_id`'s run)."""

    until: datetime
    limit: str
    task_id: str = ""

    def holds(self, now: datetime) -> bool:
        return now < self.until

    def says(self, now: datetime) -> str:
        """ "paused until 20:13 UTC (5-hour limit)": on the dashboard, `status`, the web page."""
        return f"paused until {local_time(self.until, now)} ({self.limit})"

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until.isoformat(), "limit": self.limit, "task_id": self.task_id}

    @classmethod
    def from_json(cls, data: object) -> Pause | None:
        if not isinstance(data, dict):
            return None
        try:
            until = datetime.fromisoformat(str(data["until"]))
        except (KeyError, ValueError):
            return None
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        return cls(until, str(data.get("limit") or "usage limit"), str(data.get("task_id") or ""))


def pause_file(machinery: Path) -> Path:
    return machinery / PAUSE_FILE


def load_pause(machinery: Path, now: datetime) -> Pause | None:
    """The pause a service left, if it still holds (an unreadable file is no pause)."""
    try:
        data = json.loads(fsops.read_plain_text(pause_file(machinery)))
    except (OSError, ValueError):
        return None
    pause = Pause.from_json(data)
    return pause if pause is not None and pause.holds(now) else None


def save_pause(machinery: Path, tmp: Path, pause: Pause | None) -> None:
    """Write the pause (atomically), or remove the file when there is none. Main loop only."""
    path = pause_file(machinery)
    if pause is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    text = json.dumps(pause.to_json(), indent=1) + "\n"
    fsops.write_atomic(path, text.encode("utf-8"), tmp, durable=False)
