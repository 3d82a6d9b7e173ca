"""Dashboard.md's model (dashboard_md.DashboardFile): what it counts, and when it redraws."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.notes.index import NoteIndex
from ai_employee.notes.notefile import NoteStore
from ai_employee.notes.records import TaskRecords
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running.budget import DailyBudget
from ai_employee.running.scheduler import RunRequest
from ai_employee.running.usage_limit import Pause
from ai_employee.telling import dashboard_md
from ai_employee.telling.dashboard_md import DashboardFile, Line

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@dataclass
class NoRuns:
    """The runs as Dashboard.md sees them (dashboard_md.RunsShown): none."""

    queued: list[RunRequest] = field(default_factory=list)
    running_ids: list[str] = field(default_factory=list)
    pause: Pause | None = None


def _dashboard(vault: Vault, index: NoteIndex | None = None) -> DashboardFile:
    """The model as the main loop builds it, over an index and runs of a test's own."""
    records = TaskRecords(vault, NoteStore(vault.root, vault.tmp, 1 << 20))
    return DashboardFile(
        vault, index or NoteIndex(), NoRuns(), DailyBudget(0), lambda: NOW, records
    )


def _notes(folder: Path, n: int) -> None:
    for i in range(n):
        (folder / f"old {i}.md").write_text("---\nstatus: done\n---\n")


def test_done_and_failed_are_counted_at_start_and_sweep_not_at_each_redraw(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    _notes(vault.folder(Folder.DONE), 5)
    _notes(vault.folder(Folder.FAILED), 2)
    dashboard = _dashboard(vault)
    dashboard.count_finished()  # the service's start
    assert dashboard.finished == {Folder.DONE: 5, Folder.FAILED: 2}
    scans: list[Folder] = []
    real = Vault.count_notes
    monkeypatch.setattr(Vault, "count_notes", lambda self, f: scans.append(f) or real(self, f))
    for _ in range(3):  # three redraws
        dashboard.draw(force=True)
    assert scans == [], "a redraw scans no folder"
    assert "| Done | 5 notes |" in vault.dashboard.read_text()
    dashboard.landed(vault.folder(Folder.DONE) / "new.md")  # a note the service moved there
    dashboard.landed(vault.folder(Folder.NEEDS_ACTION) / "retry.md")  # not a counted folder
    assert dashboard.finished == {Folder.DONE: 6, Folder.FAILED: 2}
    _notes(vault.folder(Folder.FAILED), 4)  # a person's changes: seen at the next sweep
    dashboard.count_finished()
    assert dashboard.finished == {Folder.DONE: 5, Folder.FAILED: 4}


def test_a_redraw_is_due_only_after_a_change_and_at_most_once_a_second(vault: Vault) -> None:
    dashboard = _dashboard(vault)
    dashboard.draw(force=True)
    assert dashboard.deadline() is None, "nothing changed"
    dashboard.ran(Line("Done/x", "x", "success"))
    due = dashboard.deadline()
    assert due is not None and due >= 1.0
    before = vault.dashboard.read_text()
    dashboard.draw()  # too soon after the last redraw: not written
    assert vault.dashboard.read_text() == before
    dashboard.draw(force=True)
    assert "- [[Done/x|x]] - success" in vault.dashboard.read_text()


def test_rendering_keeps_a_hostile_title_inside_its_link() -> None:
    state = dashboard_md.DashboardState(
        NOW, {"Done": Counter()}, recent=[Line("Done/x", "a|b]]\nc", "ok")]
    )
    assert "- [[Done/x|a/b] ] c]] - ok" in dashboard_md.render(state)


def test_failed_tasks_need_attention_until_they_leave_failed(vault: Vault) -> None:
    _notes(vault.folder(Folder.FAILED), 2)  # from before the service started
    dashboard = _dashboard(vault)
    dashboard.count_finished()

    def attention() -> list[Line]:
        return list(dashboard.state().attention)

    assert sorted(line.link for line in attention()) == ["Failed/old 0", "Failed/old 1"]
    failed = vault.folder(Folder.FAILED) / "Build.md"
    failed.write_text("---\nstatus: failed\n---\n")
    dashboard.landed(failed, "agent exited 1")
    first = attention()[0]
    assert (first.link, first.detail) == ("Failed/Build", "failed: agent exited 1")
    dashboard.landed(vault.folder(Folder.DONE) / "ok.md")  # done: needs nobody
    assert len(attention()) == 3
    failed.rename(vault.folder(Folder.NEEDS_ACTION) / "Build.md")  # `ai-employee retry`
    dashboard.count_finished()  # the next sweep
    assert sorted(line.link for line in attention()) == ["Failed/old 0", "Failed/old 1"]
    assert "## Needs attention" in dashboard_md.render(dashboard.state())


def test_a_task_that_fails_is_listed_under_needs_attention(vault: Vault) -> None:
    from .helpers import wait_for
    from .service_harness import running_service, svc_config

    config = svc_config(vault, agent_command="sh -c 'echo broken >&2; exit 3'", max_attempts=1)
    with running_service(config):
        (vault.folder(Folder.NEEDS_ACTION) / "Fails.md").write_text("---\ntitle: Fails\n---\nx\n")
        failed = vault.folder(Folder.FAILED) / "Fails.md"
        wait_for(failed.exists, 30, "the note in Failed/")

        def listed() -> bool:
            text = vault.dashboard.read_text()
            section = text.split("## Needs attention", 1)[1].split("\n## ", 1)[0]
            return "[[Failed/Fails|" in section and "failed:" in section

        wait_for(listed, 15, "Dashboard.md to list the failed task under Needs attention")


def test_counts_say_note_or_notes_and_nothing_is_a_dash(vault: Vault) -> None:
    _notes(vault.folder(Folder.DONE), 1)
    _notes(vault.folder(Folder.FAILED), 2)
    dashboard = _dashboard(vault)
    dashboard.count_finished()
    text = dashboard_md.render(dashboard.state())
    assert "| Done | 1 note |" in text and "| Failed | 2 notes |" in text
    for folder in (Folder.DONE, Folder.FAILED):
        for path in vault.notes_in(folder):
            path.unlink()
    dashboard.count_finished()
    text = dashboard_md.render(dashboard.state())
    assert "| Done | - |" in text and "| Failed | - |" in text
    assert "0 note" not in text


@contextlib.contextmanager
def _a_failed_task(vault: Vault, tmp_path: Path) -> Iterator[tuple[Config, Path]]:
    """The service (no sweep for an hour) with a task `Fails` in Failed/, counted there; its
    agent succeeds once the test writes the `fixed` file it yields beside the configuration."""
    from .helpers import wait_for
    from .service_harness import running_service, svc_config

    fixed = tmp_path / "fixed"
    agent = f"sh -c 'test -e {fixed} || {{ echo broken >&2; exit 3; }}'"
    config = svc_config(vault, agent_command=agent, max_attempts=1, sweep_seconds=3600)
    with running_service(config):
        (vault.folder(Folder.NEEDS_ACTION) / "Fails.md").write_text("---\ntitle: Fails\n---\nx\n")
        wait_for((vault.folder(Folder.FAILED) / "Fails.md").exists, 30, "the note in Failed/")
        wait_for(lambda: "| Failed | 1 note |" in vault.dashboard.read_text(), 15, "Failed: 1")
        yield config, fixed


def _section(vault: Vault, name: str) -> str:
    text = vault.dashboard.read_text()
    return text.split(f"## {name}", 1)[1].split("\n## ", 1)[0]


def test_a_retried_task_leaves_failed_at_once_and_recent_links_where_it_is(
    vault: Vault, tmp_path: Path
) -> None:
    from ai_employee.surfaces import commands

    from .helpers import wait_for

    with _a_failed_task(vault, tmp_path) as (config, fixed):
        assert "[[Failed/Fails|Fails]] - failed: " in _section(vault, "Needs attention")
        fixed.write_text("")
        commands.retry(vault, config, "Fails.md", actor="me", now=NOW)
        wait_for((vault.folder(Folder.DONE) / "Fails.md").exists, 30, "the retry done")
        wait_for(lambda: "| Failed | - |" in vault.dashboard.read_text(), 15, "Failed: none")
        assert "Fails" not in _section(vault, "Needs attention"), "no sweep needed"
        recent = _section(vault, "Recent")
        assert recent.count("[[Done/Fails|Fails]]") == 2, recent  # both runs: where it is now
        assert "[[Done/Fails|Fails]] - done" in recent
        assert (
            "[[Done/Fails|Fails]] - failed: agent exited 3: broken (attempt 1 of 1; "
            "`ai-employee retry` to try again)"
        ) in recent
        assert "| Done | 1 note |" in vault.dashboard.read_text()


def test_a_failed_note_a_person_moves_into_approved_leaves_failed_at_once(
    vault: Vault, tmp_path: Path
) -> None:
    from .helpers import wait_for

    with _a_failed_task(vault, tmp_path) as (_, fixed):
        fixed.write_text("")
        failed = vault.folder(Folder.FAILED) / "Fails.md"
        failed.rename(vault.folder(Folder.APPROVED) / "Fails.md")  # a person's approval
        wait_for((vault.folder(Folder.DONE) / "Fails.md").exists, 30, "the approved run done")
        wait_for(lambda: "| Failed | - |" in vault.dashboard.read_text(), 15, "Failed: none")
        assert "Fails" not in _section(vault, "Needs attention")
