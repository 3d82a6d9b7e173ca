"""Whose note is this (identity.py): the precise edges of "the same task"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_employee.notes.identity import (
    SIMILAR,
    CopyOf,
    EditOf,
    Known,
    Own,
    Seen,
    alike,
    conflict_base,
    difference,
    identify,
    similarity,
)
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import text_hash

V = Path("/vault")
PAY = "Pay 170 EUR to A\nPay the invoice of October from the shared account, reference 4711."


def seen(path: str, text: str, task_id: str | None = None) -> Seen:
    return Seen(V / path, task_id, text_hash(text), text)


def known(
    where: str | None,
    text: str = PAY,
    *,
    task_id: str = "t1",
    name: str = "Pay.md",
    planned: str | None = None,
    status: Status = Status.DONE,
    recorded: str | None = None,
) -> Known:
    return Known(
        task_id=task_id,
        title=text.splitlines()[0],
        name=name,
        body_hash=text_hash(planned if planned is not None else text),
        where=V / where if where else None,
        status=status,
        body=text if where else None,
        recorded=V / (recorded or where) if (recorded or where) else None,
    )


@pytest.mark.parametrize(
    ("name", "base", "sure"),
    [
        ("Pay.sync-conflict-20261201-101010-ABC1234.md", "Pay.md", True),
        ("Pay (conflicted copy).md", "Pay.md", True),
        ("Pay (Alice's conflicted copy 2026-12-01).md", "Pay.md", True),
        ("Pay (conflict).md", "Pay.md", True),
        ("Pay 2.md", "Pay.md", False),
        ("Chapter 12.md", None, False),
        ("Pay.md", None, False),
        ("Pay (2).md", None, False),  # our own move suffix: a different note, not a copy
        ("Pay.sync-conflict-2026-x.md", None, False),
    ],
)
def test_sync_tools_conflict_copy_names(name: str, base: str | None, sure: bool) -> None:
    assert conflict_base(name) == (base, sure)


def test_a_note_with_its_own_task_id_is_its_own() -> None:
    assert identify(seen("Needs_Action/Pay.md", PAY, "t1"), known("Needs_Action/Pay.md"), []) == (
        Own()
    )
    assert identify(seen("Needs_Action/Pay.md", PAY, "t9"), None, []) == Own()  # unknown id
    gone = known(None, recorded="Done/Pay.md")
    assert identify(seen("Needs_Action/Pay.md", PAY, "t1"), gone, []) == Own()


def test_a_task_id_that_lives_elsewhere_makes_a_copy() -> None:
    decided = identify(seen("Needs_Action/Pay.md", PAY, "t1"), known("Done/Pay.md"), [])
    assert isinstance(decided, CopyOf)
    assert decided.reason == (
        "it carries the task_id of t1 'Pay 170 EUR to A' (Done/Pay.md, done): the same text"
    )


def test_a_finished_task_whose_text_came_back_edited_is_held_with_what_differs() -> None:
    edited = PAY.replace("reference 4711", "reference 4712")
    decided = identify(seen("Needs_Action/Pay.md", edited), None, [known("Done/Pay.md")])
    assert isinstance(decided, CopyOf)
    assert decided.reason == (
        "a version of t1 'Pay 170 EUR to A' (Done/Pay.md, done): 1 line differs: '4711.' -> '4712.'"
    )


def test_the_same_name_with_other_text_is_a_new_task() -> None:
    other = "Pay 999 EUR to B\nA new supplier, first invoice."
    assert similarity(other, PAY) < SIMILAR
    assert identify(seen("Needs_Action/Pay.md", other), None, [known("Done/Pay.md")]) == Own()
    untitled = known("Done/Untitled.md", "Untitled\nBuy milk and bread", name="Untitled.md")
    next_week = seen("Needs_Action/Untitled.md", "Untitled\nCall the plumber about the sink")
    assert identify(next_week, None, [untitled]) == Own()


def test_the_same_text_under_another_name_is_a_copy() -> None:
    decided = identify(seen("Needs_Action/Renamed.md", PAY), None, [known("Done/Pay.md")])
    assert isinstance(decided, CopyOf) and "the same text as t1" in decided.reason


def test_similar_text_under_another_name_is_a_new_task() -> None:
    edited = PAY.replace("4711", "4712")
    assert identify(seen("Needs_Action/Other.md", edited), None, [known("Done/Pay.md")]) == Own()


def test_a_sure_conflict_copy_is_a_copy_whatever_its_text() -> None:
    name = "Pay.sync-conflict-20261201-101010-ABC1234.md"
    decided = identify(seen(f"Needs_Action/{name}", "anything"), None, [known("Done/Pay.md")])
    assert isinstance(decided, CopyOf) and "a sync tool's conflict copy of t1" in decided.reason


@pytest.mark.parametrize("task_id", [None, "t1"], ids=["without keys", "with its task_id"])
@pytest.mark.parametrize("text", [PAY, PAY.replace("4711", "4712")], ids=["same", "edited"])
def test_a_conflict_copy_of_a_waiting_task_is_never_folded_into_it(
    task_id: str | None, text: str
) -> None:
    """The tool kept one version and set this one aside: it waits beside it, for a person,
    even when the kept one is unchanged since it was planned (an edit would be folded)."""
    waiting = known("Pending_Approval/Pay.md", status=Status.PENDING_APPROVAL)
    name = "Pay.sync-conflict-20261201-101010-ABC1234.md"
    copy = seen(f"Pending_Approval/{name}", text, task_id)
    decided = identify(copy, waiting if task_id else None, [] if task_id else [waiting])
    assert isinstance(decided, CopyOf)
    assert decided.reason.startswith("a sync tool's conflict copy of t1 ")


def test_a_task_id_in_a_note_named_like_a_conflict_copy_of_another_name_is_just_carried() -> None:
    waiting = known("Pending_Approval/Pay.md", status=Status.PENDING_APPROVAL)
    other = seen("Needs_Action/Rent.sync-conflict-20261201-101010-ABC1234.md", PAY, "t1")
    decided = identify(other, waiting, [])
    assert isinstance(decided, EditOf) and decided.reason.startswith("it carries the task_id")


def test_an_icloud_numbered_copy_counts_only_when_its_text_is_alike() -> None:
    alike = PAY.replace("4711", "4712")
    assert isinstance(
        identify(seen("Needs_Action/Pay 2.md", alike), None, [known("Done/Pay.md")]), CopyOf
    )
    other = "Pay 2\nThe second part of the payroll"
    assert identify(seen("Needs_Action/Pay 2.md", other), None, [known("Done/Pay.md")]) == Own()


def test_an_edit_of_a_task_that_waits_unchanged_is_folded_into_it() -> None:
    waiting = known("Pending_Approval/Pay.md", status=Status.PENDING_APPROVAL)
    edited = PAY.replace("4711", "4712")
    decided = identify(seen("Needs_Action/Pay.md", edited, "t1"), waiting, [])
    assert isinstance(decided, EditOf) and decided.original.task_id == "t1"
    keyless = identify(seen("Needs_Action/Pay.md", edited), None, [waiting])
    assert isinstance(keyless, EditOf)


def test_an_edit_of_a_task_that_was_edited_where_it_waits_too_is_held() -> None:
    both = known(
        "Pending_Approval/Pay.md",
        PAY + "\nAlso pay the fee.",
        planned=PAY,
        status=Status.PENDING_APPROVAL,
    )
    decided = identify(seen("Needs_Action/Pay.md", PAY.replace("4711", "4712"), "t1"), both, [])
    assert isinstance(decided, CopyOf)


def test_a_keyless_note_at_its_tasks_own_place_gets_its_task_id_back() -> None:
    place = known(None, recorded="Needs_Action/Pay.md", status=Status.PLANNED)
    assert identify(seen("Needs_Action/Pay.md", PAY), None, [place]) == Own(restore="t1")
    elsewhere = known(None, recorded="Done/Pay.md")
    assert identify(seen("Needs_Action/Pay.md", "Pay\nanything"), None, [elsewhere]) == Own()
    assert isinstance(identify(seen("Needs_Action/Pay.md", PAY), None, [elsewhere]), CopyOf)


def test_other_text_at_a_gone_tasks_place_is_a_new_task() -> None:
    """A person deleted the waiting Pay.md and wrote another: it inherits nothing."""
    place = known(None, recorded="Needs_Action/Pay.md", status=Status.PLANNED)
    edited = PAY.replace("4711", "4712")
    assert identify(seen("Needs_Action/Pay.md", edited), None, [place]) == Own()
    assert identify(seen("Needs_Action/Pay.md", "Pay\nanything"), None, [place]) == Own()


TEMPLATE = "## Client\n\n## Steps\n- [ ] Call the client\n- [ ] Send the offer\n- [ ] File it"
BOILERPLATE = frozenset(line.strip() for line in TEMPLATE.splitlines()) | {"Untitled"}
"""The template's lines and the note's name, as the reconciler gives them."""


def _client(who: str) -> str:
    return "Untitled\n# Untitled\n" + TEMPLATE.replace("## Client\n", f"## Client\n{who}\n")


def test_two_notes_made_from_one_template_are_alike_only_in_what_was_written() -> None:
    """Obsidian's `Untitled.md`, from the vault's template each week: the template's lines
    (and a title that is only the file's name) do not make two notes one task."""
    last_week = _client("ACME Corp, Alexanderplatz 1, Berlin: ask Ms Weber about the offer")
    this_week = _client("Bolt Ltd, 4 Park Row, Leeds: ask Mr Hale about the invoice")
    done = known("Done/Untitled.md", last_week, name="Untitled.md")
    assert similarity(this_week, last_week) >= SIMILAR  # the template alone would say "alike"
    new = Seen(V / "Needs_Action/Untitled.md", None, text_hash(this_week), this_week, BOILERPLATE)
    assert identify(new, None, [done]) == Own()
    fixed = last_week.replace("Weber", "Webber")  # the same note, a typo fixed
    again = Seen(V / "Needs_Action/Untitled.md", None, text_hash(fixed), fixed, BOILERPLATE)
    assert isinstance(identify(again, None, [done]), CopyOf)


def test_what_a_template_and_a_title_leave_to_compare() -> None:
    only_template = _client("")
    assert similarity(only_template, _client("ACME"), BOILERPLATE) == 0.0
    assert similarity(only_template, only_template, BOILERPLATE) == 1.0
    titled = "Pay 170 EUR to A\n# Pay 170 EUR to A\nPay it."
    assert similarity(titled, "Pay 170 EUR to A\nPay it.") == 1.0  # the heading repeats it


@pytest.mark.parametrize("words", [1, 10, 2000])
def test_alike_agrees_with_similarity(words: int) -> None:
    base = " ".join(f"w{i % 37}" for i in range(words))
    for other in [base, base.replace("w3", "x"), "y " * words, base[: len(base) // 2]]:
        assert alike(other, base) == (similarity(other, base) >= SIMILAR)


def test_the_note_itself_is_never_its_own_copy() -> None:
    here = known("Needs_Action/Pay.md", status=Status.PLANNED)
    assert identify(seen("Needs_Action/Pay.md", PAY), None, [here]) == Own()


@pytest.mark.parametrize(
    ("a", "b", "says"),
    [
        ("x\ny", "x\ny", "the same text"),
        ("x\ny", "x\nz", "1 line differs: 'z' -> 'y'"),
        ("pay 10 to A today", "pay 10 to B today", "1 line differs: 'B' -> 'A'"),
        ("x\ny\nw", "x", "2 lines differ"),
    ],
)
def test_what_differs_in_a_few_words(a: str, b: str, says: str) -> None:
    assert difference(a, b) == says
    assert difference(a, None) == "the original's text could not be read"
