"""Dashboard.md's model (dashboard_md.DashboardFile): what it counts, and when it redraws."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee import dashboard_md
from ai_employee.budget import DailyBudget
from ai_employee.dashboard_md import DashboardFile, Line
from ai_employee.index import NoteIndex
from ai_employee.vault import Folder, Vault

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _notes(folder: Path, n: int) -> None:
    for i in range(n):
        (folder / f"old {i}.md").write_text("---\nstatus: done\n---\n")


def test_done_and_failed_are_counted_at_start_and_sweep_not_at_each_redraw(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    _notes(vault.folder(Folder.DONE), 5)
    _notes(vault.folder(Folder.FAILED), 2)
    dashboard = DashboardFile(vault)
    dashboard.count_finished()  # the service's start
    assert dashboard.finished == {Folder.DONE: 5, Folder.FAILED: 2}
    scans: list[Folder] = []
    real = Vault.count_notes
    monkeypatch.setattr(Vault, "count_notes", lambda self, f: scans.append(f) or real(self, f))
    index = NoteIndex()
    for changes in range(3):  # three changes, three redraws
        dashboard.draw(changes, lambda: dashboard.state(index, [], [], DailyBudget(0), NOW), True)
    assert scans == [], "a redraw scans no folder"
    assert "| Done | 5 notes |" in vault.dashboard.read_text()
    dashboard.landed(vault.folder(Folder.DONE) / "new.md")  # a note the service moved there
    dashboard.landed(vault.folder(Folder.NEEDS_ACTION) / "retry.md")  # not a counted folder
    assert dashboard.finished == {Folder.DONE: 6, Folder.FAILED: 2}
    _notes(vault.folder(Folder.FAILED), 4)  # a person's changes: seen at the next sweep
    dashboard.count_finished()
    assert dashboard.finished == {Folder.DONE: 5, Folder.FAILED: 4}


def test_a_redraw_is_due_only_after_a_change_and_at_most_once_a_second(vault: Vault) -> None:
    dashboard = DashboardFile(vault)
    state = lambda: dashboard.state(NoteIndex(), [], [], DailyBudget(0), NOW)  # noqa: E731
    dashboard.draw(0, state, force=True)
    assert dashboard.deadline(0) is None, "nothing changed"
    dashboard.ran(Line("Done/x", "x", "success"))
    due = dashboard.deadline(0)
    assert due is not None and due >= 1.0
    before = vault.dashboard.read_text()
    dashboard.draw(0, state)  # too soon after the last redraw: not written
    assert vault.dashboard.read_text() == before
    dashboard.draw(0, state, force=True)
    assert "- [[Done/x|x]] - success" in vault.dashboard.read_text()


def test_rendering_keeps_a_hostile_title_inside_its_link() -> None:
    state = dashboard_md.DashboardState(
        NOW, {"Done": Counter()}, recent=[Line("Done/x", "a|b]]\nc", "ok")]
    )
    assert "- [[Done/x|a/b] ] c]] - ok" in dashboard_md.render(state)


def _failed(folder: Path, name: str, error: str, mtime_ns: int) -> Path:
    path = folder / name
    path.write_text(f"---\ntitle: {name[:-3]} task\nstatus: failed\nerror: '{error}'\n---\nbody\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_needs_attention_lists_the_newest_failed_tasks_with_their_error(vault: Vault) -> None:
    failed = vault.folder(Folder.FAILED)
    base = 1_700_000_000 * 10**9
    for i in range(dashboard_md.FAILED_LINES + 2):
        _failed(failed, f"f{i:02}.md", f"agent exited {i}: boom", base + i * 10**9)
    dashboard = DashboardFile(vault)
    dashboard.count_finished()
    text = dashboard_md.render(dashboard.state(NoteIndex(), [], [], DailyBudget(0), NOW))
    attention = text.split("## Needs attention\n\n")[1].split("\n\n")[0].splitlines()
    newest = dashboard_md.FAILED_LINES + 1
    assert (
        attention[0]
        == f"- [[Failed/f{newest:02}|f{newest:02} task]] - failed: agent exited {newest}: boom"
    )
    assert len(attention) == dashboard_md.FAILED_LINES, "only the newest"
    assert "f00" not in text and "f01" not in text
    # One the service moves there is listed at once, first; one a person moved away is not.
    landed = _failed(failed, "late.md", "attempts spent", base)
    dashboard.landed(landed)
    (failed / f"f{newest:02}.md").unlink()
    state = dashboard.state(NoteIndex(), [], [], DailyBudget(0), NOW)
    assert state.attention[0] == Line("Failed/late", "late task", "failed: attempts spent")
    assert all(line.link != f"Failed/f{newest:02}" for line in state.attention)
