"""The lifecycle table: complete, pure, and safe under any sequence of events (hypothesis)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_employee.base.errors import InvalidTransition
from ai_employee.notes.lifecycle import (
    HOME,
    RULES,
    TERMINAL,
    Action,
    Facts,
    Status,
    Step,
    check_transition,
    decide,
)
from ai_employee.notes.vault import TASK_FOLDERS, Folder

STATUSES: list[Status | None] = [None, *Status]
DOCS = Path(__file__).resolve().parent.parent / "docs"


def all_facts() -> list[Facts]:
    out = []
    for place, status in itertools.product(TASK_FOLDERS, STATUSES):
        for flags in itertools.product([False, True], repeat=6):
            needs, approved, planned, stale, running, due = flags
            out.append(Facts(place, status, needs, approved, planned, stale, running, due))
            if running:  # its agent waits for a person: what the note shows and grants
                for shown, granted in itertools.product([False, True], repeat=2):
                    facts = Facts(place, status, needs, approved, planned, stale, running, due)
                    out.append(replace(facts, run_waits=True, ask_shown=shown, ask_granted=granted))
    return out


def test_a_waiting_agent_is_answered_only_on_a_persons_approval_and_held_meanwhile() -> None:
    for facts in all_facts():
        step = decide(facts)
        if step.action is Action.ANSWER:  # only what a person was shown, and approved
            assert facts.running and facts.run_waits
            approval = facts.place is Folder.APPROVED or (
                facts.place is Folder.PENDING_APPROVAL and facts.status is Status.APPROVED
            )
            assert facts.ask_granted or (facts.ask_shown and approval), facts
            assert step.place is Folder.NEEDS_ACTION and step.status is Status.EXECUTING
        if step.action is Action.ASK:
            assert facts.run_waits and step.place is Folder.PENDING_APPROVAL
        waits = facts.running and facts.run_waits and facts.status is not Status.DRAFT
        if waits and facts.status in TERMINAL:
            assert step.action is Action.STOP, "a person's end answers it (a rejection)"
        elif waits and facts.place in (Folder.NEEDS_ACTION, Folder.PENDING_APPROVAL):
            held = (Action.ASK, Action.ANSWER, Action.NOTHING, Action.SET_STATUS)
            assert step.action in held, facts
        if not facts.run_waits:
            assert step.action not in (Action.ASK, Action.ANSWER)


def test_the_table_has_a_rule_for_every_folder_status_and_fact() -> None:
    for facts in all_facts():
        step = decide(facts)
        assert isinstance(step, Step)
        if step.status is not None:
            check_transition(facts.status, step.status, "t")
        if step.action is Action.RUN:
            assert not facts.needs_approval or facts.approved
            assert not facts.running and facts.due


def test_draft_is_never_touched_and_refusal_and_empty_come_first() -> None:
    for facts in all_facts():
        if facts.status is Status.DRAFT:
            assert decide(facts).action is Action.NOTHING
        assert decide(replace(facts, refused="bad yaml")).action is Action.REFUSE
        assert decide(replace(facts, empty=True)).action is Action.WAIT


def test_invalid_transition_names_the_task_and_both_statuses() -> None:
    with pytest.raises(InvalidTransition, match="cannot go from done to executing for 'k3x9'"):
        check_transition(Status.DONE, Status.EXECUTING, "k3x9")
    with pytest.raises(InvalidTransition, match="cannot go from no status to done"):
        check_transition(None, Status.DONE, "k3x9")


def test_docs_show_the_table_generated_from_the_rules() -> None:
    assert "<!-- BEGIN generated:lifecycle-rules -->" in (DOCS / "LIFECYCLE.md").read_text()
    assert len(RULES) > 20


# --- a model of the vault, driven by random sequences of events -------------------------------


@dataclass
class Model:
    place: Folder
    status: Status | None
    needs_approval: bool
    approved: bool = False
    planned: bool = False
    running: bool = False
    due: bool = True
    person_approved: bool = False
    runs: int = 0
    waits: bool = False
    """Its running agent waits for a person's answer (ACP)."""
    shown: bool = False
    """... and the note shows what it asks (ASK wrote it)."""

    def facts(self) -> Facts:
        return Facts(
            self.place,
            self.status,
            self.needs_approval,
            self.approved,
            self.planned,
            False,
            self.running,
            self.due,
            run_waits=self.running and self.waits,
            ask_shown=self.shown,
        )

    def service(self) -> list[Step]:
        """Let the service act until it has nothing more to do (as it would, event by event)."""
        steps = []
        for _ in range(12):
            step = decide(self.facts())
            assert decide(self.facts()) == step, "decisions are pure"
            steps.append(step)
            if step.action in (Action.NOTHING, Action.WAIT):
                return steps
            self.apply(step)
        raise AssertionError(f"the service never settles: {steps}")

    def apply(self, step: Step) -> None:
        old = self.status
        if step.status is not None:
            check_transition(old, step.status, "model")
        if step.action is Action.RUN:
            assert not self.running, "a second run of a running task"
            assert not self.needs_approval or self.person_approved, "ran without approval"
            self.running, self.runs = True, self.runs + 1
        if step.action is Action.APPROVE:
            assert self.place is Folder.APPROVED or (
                self.place is Folder.PENDING_APPROVAL and self.status is Status.APPROVED
            )
            self.approved = True
            self.planned = True
        if step.action is Action.PLAN:
            self.planned = True
        if step.action is Action.ANSWER:
            assert self.running and self.waits, "answered with nothing waiting"
            assert self.place is Folder.APPROVED or (
                self.place is Folder.PENDING_APPROVAL and self.status is Status.APPROVED
            ), "answered without a person's approval"
            self.waits = False
        if step.action is Action.ASK:
            self.shown = True
        if step.action in (Action.INTERRUPTED, Action.STOP):
            self.running = self.waits = False
        if step.status is not None:
            self.status = step.status
        if step.place is not None:
            self.place = step.place


events = st.one_of(
    st.tuples(st.just("move"), st.sampled_from(TASK_FOLDERS)),
    st.tuples(st.just("set"), st.sampled_from(STATUSES)),
    st.tuples(st.just("finish"), st.sampled_from(["success", "transient", "permanent"])),
    st.tuples(st.just("crash"), st.none()),
    st.tuples(st.just("ask"), st.none()),
    st.tuples(st.just("time"), st.none()),
    st.tuples(st.just("service"), st.none()),
)


@settings(max_examples=3000, deadline=None)
@given(
    needs_approval=st.booleans(),
    start=st.sampled_from(STATUSES),
    sequence=st.lists(events, max_size=30),
)
def test_property_any_sequence_of_events_is_safe(
    needs_approval: bool, start: Status | None, sequence: list[tuple[str, object]]
) -> None:
    """For any sequence of a person's acts, run outcomes, crashes and service looks:
    - a type that needs approval never reaches a run without a person's approval;
    - after the service settles, every terminal status is in its folder;
    - every status change the service makes is in the transition table;
    - a draft is never touched; decisions are pure; a running task never gets a second run.
    """
    model = Model(Folder.NEEDS_ACTION, start, needs_approval)
    for kind, arg in sequence:
        if kind == "move":
            assert isinstance(arg, Folder)
            model.place = arg
            # The service never writes `approved`: a note that shows it in Pending_Approval/
            # or that is moved into Approved/ got there by a person's act.
            if arg is Folder.APPROVED or (
                arg is Folder.PENDING_APPROVAL and model.status is Status.APPROVED
            ):
                model.person_approved = True
        elif kind == "set":
            model.status = arg  # type: ignore[assignment]
            if arg is Status.APPROVED and model.place is Folder.PENDING_APPROVAL:
                model.person_approved = True
        elif kind == "finish" and model.running and model.status is Status.EXECUTING:
            model.running = model.waits = False
            if arg == "success":
                model.status, model.place = Status.DONE, Folder.DONE
            elif arg == "permanent":
                model.status, model.place = Status.FAILED, Folder.FAILED
            else:
                model.status, model.due = Status.PLANNED, False
        elif kind == "crash":
            model.running = model.waits = False
        elif kind == "ask" and model.running:  # a new question: not on the note yet
            model.waits, model.shown = True, False
        elif kind == "time":
            model.due = True
        elif kind == "service":
            before = (model.place, model.status)
            steps = model.service()
            if before[1] is Status.DRAFT:
                assert steps == [decide(model.facts())] and (model.place, model.status) == before
            if (
                model.status in TERMINAL
                and not model.running
                and model.place in (Folder.NEEDS_ACTION, Folder.PENDING_APPROVAL, Folder.REJECTED)
            ):
                assert model.place is HOME[model.status] or (
                    model.place is Folder.REJECTED and model.status is Status.REJECTED
                ), (model.place, model.status)
