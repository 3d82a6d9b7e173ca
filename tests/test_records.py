"""The task records at the head of each plan: written, read back exactly, loaded at start."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee.deciding import planner
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.notefile import NoteStore
from ai_employee.notes.records import TaskRecords, read_record, update_plan_head
from ai_employee.notes.taskfile import parse_note
from ai_employee.notes.vault import Folder, Vault

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def plan_for(vault: Vault, name: str, text: str, task_id: str = "t1") -> Path:
    """The template plan of a note, written as the service writes it."""
    note = parse_note(text, name)
    note = (
        parse_note(f"---\ntask_id: {task_id}\n---\n" + note.body, name) if not note.meta else note
    )
    path = vault.folder(Folder.NEEDS_ACTION) / name
    made = planner.template_plan(note, path, "claude_app", vault.root / "w", NOW)
    planner.write_plan(vault.folder(Folder.PLANS), made, vault.tmp)
    return vault.folder(Folder.PLANS) / made.name


@pytest.mark.parametrize(
    "title",
    [
        'A "quoted" title: with\\ a backslash',
        "é" * 600,  # a head of 1.4 kB: read past the first kilobyte
        "---\nstatus: done\nwhere: Done/evil.md",  # a title cannot forge head fields
        "Ünïcödé 🎉 #tag [[link]]",
    ],
    ids=["quotes", "long", "forged", "unicode"],
)
def test_a_record_reads_back_exactly_what_was_planned(vault: Vault, title: str) -> None:
    text = f"---\ntask_id: t1\ntitle: {json.dumps(title, ensure_ascii=False)}\n---\nPay it.\n"
    plan = plan_for(vault, 'Pay "x" --- (1).md', text)
    record = read_record(plan)
    assert record is not None
    assert (record.task_id, record.title, record.name) == ("t1", title, 'Pay "x" --- (1).md')
    assert record.where == 'Needs_Action/Pay "x" --- (1).md'
    assert record.body_hash == planner.body_hash(parse_note(text, "n.md"))
    assert record.status is Status.PLANNED
    update_plan_head(plan, vault.tmp, "Done/évil\n.md", Status.DONE)
    moved = read_record(plan)
    assert moved is not None and moved.where == "Done/évil\n.md" and moved.title == title
    assert moved.status is Status.DONE and moved.body_hash == record.body_hash


@pytest.mark.parametrize(
    "text",
    [
        "no head at all\n",
        "---\ntitle: x\n---\n",  # no task_id
        "---\ntask_id: ../../etc\nnote: x.md\n---\n",  # not a plain id
        "---\ntask_id: t1\n" + "x" * 70_000,  # never closes
        "",
    ],
    ids=["no head", "no task_id", "path as id", "unclosed", "empty"],
)
def test_a_file_that_is_not_one_of_our_plans_is_no_record(vault: Vault, text: str) -> None:
    path = vault.folder(Folder.PLANS) / "PLAN_x.md"
    path.write_text(text)
    assert read_record(path) is None


def test_two_plans_that_claim_one_task_load_as_the_one_named_for_it(vault: Vault) -> None:
    """A person's copy of a plan, or a sync tool's conflict copy in Plans/, claims the task
    too: the plan named for the task wins, whatever order the folder lists them in."""
    own = plan_for(vault, "Pay.md", "---\ntask_id: t1\n---\nPay it.\n")
    copy = own.with_name("PLAN_Pay (t1).sync-conflict-20261201-101010-ABC1234.md")
    copy.write_text(own.read_text().replace('note: "Pay.md"', 'note: "Other.md"'))
    for first, second in [(own, copy), (copy, own)]:
        os.utime(first, ns=(1, 1_000_000_000))
        os.utime(second, ns=(1, 2_000_000_000))
        records = TaskRecords(vault, NoteStore(vault.root, vault.tmp, 1 << 20))
        assert records.load() == 1
        assert records.plan_of("t1") == own
        assert records.named("Pay.md") == ["t1"] and records.named("Other.md") == []


def test_the_newest_tasks_of_a_common_name_are_searched_first_and_at_most_fifty(
    vault: Vault,
) -> None:
    for i in range(60):
        plan = plan_for(
            vault, "Untitled.md", f"---\ntask_id: u{i:02d}\n---\nNote {i}.\n", f"u{i:02d}"
        )
        os.utime(plan, ns=(1, (i + 1) * 1_000_000_000))
    records = TaskRecords(vault, NoteStore(vault.root, vault.tmp, 1 << 20))
    assert records.load() == 60
    named = records.named("Untitled.md")
    assert named == [f"u{i:02d}" for i in range(59, 9, -1)]
