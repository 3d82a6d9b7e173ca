"""Task identity with the real service: plans that keep their owner, notes that come back.

What a sync tool or an editor does to a vault, done here with plain file operations (the real
tools are in test_sync_tools.py): a second note of the same name, a finished note that comes
back edited, an edit of a note that waits for approval, a conflict copy; and each again after
a restart, since the vault, not memory, says what a task was.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.notes.identity import Known
from ai_employee.notes.records import TaskRecords
from ai_employee.notes.taskfile import TaskNote, edit_note_text
from ai_employee.notes.vault import Folder, Vault

from .helpers import wait_for
from .service_harness import (
    copy_of,
    drop,
    events,
    held_as,
    note,
    running_service,
    svc_config,
    wait_status,
)

PAY_A = "---\ntitle: Pay 170 EUR to A\ntype: payment\n---\nPay 170 EUR to A, invoice 4711.\n"
PAY_B = "---\ntitle: Pay 999 EUR to B\ntype: payment\n---\nPay 999 EUR to B, invoice 8123.\n"
BUILD = "---\ntitle: Build the page\ntype: claude_app\n---\nA page that says hello, in blue.\n"


def ran(vault: Vault) -> list[str]:
    return [e["task_id"] for e in events(vault, "run started")]


def config(vault: Vault) -> Config:
    return svc_config(vault, agent_command="true", auto_execute_types="claude_app")


def plan_of(vault: Vault, task: TaskNote) -> str:
    link = str(task.meta["plan"]).strip("[]")
    return (vault.folder(Folder.PLANS) / f"{link}.md").read_text()


def arrive(vault: Vault, tmp_path: Path, folder: Folder, name: str, text: str) -> Path:
    return drop(vault, tmp_path, name, text, folder.value)


def test_two_notes_of_one_name_each_keep_their_own_plan_also_after_a_restart(
    vault: Vault, tmp_path: Path
) -> None:
    """The collision of the issue: "Pay.md" waits for approval; another "Pay.md" arrives."""
    waiting = vault.folder(Folder.PENDING_APPROVAL) / "Pay.md"
    with running_service(config(vault)):
        drop(vault, tmp_path, "Pay.md", PAY_A)
        first = wait_status(waiting, "pending_approval")
        drop(vault, tmp_path, "Pay.md", PAY_B)
        second = wait_status(
            vault.folder(Folder.PENDING_APPROVAL) / "Pay (2).md", "pending_approval"
        )
    assert first.task_id != second.task_id
    assert first.meta["plan"] != second.meta["plan"]
    assert "Pay 170 EUR to A" in plan_of(vault, first) and "999" not in plan_of(vault, first)
    assert "Pay 999 EUR to B" in plan_of(vault, second)
    assert f"task_id: {first.task_id}" in plan_of(vault, first)
    before = {p.name: p.read_text() for p in vault.folder(Folder.PLANS).iterdir()}
    with running_service(config(vault)):  # a restart decides the same, and rewrites nothing
        wait_for(lambda: events(vault, "service ready")[1:], what="the second start")
    after = {p.name: p.read_text() for p in vault.folder(Folder.PLANS).iterdir()}
    assert after == before
    assert note(waiting).meta["plan"] == first.meta["plan"]
    assert not events(vault, "copy held")


def _finished(vault: Vault, tmp_path: Path) -> TaskNote:
    drop(vault, tmp_path, "Build.md", BUILD)
    return wait_status(vault.folder(Folder.DONE) / "Build.md", "done")


def test_a_finished_note_that_comes_back_edited_waits_as_a_copy(
    vault: Vault, tmp_path: Path
) -> None:
    """A typo fixed elsewhere on the note as it was before it ran (no keys of ours)."""
    with running_service(config(vault)) as service:
        done = _finished(vault, tmp_path)
        back = arrive(
            vault, tmp_path, Folder.NEEDS_ACTION, "Build.md", BUILD.replace("blue", "navy")
        )
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
        wait_for(
            lambda: "Needs attention\n\n- [[Pending_Approval/Build|" in vault.dashboard.read_text(),
            what="the dashboard",
        )
        assert not back.exists()
        assert ran(vault) == [done.task_id], "nothing ran twice"
        assert held.task_id != done.task_id and copy_of(held) == done.task_id
        assert held_as(held) == (
            f"a version of {done.task_id} 'Build the page' (Done/Build.md, done): "
            "1 line differs: 'blue.' -> 'navy.'"
        )
        assert "plan" not in held.meta, "a copy has no plan until a person approves it"
        assert "a version of" in vault.dashboard.read_text()
        # Approving the copy runs it, as a task of its own with a plan of its own.
        (vault.folder(Folder.PENDING_APPROVAL) / "Build.md").rename(
            vault.folder(Folder.APPROVED) / "Build.md"
        )
        again = wait_status(vault.folder(Folder.DONE) / "Build (2).md", "done")
        assert again.task_id == held.task_id and not held_as(again)
        assert again.meta["plan"] != done.meta["plan"]
        assert ran(vault) == [done.task_id, held.task_id]
        # The tally counts a run once its end is recorded, just after the note's status.
        wait_for(lambda: service.runs.tally.succeeded == 2, what="two runs counted")


def test_rejecting_a_copy_ends_it(vault: Vault, tmp_path: Path) -> None:
    with running_service(config(vault)):
        done = _finished(vault, tmp_path)
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Build.md", BUILD)  # the very same text
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
        assert held_as(held).startswith(f"the same text as {done.task_id}")
        (vault.folder(Folder.PENDING_APPROVAL) / "Build.md").rename(
            vault.folder(Folder.REJECTED) / "Build.md"
        )
        wait_status(vault.folder(Folder.REJECTED) / "Build.md", "rejected")
    assert ran(vault) == [done.task_id]


def test_a_stale_copy_with_our_keys_after_the_move_is_held_not_run(
    vault: Vault, tmp_path: Path
) -> None:
    """An editor's buffer loaded while the note was planned, saved after it finished."""
    with running_service(config(vault)):
        drop(vault, tmp_path, "Build.md", BUILD)
        planned = wait_for(
            lambda: (
                note(vault.folder(Folder.DONE) / "Build.md")
                if (vault.folder(Folder.DONE) / "Build.md").exists()
                else None
            ),
            what="done",
        )
        buffer = edit_note_text(
            (vault.folder(Folder.DONE) / "Build.md").read_text(),
            {"status": "planned", "completed_at": None, "exit_code": None},
        )
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Build.md", buffer)
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
    assert held_as(held).startswith(f"it carries the task_id of {planned.task_id}")
    assert ran(vault) == [planned.task_id]


def test_an_edit_of_a_waiting_note_ends_as_one_waiting_task_with_the_latest_text(
    vault: Vault, tmp_path: Path
) -> None:
    """Pulled, synced, or saved from a stale buffer: the edit lands in Needs_Action while the
    note waits in Pending_Approval."""
    waiting = vault.folder(Folder.PENDING_APPROVAL) / "Pay.md"
    with running_service(config(vault)):
        drop(vault, tmp_path, "Pay.md", PAY_A)
        before = wait_status(waiting, "pending_approval")
        edited = PAY_A.replace("invoice 4711", "invoice 4711, due Friday")
        newcomer = arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Pay.md", edited)
        wait_for(lambda: "due Friday" in waiting.read_text(), what="the edit folded in")
        wait_for(lambda: not newcomer.exists(), what="the newcomer gone")
        # The plan a person reads before approving is of the text that waits now.
        assert "due Friday" in plan_of(vault, note(waiting))
        # A second edit of the same task, later: folded the same way, not held as a copy.
        again = edited.replace("due Friday", "due Monday")
        newcomer = arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Pay.md", again)
        wait_for(lambda: "due Monday" in waiting.read_text(), what="the second edit folded in")
        wait_for(lambda: not newcomer.exists(), what="the second newcomer gone")
    after = note(waiting)
    assert after.task_id == before.task_id and after.meta["status"] == "pending_approval"
    assert after.meta["plan"] == before.meta["plan"]
    assert "due Monday" in plan_of(vault, after) and "due Friday" not in plan_of(vault, after)
    assert sorted(p.name for p in vault.folder(Folder.PENDING_APPROVAL).iterdir()) == ["Pay.md"]
    assert list(vault.folder(Folder.NEEDS_ACTION).iterdir()) == []
    assert len(events(vault, "edit of a waiting task")) == 2
    assert not events(vault, "copy held")
    with running_service(config(vault)):  # a restart compares with the latest text too
        third = again.replace("due Monday", "due Tuesday")
        newcomer = arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Pay.md", third)
        wait_for(lambda: not newcomer.exists(), what="the third newcomer gone")
    assert "due Tuesday" in waiting.read_text() and not events(vault, "copy held")


def test_a_sync_conflict_copy_is_held_whatever_its_text(vault: Vault, tmp_path: Path) -> None:
    with running_service(config(vault)):
        done = _finished(vault, tmp_path)
        name = "Build.sync-conflict-20261201-101010-ABC1234.md"
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, name, BUILD.replace("hello", "goodbye"))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / name, "pending_approval")
    assert held_as(held).startswith(f"a sync tool's conflict copy of {done.task_id}")
    assert ran(vault) == [done.task_id]


def test_another_note_that_reuses_a_common_name_is_a_new_task(vault: Vault, tmp_path: Path) -> None:
    report = "---\ntitle: Report\ntype: claude_app\n---\nSummarise the Q3 revenue by region.\n"
    later = "---\ntitle: Report\ntype: claude_app\n---\nWrite the onboarding guide for new staff.\n"
    with running_service(config(vault)):
        drop(vault, tmp_path, "Report.md", report)
        first = wait_status(vault.folder(Folder.DONE) / "Report.md", "done")
        drop(vault, tmp_path, "Report.md", later)
        second = wait_status(vault.folder(Folder.DONE) / "Report (2).md", "done")
    assert second.task_id != first.task_id and copy_of(second) is None
    assert ran(vault) == [first.task_id, second.task_id]


def test_the_same_outcome_when_the_service_restarts_between_the_move_and_the_return(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(config(vault)):
        done = _finished(vault, tmp_path)
    (tmp_path / "back.md").write_text(BUILD.replace("blue", "navy"))
    os.replace(tmp_path / "back.md", vault.folder(Folder.NEEDS_ACTION) / "Build.md")
    with running_service(config(vault)):  # it finds the note at start
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
    assert copy_of(held) == done.task_id
    assert ran(vault) == [done.task_id]


def test_a_keyless_stale_buffer_over_a_running_note_gets_its_keys_and_claim_back(
    vault: Vault, tmp_path: Path
) -> None:
    """The buffer was loaded before the note was planned; it is saved while the task runs."""
    gate = tmp_path / "gate"
    running_config = svc_config(
        vault, agent_command=f"sh -c 'while [ ! -e {gate} ]; do sleep 0.01; done'"
    )
    with running_service(running_config) as service:
        path = drop(vault, tmp_path, "Build.md", BUILD)
        running = wait_status(path, "executing")
        (tmp_path / "buffer.md").write_text(BUILD)  # what the editor loaded at first
        (tmp_path / "buffer.md").rename(path)
        wait_for(lambda: events(vault, "claim restored"), what="the claim restored")
        restored = note(path)
        assert restored.task_id == running.task_id and restored.meta["status"] == "executing"
        gate.touch()
        wait_status(vault.folder(Folder.DONE) / "Build.md", "done")
        assert service.runs.tally.started == 1
    assert events(vault, "keys restored")


def test_a_note_moved_between_our_read_and_our_search_is_not_its_own_copy(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person edits a waiting note and approves it at once: the move lands after the
    service read the edit and before it looked for the task's note, which it then finds in
    Approved/. That note is the very file it read, moved: no copy, one task, one run."""
    waiting = vault.folder(Folder.PENDING_APPROVAL) / "Pay.md"
    approved = vault.folder(Folder.APPROVED) / "Pay.md"
    armed = threading.Event()
    real_known = TaskRecords.known

    def known(
        self: TaskRecords, task_id: str, read_body: bool, not_at: Path | None = None
    ) -> Known | None:
        if not_at == waiting and armed.is_set():
            armed.clear()
            os.rename(waiting, approved)  # the approval, between the read and the search
        return real_known(self, task_id, read_body, not_at)

    monkeypatch.setattr(TaskRecords, "known", known)
    with running_service(config(vault)):
        drop(vault, tmp_path, "Pay.md", PAY_A)
        task = wait_status(waiting, "pending_approval")
    # Edited while the service was stopped: the next start searches for the task's note (a
    # note it saw a moment ago, where its record says, it takes for the task's own at once).
    waiting.write_text(waiting.read_text().replace("invoice 4711", "invoice 4711, today"))
    armed.set()
    with running_service(config(vault)):
        done = wait_status(vault.folder(Folder.DONE) / "Pay.md", "done")
    assert not armed.is_set()  # the move happened where it was meant to
    assert done.task_id == task.task_id and copy_of(done) is None
    assert "today" in done.body
    assert not events(vault, "copy of a task note")
    assert ran(vault) == [task.task_id]


def test_a_finished_note_that_comes_back_into_approved_waits_as_a_copy(
    vault: Vault, tmp_path: Path
) -> None:
    """An approval saved elsewhere after the note ran here (Syncthing lets the edit beat the
    move): with our keys, or without them, it never runs a second time on its own."""
    with running_service(config(vault)):
        done = _finished(vault, tmp_path)
        keyed = (vault.folder(Folder.DONE) / "Build.md").read_text()
        arrive(vault, tmp_path, Folder.APPROVED, "Build.md", keyed)
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
        assert copy_of(held) == done.task_id and held.task_id != done.task_id
        arrive(vault, tmp_path, Folder.APPROVED, "Build.md", BUILD)  # no keys
        second = wait_status(
            vault.folder(Folder.PENDING_APPROVAL) / "Build (2).md", "pending_approval"
        )
        assert copy_of(second) == done.task_id
    assert ran(vault) == [done.task_id]


def test_a_conflict_copy_of_a_note_not_recorded_yet_is_held(vault: Vault, tmp_path: Path) -> None:
    """The note it was made of has a task_id but no plan (a draft here; a note Claude is
    still planning is the same case): the conflict copy still names it, and waits."""
    draft = "---\ntitle: Pay\ntask_id: mine1\nstatus: draft\ntype: claude_app\n---\nPay 10.\n"
    with running_service(config(vault)):
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Pay.md", draft)
        name = "Pay.sync-conflict-20261201-101010-ABC1234.md"
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, name, draft.replace("status: draft\n", ""))
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / name, "pending_approval")
    assert copy_of(held) == "mine1"
    assert held_as(held).startswith("a sync tool's conflict copy of mine1 ")
    assert not ran(vault)


TEMPLATE = "## Client\n\n## Steps\n- [ ] Call the client\n- [ ] Send the offer\n- [ ] File it\n"


def test_next_weeks_note_from_the_same_template_is_a_new_task(vault: Vault, tmp_path: Path) -> None:
    """Obsidian names a new note `Untitled.md`; both weeks' notes come from Templates/."""
    (vault.root / "Templates" / "Client.md").write_text(TEMPLATE)
    week = "---\ntype: claude_app\n---\n# Untitled\n" + TEMPLATE
    with running_service(config(vault)):
        drop(
            vault, tmp_path, "Untitled.md", week.replace("## Client\n", "## Client\nACME, Berlin\n")
        )
        first = wait_status(vault.folder(Folder.DONE) / "Untitled.md", "done")
        drop(
            vault, tmp_path, "Untitled.md", week.replace("## Client\n", "## Client\nBolt, Leeds\n")
        )
        second = wait_status(vault.folder(Folder.DONE) / "Untitled (2).md", "done")
    assert ran(vault) == [first.task_id, second.task_id]
    assert not events(vault, "copy of a task note")


def test_a_copy_finds_a_finished_note_whose_record_missed_the_move(
    vault: Vault, tmp_path: Path
) -> None:
    """The service stopped between a run's move to `Done/Build (2).md` and the plan's update:
    the plan still says Needs_Action. A stale copy that comes back is still held."""
    with running_service(config(vault)):
        (vault.folder(Folder.DONE) / "Build.md").write_text("---\ntitle: an older one\n---\nx\n")
        drop(vault, tmp_path, "Build.md", BUILD)
        done = wait_status(vault.folder(Folder.DONE) / "Build (2).md", "done")
    plan = vault.folder(Folder.PLANS) / f"{str(done.meta['plan']).strip('[]')}.md"
    lost = plan.read_text().replace('where: "Done/Build (2).md"', 'where: "Needs_Action/Build.md"')
    assert lost != plan.read_text()
    plan.write_text(lost.replace("status: done", "status: executing"))
    with running_service(config(vault)):
        arrive(vault, tmp_path, Folder.NEEDS_ACTION, "Build.md", BUILD)  # the stale buffer
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Build.md", "pending_approval")
    assert copy_of(held) == done.task_id
    assert held_as(held).startswith(f"the same text as {done.task_id} ")
    assert "(Done/Build (2).md, done)" in held_as(held)
    assert ran(vault) == [done.task_id]
