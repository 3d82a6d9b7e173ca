"""A crash at every durable step of a task's life: the service SIGKILLed (or an I/O error
raised) before and after each write, exchange, rename, move, folder sync and git command of
one task's plan, claim, round's commit and record, for every N, then started again. Each time
the task ends done, its note whole and alone, one plan, its work committed; no run of it
overlaps another, it is run at most twice (again only when the crash cut the first run
short), and every run is counted as an attempt."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .crash_steps import Life, live, phases, steps_in_one_life

WORKERS = max(2, min(8, (os.cpu_count() or 2)))


PARTS = ("plan", "claim", "commit", "record")


def lives(tmp_path: Path, how: str, parts: set[str]) -> tuple[dict[int, str], list[Life]]:
    """One life per durable step of `parts` (plan, claim, commit, record)."""
    trace = steps_in_one_life(tmp_path / "clean")
    phase = phases(trace)
    steps = sorted(n for n, part in phase.items() if part in parts)
    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(pool.map(lambda n: live(tmp_path / f"at-{n}", n, how), steps))
    return phase, found


def check(life: Life, phase: str) -> None:
    where = f"{life.how} at step {life.at} ({phase}: {life.crashed_at or 'never reached'})"
    assert not life.problems, f"{where}: {life.problems}"
    assert list(life.notes) == ["Done/Crash.md"], f"{where}: notes left {list(life.notes)}"
    text = life.notes["Done/Crash.md"]
    assert text.startswith("---\ntitle: Crash\ntype: claude_app\nlanguage: py\napp: crash\n")
    assert "\nbehave: ok\n" in text, f"{where}: the person's text is not whole"
    assert len(life.plans) == 1, f"{where}: plans {life.plans}"
    assert not life.overlapped, f"{where}: two runs at once"
    assert 1 <= life.starts <= 2, f"{where}: {life.starts} runs"
    if phase == "plan":
        assert life.starts == 1, f"{where}: a crash before the claim ran it twice"
    attempts = int(text.split("\nattempts: ")[1].split("\n")[0])
    assert life.starts <= attempts <= 2, f"{where}: {attempts} attempts for {life.starts} runs"
    assert life.committed, f"{where}: result.txt not committed"
    assert not life.staging_left, f"{where}: a half-made repository left"
    assert not life.staging_committed, f"{where}: a half-made repository committed"
    assert "\n**success**" in text, f"{where}: the end written is not the run's success"


@pytest.mark.timeout(900)  # 54 lives of a task, two at a time: about 40 s
@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_crash_at_every_durable_step(tmp_path: Path, how: str) -> None:
    phase, found = lives(tmp_path, how, set(PARTS))
    assert len(found) >= 40, "a task's life has about 54 durable steps"
    assert {phase[n] for n in phase} == {"plan", "claim", "commit", "record"}
    reached = [life for life in found if life.crashed_at]
    assert len(reached) >= len(found) - 3, "nearly every step is reached and crashed at"
    for life in found:
        check(life, phase[life.at])


@pytest.mark.timeout(900)
def test_a_full_disk_at_each_step_of_the_claim_and_the_record(tmp_path: Path) -> None:
    """The disk refuses one write (ENOSPC) at each step of the claim and of the record: the
    service says so, waits, and goes on; a record whose note took the end but not the move
    moves that very end (before, the next try read the `done` it had written as a person's
    and recorded the run as cancelled)."""
    phase, found = lives(tmp_path, "enospc", {"claim", "record"})
    assert len(found) >= 20, "8 steps in the claim, 14 in the record"
    for life in found:
        check(life, phase[life.at])
