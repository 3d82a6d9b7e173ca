"""The run queue (scheduler.py): priority, then age, then arrival; busy work dirs wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ai_employee.running.scheduler import RunRequest, Scheduler

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def request(
    task_id: str, priority: str = "normal", age_s: int | None = 0, workdir: str = ""
) -> RunRequest:
    planned = None if age_s is None else T0 + timedelta(seconds=age_s)
    work = Path("/apps") / (workdir or task_id)
    return RunRequest(Path(f"/v/Needs_Action/{task_id}.md"), task_id, priority, "t", planned, work)


def drain(scheduler: Scheduler) -> list[str]:
    out = []
    while (r := scheduler.next_ready()) is not None:
        out.append(r.task_id)
    return out


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["high", "normal", "low", "urgent?"]),
            st.one_of(st.none(), st.integers(0, 5)),
        ),
        max_size=30,
    )
)
def test_the_order_is_priority_then_age_then_arrival(items: list[tuple[str, int | None]]) -> None:
    scheduler = Scheduler()
    rank = {"high": 0, "normal": 1, "low": 2}
    expected = []
    for n, (priority, age) in enumerate(items):
        scheduler.add(request(f"t{n}", priority, age))
        age_key = (T0 + timedelta(seconds=age)).isoformat() if age is not None else ""
        expected.append((rank.get(priority, 1), age_key, n, f"t{n}"))  # unknown: as normal
    want = [t for *_, t in sorted(expected)]
    assert [r.task_id for r in scheduler.queued] == want
    assert drain(scheduler) == want
    assert scheduler.waiting() == 0


def test_a_task_is_queued_once_and_keeps_the_newest_path() -> None:
    scheduler = Scheduler()
    assert scheduler.add(request("a")) is True
    moved = RunRequest(Path("/v/Needs_Action/a (2).md"), "a", "normal", "t", T0, Path("/apps/a"))
    assert scheduler.add(moved) is False
    assert scheduler.waiting() == 1 and "a" in scheduler
    ready = scheduler.next_ready()
    assert ready is not None and ready.path.name == "a (2).md"


def test_a_busy_work_dir_waits_and_others_go_first() -> None:
    scheduler = Scheduler()
    scheduler.add(request("first", "high", workdir="shared"))
    scheduler.add(request("other", "low"))
    ready = scheduler.next_ready(busy={Path("/apps/shared")})
    assert ready is not None and ready.task_id == "other"
    assert [r.task_id for r in scheduler.queued] == ["first"], "still queued, in its place"
    assert scheduler.next_ready(busy={Path("/apps/shared")}) is None
    after = scheduler.next_ready()
    assert after is not None and after.task_id == "first"


def test_a_discarded_request_never_comes_out() -> None:
    scheduler = Scheduler()
    scheduler.add(request("a"))
    scheduler.add(request("b"))
    scheduler.discard("a")
    assert drain(scheduler) == ["b"]
