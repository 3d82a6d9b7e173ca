"""The note index (index.py): what the main loop last saw of each note, and who holds a task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ai_employee.notes.index import Entry, NoteIndex
from ai_employee.notes.lifecycle import Action, Status
from ai_employee.notes.vault import Folder

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
A, B = Path("/v/Needs_Action/a.md"), Path("/v/Pending_Approval/a.md")


def entry(sig: tuple[int, int, int], task_id: str = "t1", wake: datetime | None = None) -> Entry:
    return Entry(sig, task_id, Status.PLANNED, "A", Folder.NEEDS_ACTION, Action.WAIT, wake_at=wake)


def test_a_note_is_unchanged_only_while_its_file_is_the_one_decided_on() -> None:
    index = NoteIndex()
    assert not index.unchanged(A, (1, 10, 100), NOW), "never seen"
    index.remember(A, entry((1, 10, 100)))
    assert index.unchanged(A, (1, 10, 100), NOW)
    assert not index.unchanged(A, (2, 10, 100), NOW), "another file (a save by rename)"
    assert not index.unchanged(A, (1, 11, 101), NOW), "written in place"


def test_a_due_wake_up_makes_an_unchanged_note_worth_a_look() -> None:
    index = NoteIndex()
    later = NOW + timedelta(minutes=5)
    index.remember(A, entry((1, 10, 100), wake=later))
    assert index.unchanged(A, (1, 10, 100), NOW)
    assert not index.unchanged(A, (1, 10, 100), later)
    assert index.next_wakeup() == later
    assert index.due_wakeups(NOW) == [] and index.due_wakeups(later) == [A]
    index.remember(A, entry((1, 10, 100)))  # decided again with no wake-up: none left
    assert index.next_wakeup() is None


def test_a_task_has_one_owner_and_forgetting_the_path_frees_it() -> None:
    index = NoteIndex()
    index.remember(A, entry((1, 10, 100)))
    assert index.owner_of("t1") == A
    index.remember(B, entry((1, 10, 100)))  # the note moved: the new path holds the task
    index.forget(A)
    assert index.owner_of("t1") == B, "forgetting an old path keeps the new owner"
    index.forget(B)
    assert index.owner_of("t1") is None


def test_refusals_are_remembered_by_file_and_said_once_per_reason() -> None:
    index = NoteIndex()
    index.remember(A, entry((1, 10, 100)))
    assert index.refuse(A, (2, 5, 200), "binary file") is True
    assert A not in index.entries, "a refused note has no entry"
    assert index.unchanged(A, (2, 5, 200), NOW), "the same refused file: nothing new"
    assert index.refuse(A, (2, 5, 200), "binary file") is False, "said already"
    assert index.refuse(A, (3, 5, 300), "not UTF-8") is True, "a new reason is said"
    assert index.accept(A) is True and index.accept(A) is False


def test_a_full_scan_forgets_what_it_did_not_see_and_counts_changes() -> None:
    index = NoteIndex()
    index.remember(A, entry((1, 10, 100)))
    index.refuse(B, (2, 5, 200), "binary file")
    before = index.changes
    index.keep_only([A])
    assert B not in index.refused and A in index.entries
    index.keep_only([])
    assert not index.entries and index.owner_of("t1") is None
    assert index.changes == before + 2


def test_unsettled_drops_the_entry_so_the_next_look_reads_the_note() -> None:
    index = NoteIndex()
    index.remember(A, entry((1, 10, 100)))
    index.unsettled(A)
    assert not index.unchanged(A, (1, 10, 100), NOW)
