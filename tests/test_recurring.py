"""Recurring tasks with the real service: series notes in Recurring/, occurrences written once, a
clock moved by hand (the service reads time only through it), real inotify, real agents."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ai_employee.base.config import Config
from ai_employee.deciding.recurring import occurrence_id
from ai_employee.notes.taskfile import parse_note
from ai_employee.notes.vault import Folder, Vault

from .helpers import wait_for
from .service_harness import cli, drop, events, note, running_service, svc_config, wait_status

FAKE = Path(__file__).with_name("fake_agent.py")
START = datetime(2026, 12, 7, 7, 0, 0, tzinfo=UTC)


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("FAKE_LEDGER", str(path))
    return path


def agent_config(vault: Vault, **overrides: object) -> Config:
    command = f"{sys.executable} {FAKE} {{task_id}} {{workdir}} {{prompt_file}}"
    return svc_config(vault, agent="command", agent_command=command, max_parallel=2, **overrides)


def series(every: str, behave: str = "ok", **keys: str) -> str:
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    return (
        f"---\ntitle: Standup notes\nevery: {every}\ntype: claude_app\ntimezone: Europe/Berlin\n"
        f"{extra}---\nbehave: {behave}\n"
    )


def occurrences(vault: Vault) -> list[Path]:
    found = []
    for folder in Folder:
        if folder is not Folder.RECURRING and folder is not Folder.PLANS:
            found += vault.folder(folder).glob("Standup notes *.md")
    return sorted(found, key=lambda p: p.name)


def series_note(vault: Vault) -> dict[str, object]:
    path = vault.folder(Folder.RECURRING) / "Standup.md"
    return dict(parse_note(path.read_text(), path.name).meta)


def nudge(vault: Vault, tmp_path: Path, n: int) -> None:
    """Any event wakes the main loop, which then finds what the moved clock made due (in real
    time it would have woken at the series' deadline)."""
    drop(vault, tmp_path, f"nudge {n}.md", "")


def test_a_series_across_a_stop_writes_one_catch_up_and_a_restart_right_after_writes_none(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    clock = Clock()
    (vault.folder(Folder.RECURRING) / "Standup.md").write_text(series("1m"))
    config = agent_config(vault)
    with running_service(config, now=clock):
        wait_for(lambda: series_note(vault).get("next_at"), what="the next time")
    first = series_note(vault)
    assert first["next_at"] == datetime.fromisoformat("2026-12-07T08:01:00+01:00")
    assert occurrences(vault) == [], "a new series begins after now"
    clock.move(minutes=5, seconds=30)  # down for five periods
    with running_service(config, now=clock):
        (written,) = wait_for(lambda: occurrences(vault), what="the catch-up occurrence")
        wait_status(vault.folder(Folder.DONE) / written.name, "done")
    assert written.name == "Standup notes 2026-12-07 08.05.md"
    done = note(vault.folder(Folder.DONE) / written.name)
    assert done.title == "Standup notes 2026-12-07 08:05"
    assert done.meta["series_id"] == first["series_id"] and done.meta["type"] == "claude_app"
    assert done.meta["occurrence"] == datetime.fromisoformat("2026-12-07T08:05:00+01:00")
    assert done.task_id == occurrence_id(str(first["series_id"]), START + timedelta(minutes=5))
    after = series_note(vault)
    assert after["last_occurrence"] == done.meta["occurrence"]
    assert after["next_at"] == datetime.fromisoformat("2026-12-07T08:06:00+01:00")
    (missed,) = events(vault, "occurrences missed")
    assert missed["parameters"] == {"missed": 4, "catch_up": "latest"}
    with running_service(config, now=clock):  # a restart right after the occurrence
        wait_for(lambda: events(vault, "service ready"), what="ready")
    assert len(occurrences(vault)) == 1 and len(events(vault, "occurrence written")) == 1


def test_an_occurrence_written_before_a_crash_is_not_written_again(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """The service wrote the occurrence, then died before the series note said so."""
    clock = Clock()
    sid = "srs12345"
    due_at = START + timedelta(minutes=1)
    text = series("1m", series_id=sid, next_at=due_at.isoformat())
    (vault.folder(Folder.RECURRING) / "Standup.md").write_text(text)
    clock.move(minutes=1, seconds=5)
    task_id = occurrence_id(sid, due_at)
    (vault.folder(Folder.NEEDS_ACTION) / "Standup notes 2026-12-07 08.01.md").write_text(
        f"---\ntitle: Standup notes 2026-12-07 08:01\ntype: claude_app\nseries_id: {sid}\n"
        f"task_id: {task_id}\n---\nbehave: ok\n"
    )
    with running_service(agent_config(vault), now=clock):
        wait_status(vault.folder(Folder.DONE) / "Standup notes 2026-12-07 08.01.md", "done")
        wait_for(lambda: series_note(vault).get("last_occurrence"), what="recorded")
    assert len(occurrences(vault)) == 1 and events(vault, "occurrence written") == []
    assert series_note(vault)["next_at"] == datetime.fromisoformat("2026-12-07T08:02:00+01:00")


def test_overlap_skip_skips_while_the_previous_one_runs_and_queue_waits_for_it(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    clock = Clock()
    gate = tmp_path / "gate"
    (vault.folder(Folder.RECURRING) / "Standup.md").write_text(series("1m", f"gate {gate}"))
    with running_service(agent_config(vault), now=clock):
        wait_for(lambda: series_note(vault).get("next_at"), what="the next time")
        clock.move(minutes=1)
        nudge(vault, tmp_path, 1)
        (first,) = wait_for(lambda: occurrences(vault), what="the first occurrence")
        wait_status(first, "executing")
        clock.move(minutes=1)  # the next time comes while the first still runs
        nudge(vault, tmp_path, 2)
        wait_for(lambda: series_note(vault).get("last_skipped"), what="the skip recorded")
        assert occurrences(vault) == [first]
        (skip,) = events(vault, "occurrence skipped")
        assert "has not ended (overlap: skip)" in skip["result"]
        assert series_note(vault)["last_skipped"] == datetime.fromisoformat(
            "2026-12-07T08:02:00+01:00"
        )
        # overlap: queue -> the next one is written, and waits for the first
        text = (vault.folder(Folder.RECURRING) / "Standup.md").read_text()
        drop(
            vault,
            tmp_path,
            "Standup.md",
            text.replace("---\nbehave", "overlap: queue\n---\nbehave"),
            "Recurring",
        )
        wait_for(lambda: "overlap" in series_note(vault), what="the edit seen")
        clock.move(minutes=1)
        nudge(vault, tmp_path, 3)
        wait_for(lambda: len(occurrences(vault)) == 2, what="the queued occurrence")
        queued = next(p for p in occurrences(vault) if p != first)
        waiting = wait_for(lambda: note(queued).meta.get("waiting_for") and note(queued), what="w")
        assert waiting.meta["after"] == [note(first).task_id]
        gate.touch()
        done = vault.folder(Folder.DONE)
        wait_status(done / queued.name, "done")
    starts = [line.split()[0] for line in ledger.read_text().splitlines() if " start " in line]
    assert starts == [note(done / first.name).task_id, note(done / queued.name).task_id]


def test_a_bad_every_refuses_the_series_clearly_and_a_fix_takes(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    clock = Clock()
    path = vault.folder(Folder.RECURRING) / "Standup.md"
    bad = series("every monday")
    path.write_text(bad)
    with running_service(agent_config(vault), now=clock):
        wait_for(lambda: events(vault, "note refused"), what="the refusal")
        (refused,) = events(vault, "note refused")
        assert refused["target"] == "Recurring/Standup.md"
        assert "`every: every monday` is neither an interval" in refused["error"]
        wait_for(lambda: "every monday" in vault.dashboard.read_text(), what="Dashboard.md")
        assert path.read_text() == bad, "a refused note is not touched"
        drop(vault, tmp_path, "Standup.md", series("@daily"), "Recurring")  # unquoted: not YAML
        wait_for(lambda: len(events(vault, "note refused")) == 2, what="the second refusal")
        assert events(vault, "note refused")[1]["error"].endswith(
            "at line 3, column 8: found character that cannot start any token; a value that "
            'begins with @ must be quoted: "@daily"'
        )
        drop(vault, tmp_path, "Standup.md", series('"@daily"'), "Recurring")
        wait_for(lambda: series_note(vault).get("next_at"), what="accepted")
    assert series_note(vault)["next_at"] == datetime.fromisoformat("2026-12-08T00:00:00+01:00")


def test_a_paused_series_writes_nothing_and_begins_after_now_when_unpaused(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    clock = Clock()
    path = vault.folder(Folder.RECURRING) / "Standup.md"
    path.write_text(series("1m", paused="true"))
    with running_service(agent_config(vault), now=clock):
        wait_for(lambda: series_note(vault).get("series_id"), what="its id")
        assert "next_at" not in series_note(vault)
        clock.move(minutes=10)
        nudge(vault, tmp_path, 1)
        drop(
            vault,
            tmp_path,
            "Standup.md",
            path.read_text().replace("paused: true\n", ""),
            "Recurring",
        )
        wait_for(lambda: series_note(vault).get("next_at"), what="unpaused")
    assert occurrences(vault) == []
    assert series_note(vault)["next_at"] == datetime.fromisoformat("2026-12-07T08:11:00+01:00")


def test_add_every_writes_a_series_and_status_and_dashboard_show_its_next_time(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")  # the machine's zone, for a series that names none
    bad = cli(vault, "add", "Weekly briefing", "--every", "9s")
    assert bad.returncode != 0 and "add: --every: `every: 9s` is shorter than 10s" in bad.stderr
    added = cli(vault, "add", "Weekly briefing", "--every", "0 8 * * 1", "--type", "claude_app")
    assert added.returncode == 0, added.stderr
    path = vault.folder(Folder.RECURRING) / "Weekly briefing.md"
    assert added.stdout.startswith(str(path)) and "series: every 0 8 * * 1" in added.stdout
    meta = parse_note(path.read_text(), path.name).meta
    assert meta["every"] == "0 8 * * 1" and "task_id" not in meta and "status" not in meta
    daily = cli(vault, "add", "Inbox zero", "--every", "@daily", "--json")
    assert json.loads(daily.stdout)["task_id"] is None
    clock = Clock()  # Monday 2026-12-07 07:00 UTC
    with running_service(agent_config(vault), now=clock):
        wait_for(lambda: parse_note(path.read_text(), "x").meta.get("next_at"), what="next")
        wait_for(lambda: "Next occurrences" in vault.dashboard.read_text(), what="Dashboard.md")
        dashboard = vault.dashboard.read_text()
        assert "[[Recurring/Weekly briefing|Weekly briefing]] - every 0 8 * * 1; next " in dashboard
        assert (
            "next 2026-12-07 08:00 (UTC)" in dashboard
            and "next 2026-12-08 00:00 (UTC)" in dashboard
        )
        assert dashboard.index("Weekly briefing]]") < dashboard.index("Inbox zero]]"), (
            "soonest first"
        )
        shown = cli(vault, "status").stdout
        assert (
            "series: 2" in shown
            and "Recurring/Weekly briefing.md  every 0 8 * * 1  next 20" in shown
        )
        as_json = json.loads(cli(vault, "status", "--json").stdout)
        assert {s["title"] for s in as_json["series"]} == {"Weekly briefing", "Inbox zero"}


def test_an_occurrence_that_cannot_be_written_is_tried_again_a_minute_later_not_every_turn(
    vault: Vault, config: Config
) -> None:
    from ai_employee.daemon.service import Service

    clock = Clock()
    path = vault.folder(Folder.RECURRING) / "Standup.md"
    path.write_text(series("1m", next_at=(START - timedelta(seconds=5)).isoformat()))
    recurring = Service(config, now=clock).reconciler.recurring
    shutil.rmtree(vault.tmp)
    vault.tmp.write_text("not a folder: every write fails")  # a full disk, a permission
    with pytest.raises(OSError):
        recurring.look(path)
    assert recurring.due_paths(clock()) == []
    assert recurring.due_paths(clock() + timedelta(seconds=61)) == [path]
    assert "last_occurrence" not in series_note(vault)
    vault.tmp.unlink()
    vault.tmp.mkdir()
    clock.move(seconds=61)
    (written,) = recurring.look(path, force=True)
    assert written.name == "Standup notes 2026-12-07 08.00.55.md"  # the latest due (catch_up)


def service_parts(config: Config, clock: Clock) -> Any:
    """The service's parts, not started: its Recurring, driven by hand with a moved clock."""
    from ai_employee.daemon.service import Service

    return Service(config, now=clock).reconciler


def test_catch_up_all_with_queue_chains_the_caught_up_occurrences_and_with_skip_writes_one(
    vault: Vault, config: Config
) -> None:
    clock = Clock()
    path = vault.folder(Folder.RECURRING) / "Standup.md"
    due_at = (START - timedelta(minutes=3)).isoformat()
    path.write_text(series("1m", catch_up="all", overlap="queue", next_at=due_at))
    written = service_parts(config, clock).recurring.look(path)
    notes = [note(p) for p in written]
    assert [n.title[-5:] for n in notes] == ["07:57", "07:58", "07:59", "08:00"]
    assert [n.meta.get("after") for n in notes] == [None] + [[n.task_id] for n in notes[:-1]]
    # the same with overlap: skip, on a fresh vault: one written, the others skipped
    for p in written:
        p.unlink()
    path.write_text(series("1m", catch_up="all", next_at=due_at))
    (first,) = service_parts(config, clock).recurring.look(path)
    assert note(first).title.endswith("07:57")
    assert series_note(vault)["last_skipped"] == datetime.fromisoformat("2026-12-07T08:00:00+01:00")


def test_a_conflict_copy_of_a_series_is_refused_and_a_deleted_series_ends(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    clock = Clock()
    folder = vault.folder(Folder.RECURRING)
    (folder / "Standup.md").write_text(series("1m"))
    copy = folder / "Standup.sync-conflict-20261207-080000-ABCDEFG.md"
    with running_service(agent_config(vault), now=clock) as service:
        recurring = service.reconciler.recurring
        wait_for(lambda: series_note(vault).get("next_at"), what="the series")
        drop(vault, tmp_path, copy.name, (folder / "Standup.md").read_text(), "Recurring")
        wait_for(lambda: events(vault, "note refused"), what="the copy refused")
        (refused,) = events(vault, "note refused")
        assert refused["target"] == f"Recurring/{copy.name}"
        assert refused["error"].startswith(
            "a sync tool's conflict copy of Recurring/Standup.md: keep what you want of it"
        )
        assert list(recurring.known) == [folder / "Standup.md"]
        (folder / "Standup.md").unlink()
        wait_for(lambda: not recurring.known, what="the deleted series forgotten")
        assert recurring.next_wakeup() is None
