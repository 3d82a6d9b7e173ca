"""Recurring tasks, the pure part: a series' rules, its times, and what is due at a moment.

A series note in Recurring/ says `every:` (a 5-field cron expression, `@hourly`, `@daily`,
`@weekly`, `@monthly`, `@yearly`, or an interval: `30s`, `30m`, `2h`, `1d`, at least 10 s), and
optionally `timezone:` (IANA; default the machine's), `catch_up:` and `overlap:`. `due` decides,
from the series' recorded next time and a clock reading, which occurrences to write now and the
next time; nothing here reads a file or a clock. Cron expressions are read by cronsim (Vixie
cron's rules on daylight-saving days: a time the clocks skip runs once, just after the jump; a
time the clocks repeat runs once). All times handed out are aware, in UTC.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..base.errors import NoteRefused

MIN_INTERVAL = timedelta(seconds=10)
"""The shortest `every:` interval."""

MAX_INTERVAL = timedelta(days=366)
"""The longest (a yearly time is `@yearly`)."""

MAX_CATCH_UP = 100
"""With `catch_up: all`, at most this many missed occurrences are written at once (the latest)."""

ON_TIME = timedelta(seconds=60)
"""With `catch_up: none`, an occurrence written at most this late is on time, not missed."""

MAX_STEPS = 20_000
"""Cron times walked at most to find the missed ones (two weeks of every minute: past
this, the count of missed ones is a lower bound and the latest is found backwards)."""

CATCH_UP = ("latest", "all", "none")
OVERLAP = ("skip", "queue")

NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_INTERVAL = re.compile(r"(\d{1,9})\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}

SERIES_KEYS = ("every", "timezone", "catch_up", "overlap", "paused")
"""A series note's own keys (a person's); the rest of its person keys go to each occurrence."""


@dataclass(frozen=True)
class Every:
    """When a series comes back: an interval, or a cron expression in a time zone."""

    text: str
    interval: timedelta | None = None
    cron: str | None = None

    def after(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first time strictly after `moment` (UTC)."""
        if self.interval is not None:
            return (moment + self.interval).astimezone(UTC)
        return next(self.times_after(moment, zone))

    def times_after(self, moment: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """The cron times strictly after `moment`, in order (UTC)."""
        start = moment.astimezone(zone).replace(microsecond=0)
        return (t for t in self._times(start) if t > moment)

    def latest_times(self, moment: datetime, zone: ZoneInfo, n: int) -> list[datetime]:
        """The last `n` cron times at or before `moment`, oldest first (UTC)."""
        assert self.cron is not None
        start = moment.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1)
        found: list[datetime] = []
        for t in CronSim(self.cron, start, reverse=True):
            at = t.astimezone(UTC)
            if at <= moment and at not in found:
                found.append(at)
            if len(found) == n:
                break
        return found[::-1]

    def _times(self, start: datetime) -> Iterator[datetime]:
        return (t.astimezone(UTC) for t in CronSim(self.cron or "", start))


def parse_every(value: object) -> Every:
    """`every:` as the note says it; NoteRefused with what is wrong and what is taken."""
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise NoteRefused(
            "`every:` is missing or empty; give a cron expression (`0 8 * * 1`), @hourly, "
            "@daily, @weekly, @monthly, or an interval (`30s`, `30m`, `2h`, `1d`)"
        )
    text = " ".join(str(value).split())
    if match := _INTERVAL.fullmatch(text):
        interval = timedelta(seconds=int(match[1]) * _UNIT[match[2]])
        if interval < MIN_INTERVAL:
            raise NoteRefused(f"`every: {text}` is shorter than 10s")
        if interval > MAX_INTERVAL:
            raise NoteRefused(f"`every: {text}` is longer than 366d; for a yearly time: @yearly")
        return Every(text, interval=interval)
    cron = NICKNAMES.get(text.lower(), text)
    if text.startswith("@") and cron == text:
        raise NoteRefused(f"`every: {text}` is not one of {', '.join(sorted(NICKNAMES))}")
    if len(cron.split()) != 5:
        raise NoteRefused(
            f"`every: {text}` is neither an interval (`30s`, `30m`, `2h`, `1d`) nor a cron "
            f"expression of 5 fields (minute hour day month weekday), e.g. `0 8 * * 1`"
        )
    try:
        CronSim(cron, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as err:
        raise NoteRefused(
            f"`every: {text}` is not a cron expression cronsim reads: {err}"
        ) from None
    return Every(text, cron=cron)


def parse_zone(value: object, default: ZoneInfo) -> ZoneInfo:
    """`timezone:` (an IANA name such as `Europe/Berlin`), else `default`."""
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise NoteRefused(f"`timezone: {value!r}` is not an IANA time zone name (Europe/Berlin)")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise NoteRefused(
            f"`timezone: {value}` is not an IANA time zone name (Europe/Berlin, UTC)"
        ) from None


def machine_zone() -> ZoneInfo:
    """The machine's time zone by its IANA name: `TZ`, else /etc/localtime's target, else UTC."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = str(Path("/etc/localtime").resolve())
        names.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    except OSError:
        pass
    for name in names:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _choice(value: object, key: str, allowed: tuple[str, ...]) -> str:
    if value is None or value == "":
        return allowed[0]
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise NoteRefused(f"`{key}: {value}` is not one of {' | '.join(allowed)}")
    return value.strip().lower()


@dataclass(frozen=True)
class Rules:
    """A series note's rules, checked."""

    every: Every
    zone: ZoneInfo
    catch_up: str = "latest"
    overlap: str = "skip"
    paused: bool = False


def parse_rules(meta: Mapping[str, object], default_zone: ZoneInfo) -> Rules:
    """A series note's rules from its frontmatter; NoteRefused names the first bad key."""
    paused = meta.get("paused", False)
    if paused not in (None, True, False):
        raise NoteRefused(f"`paused: {paused}` is not true or false")
    return Rules(
        every=parse_every(meta.get("every")),
        zone=parse_zone(meta.get("timezone"), default_zone),
        catch_up=_choice(meta.get("catch_up"), "catch_up", CATCH_UP),
        overlap=_choice(meta.get("overlap"), "overlap", OVERLAP),
        paused=bool(paused),
    )


@dataclass(frozen=True)
class Due:
    """What a series does now."""

    write: tuple[datetime, ...] = ()
    """The occurrences to write now, oldest first."""
    missed: int = 0
    """Occurrences between the recorded next time and now not written (the catch-up rule)."""
    next_at: datetime | None = None
    """The next time (None: paused)."""


def due(rules: Rules, next_at: datetime | None, now: datetime) -> Due:
    """What is due at `now` for a series whose recorded next time is `next_at` (None: a new
    series, or one just unpaused: it begins after now, no catch-up)."""
    if rules.paused:
        return Due()
    if next_at is None:
        return Due(next_at=rules.every.after(now, rules.zone))
    if now < next_at:
        return Due(next_at=next_at)
    times, total = _times_between(rules, next_at, now)
    latest = times[-1]
    if rules.catch_up == "all":
        write = tuple(times[-MAX_CATCH_UP:])
    elif rules.catch_up == "none":
        write = (latest,) if now - latest <= ON_TIME else ()
    else:
        write = (latest,)
    return Due(write, total - len(write), rules.every.after(latest, rules.zone))


def _times_between(rules: Rules, first: datetime, now: datetime) -> tuple[list[datetime], int]:
    """The times from `first` (a time of the series) to `now`: the latest MAX_CATCH_UP of
    them, oldest first, and how many there are (a lower bound past MAX_STEPS)."""
    every = rules.every
    if every.interval is not None:
        count = int((now - first) / every.interval) + 1
        start = max(0, count - MAX_CATCH_UP)
        return [first + k * every.interval for k in range(start, count)], count
    kept: list[datetime] = [first]
    count = 1
    for moment in every.times_after(first, rules.zone):
        if moment > now:
            return kept, count
        kept.append(moment)
        count += 1
        if len(kept) > MAX_CATCH_UP:
            del kept[0]
        if count >= MAX_STEPS:
            break
    # Too many to walk: the latest ones, found walking back from now (the count a lower bound).
    latest = every.latest_times(now, rules.zone, MAX_CATCH_UP)
    return latest, max(count + 1, len(latest))
