"""Recurring tasks, the pure part: `every:`, the rules, and what is due at a moment (a clock moved
by hand; no time passes here)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_employee.base.errors import NoteRefused
from ai_employee.notes.schedule import (
    MAX_CATCH_UP,
    ON_TIME,
    Rules,
    due,
    parse_every,
    parse_rules,
    parse_zone,
)

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def rules(every: str, zone: ZoneInfo = UTC_ZONE, **keys: object) -> Rules:
    return parse_rules({"every": every, **keys}, zone)


@pytest.mark.parametrize(
    ("text", "interval", "cron"),
    [
        ("30s", timedelta(seconds=30), None),
        ("10s", timedelta(seconds=10), None),
        ("30m", timedelta(minutes=30), None),
        ("2h", timedelta(hours=2), None),
        ("1d", timedelta(days=1), None),
        ("0 8 * * 1", None, "0 8 * * 1"),
        ("  */15   9-17 * * 1-5 ", None, "*/15 9-17 * * 1-5"),
        ("@hourly", None, "0 * * * *"),
        ("@daily", None, "0 0 * * *"),
        ("@weekly", None, "0 0 * * 0"),
        ("@monthly", None, "0 0 1 * *"),
        ("@Yearly", None, "0 0 1 1 *"),
    ],
)
def test_every_reads_intervals_cron_and_nicknames(
    text: str, interval: timedelta | None, cron: str | None
) -> None:
    every = parse_every(text)
    assert (every.interval, every.cron) == (interval, cron)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "`every:` is missing or empty"),
        ("", "`every:` is missing or empty"),
        (True, "`every:` is missing or empty"),
        ("9s", "shorter than 10s"),
        ("0s", "shorter than 10s"),
        ("9999999d", "longer than 366d; for a yearly time: @yearly"),
        ("@sometimes", "is not one of @annually, @daily"),
        ("0 8 * *", "nor a cron expression of 5 fields"),
        ("0 0 8 * * 1", "nor a cron expression of 5 fields"),  # cronsim takes seconds; we do not
        ("61 8 * * *", "is not a cron expression"),
        ("0 8 * * funday", "is not a cron expression"),
        ("every monday", "nor a cron expression of 5 fields"),
    ],
)
def test_a_bad_every_is_refused_saying_what_is_taken(value: object, says: str) -> None:
    with pytest.raises(NoteRefused, match=says):
        parse_every(value)


def test_the_other_keys_are_checked_too() -> None:
    assert parse_zone(None, BERLIN) is BERLIN
    assert parse_zone("America/New_York", UTC_ZONE) == ZoneInfo("America/New_York")
    for bad in ("Mars/Olympus", "../etc/passwd", 3):
        with pytest.raises(NoteRefused, match="IANA time zone"):
            parse_zone(bad, UTC_ZONE)
    with pytest.raises(
        NoteRefused, match=re.escape("`catch_up: sometimes` is not one of latest | all | none")
    ):
        rules("1h", catch_up="sometimes")
    with pytest.raises(NoteRefused, match=re.escape("`overlap: wait` is not one of skip | queue")):
        rules("1h", overlap="wait")
    with pytest.raises(NoteRefused, match="paused: yes please"):
        rules("1h", paused="yes please")
    assert rules("1h").catch_up == "latest" and rules("1h").overlap == "skip"
    assert rules("1h", paused=True).paused


def test_a_new_series_begins_after_now_without_catching_up() -> None:
    assert due(rules("0 8 * * *"), None, T0) == due(rules("0 8 * * *"), None, T0)
    first = due(rules("0 8 * * *"), None, T0)
    assert first.write == () and first.next_at == T0 + timedelta(days=1)  # 08:00 is now: next
    assert due(rules("30m"), None, T0).next_at == T0 + timedelta(minutes=30)


def test_nothing_is_due_before_the_time_and_the_time_itself_is_due() -> None:
    r = rules("0 8 * * *")
    nxt = T0 + timedelta(days=1)
    assert due(r, nxt, nxt - timedelta(seconds=1)).write == ()
    at = due(r, nxt, nxt)
    assert at.write == (nxt,) and at.missed == 0 and at.next_at == nxt + timedelta(days=1)


@pytest.mark.parametrize(
    ("catch_up", "written", "missed"),
    [("latest", [4], 4), ("all", [0, 1, 2, 3, 4], 0), ("none", [], 5)],
)
def test_missed_times_follow_catch_up(catch_up: str, written: list[int], missed: int) -> None:
    r = rules("0 8 * * *", catch_up=catch_up)
    days = [T0 + timedelta(days=d) for d in range(5)]
    decision = due(r, days[0], days[4] + timedelta(hours=3))  # down for four days and 3 h
    assert decision.write == tuple(days[i] for i in written)
    assert decision.missed == missed and decision.next_at == days[4] + timedelta(days=1)


def test_catch_up_none_still_writes_an_occurrence_that_is_on_time() -> None:
    r = rules("0 8 * * *", catch_up="none")
    assert due(r, T0, T0 + ON_TIME).write == (T0,)
    assert due(r, T0, T0 + ON_TIME + timedelta(seconds=1)).write == ()


def test_catch_up_all_writes_at_most_the_latest_hundred() -> None:
    r = rules("1h", catch_up="all")
    decision = due(r, T0, T0 + timedelta(hours=499))
    assert len(decision.write) == MAX_CATCH_UP and decision.write[-1] == T0 + timedelta(hours=499)
    assert decision.missed == 500 - MAX_CATCH_UP


def test_a_year_asleep_with_every_minute_finds_the_latest_quickly() -> None:
    r = rules("* * * * *")
    now = T0 + timedelta(days=365, seconds=30)
    decision = due(r, T0, now)
    assert decision.write == (T0 + timedelta(days=365),)
    assert decision.next_at == T0 + timedelta(days=365, minutes=1)


def test_a_daily_0230_on_the_day_the_clocks_skip_it_runs_once_just_after_the_jump() -> None:
    """Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist."""
    r = rules("30 2 * * *", BERLIN)
    before = datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    nxt = due(r, None, before).next_at
    assert nxt is not None
    assert nxt.astimezone(BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"  # once, at 03:00
    then = due(r, nxt, nxt + timedelta(minutes=5))
    assert then.write == (nxt,) and then.missed == 0
    assert then.next_at is not None
    assert then.next_at.astimezone(BERLIN).isoformat() == "2026-03-30T02:30:00+02:00"


def test_a_time_the_clocks_repeat_runs_once() -> None:
    """Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice."""
    r = rules("30 2 * * *", BERLIN)
    eve = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN).astimezone(UTC)
    first = due(r, None, eve).next_at
    assert first is not None and first.astimezone(BERLIN).isoformat() == "2026-10-25T02:30:00+02:00"
    after_both = datetime(2026, 10, 25, 4, 0, tzinfo=BERLIN).astimezone(UTC)
    decision = due(r, first, after_both)
    assert decision.write == (first,) and decision.missed == 0
    assert decision.next_at is not None
    assert decision.next_at.astimezone(BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"


def test_an_interval_keeps_its_rhythm_across_a_catch_up() -> None:
    r = rules("30m")
    decision = due(r, T0, T0 + timedelta(minutes=95))
    assert decision.write == (T0 + timedelta(minutes=90),) and decision.missed == 3
    assert decision.next_at == T0 + timedelta(minutes=120)


@settings(max_examples=150, deadline=None)
@given(
    every=st.sampled_from(["10s", "45s", "7m", "1h", "*/5 * * * *", "0 8 * * 1-5", "30 2 * * *"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    catch_up=st.sampled_from(["latest", "all", "none"]),
    steps=st.lists(st.integers(min_value=0, max_value=3 * 86400), min_size=1, max_size=25),
)
def test_a_clock_moved_by_any_steps_writes_each_time_at_most_once_in_order(
    every: str, zone: str, catch_up: str, steps: list[int]
) -> None:
    r = rules(every, ZoneInfo(zone), catch_up=catch_up)
    now = datetime(2026, 3, 27, 23, 59, 58, tzinfo=UTC)  # a week with both kinds of DST jump
    next_at = due(r, None, now).next_at
    written: list[datetime] = []
    for step in steps:
        now += timedelta(seconds=step)
        decision = due(r, next_at, now)
        assert all(t <= now for t in decision.write)
        assert decision.next_at is not None and decision.next_at > now
        if decision.write:
            assert not written or decision.write[0] > written[-1]
        written += decision.write
        if next_at is not None and next_at <= now and catch_up != "none":
            assert decision.write, "a time that came is written (latest, all) or missed (none)"
        next_at = decision.next_at
    assert written == sorted(set(written))


def test_catch_up_all_after_a_long_sleep_writes_the_latest_hundred() -> None:
    r = rules("* * * * *", catch_up="all")
    now = T0 + timedelta(days=365, seconds=30)
    decision = due(r, T0, now)
    last = T0 + timedelta(days=365)
    assert decision.write == tuple(last - timedelta(minutes=99 - i) for i in range(100))
    assert decision.missed >= 20_000 - 100  # a lower bound past MAX_STEPS


def test_an_occurrence_on_the_hour_the_clocks_repeat_is_named_with_its_zone() -> None:
    from ai_employee.deciding.recurring import occurrence_name

    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).astimezone(BERLIN)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(BERLIN)  # 02:30 CET
    assert occurrence_name("Backup", first) == "Backup 2026-10-25 02.30 CEST.md"
    assert occurrence_name("Backup", second) == "Backup 2026-10-25 02.30 CET.md"
    plain = datetime(2026, 10, 25, 3, 30, tzinfo=UTC).astimezone(BERLIN)
    assert occurrence_name("Backup", plain) == "Backup 2026-10-25 04.30.md"
