"""The lifecycle: statuses, and the folder x status table as data with pure decisions.

`decide(facts)` is the only place that says what the service does with a note. It walks `RULES`
(first match wins); docs/LIFECYCLE.md is generated from the same rules, so the documentation and
the behaviour cannot drift. `check_transition` guards every status change we make. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..base.errors import InvalidTransition
from .vault import TASK_FOLDERS, Folder


class Status(StrEnum):
    """A task's state, kept in its note's `status` key. The folder follows the state."""

    NEW = "new"
    """Dropped by a person; not planned yet (a missing status means the same)."""
    DRAFT = "draft"
    """A person is still writing it: never touched."""
    PLANNED = "planned"
    """A plan exists; runs when allowed (auto type or approved) and due."""
    PENDING_APPROVAL = "pending_approval"
    """Waits in Pending_Approval/ for a person."""
    APPROVED = "approved"
    """A person approved it; the service records it and runs it."""
    EXECUTING = "executing"
    """Claimed: an agent run was started for it."""
    IN_REVIEW = "in_review"
    """Its run succeeded and is committed; it waits in Pending_Approval/ for a person's review
    (`review:`): accepted, it is done; changes requested, it runs again; rejected, its work
    dir is put back."""
    DONE = "done"
    """Finished successfully, in Done/."""
    FAILED = "failed"
    """Failed after its retries, in Failed/."""
    CANCELLED = "cancelled"
    """Stopped by a person, in Done/."""
    REJECTED = "rejected"
    """Refused by a person, in Rejected/."""


class Priority(StrEnum):
    """Run order: high before normal before low, then oldest first."""

    HIGH = "high"
    """Runs first."""
    NORMAL = "normal"
    """The default."""
    LOW = "low"
    """Runs when nothing else waits."""

    @property
    def rank(self) -> int:
        return {"high": 0, "normal": 1, "low": 2}[self.value]


TERMINAL: frozenset[Status] = frozenset(
    {Status.DONE, Status.FAILED, Status.CANCELLED, Status.REJECTED}
)
"""Statuses that end a task; each has its folder."""

HOME: dict[Status, Folder] = {
    Status.DONE: Folder.DONE,
    Status.CANCELLED: Folder.DONE,
    Status.FAILED: Folder.FAILED,
    Status.REJECTED: Folder.REJECTED,
    Status.PENDING_APPROVAL: Folder.PENDING_APPROVAL,
    Status.IN_REVIEW: Folder.PENDING_APPROVAL,
}
"""Where a note with this status belongs (others live in Needs_Action)."""


class Action(StrEnum):
    """What the service does with a note."""

    NOTHING = "nothing"
    """Leave it as it is."""
    WAIT = "wait"
    """Look again later (empty note, a retry not due yet, waiting for a person)."""
    PLAN = "plan"
    """Write the plan, set `status: planned`, then decide again."""
    RUN = "run"
    """Claim it (`executing`) and start an agent run."""
    HOLD = "hold"
    """Set `pending_approval` and move it to Pending_Approval/."""
    APPROVE = "approve"
    """Record a person's approval, plan it if never planned, back to Needs_Action as planned."""
    SET_STATUS = "set_status"
    """Set the status the rule names, then decide again."""
    MOVE = "move"
    """Move it to its status's folder (finishes a move a crash interrupted)."""
    ASK = "ask"
    """Its run's agent waits, alive, for a person's answer: `pending_approval` with what it
    asks (`requested_tools`) and its session, in Pending_Approval/."""
    ANSWER = "answer"
    """A person approved what its waiting run asks: the approval recorded, the tool granted,
    back to Needs_Action as `executing`, and the answer sent to the run, which goes on."""
    REQUEST_CHANGES = "request_changes"
    """A person asks for changes to the work under review (their `## Review`): planned again,
    its next run told their comments (the same session), then back to review."""
    ACCEPT = "accept"
    """Record a person's acceptance of the work under review: done, to Done/."""
    PUT_BACK = "put_back"
    """A person rejected the work under review: its work dir as it was before the task, the
    task's commits kept under a ref the note names (once)."""
    STOP = "stop"
    """Stop its run (a person cancelled, rejected or ended it); the run's end moves the note."""
    INTERRUPTED = "interrupted"
    """An attempt died with us: count it, then handle the note as planned."""
    REFUSE = "refuse"
    """Untrusted note: leave it untouched and say why."""


@dataclass(frozen=True)
class Facts:
    """Everything a decision depends on, read from the note, the config and the live runs."""

    place: Folder
    status: Status | None
    needs_approval: bool = False
    """Its type is not auto-executed, or it says requires_approval."""
    approved: bool = False
    """A person's approval is recorded (`approved_at`)."""
    planned: bool = False
    """It has a plan (`plan` key)."""
    plan_stale: bool = False
    """Its body changed after the plan was written."""
    running: bool = False
    """A live agent run of ours belongs to it."""
    due: bool = True
    """`next_attempt_at` is missing or past."""
    empty: bool = False
    refused: str | None = None
    """Why the note cannot be trusted, if it cannot."""
    review_asked: bool = False
    """Work under review that a person sent back with comments not sent to the agent yet."""
    work_to_put_back: bool = False
    """Reviewed work (`review:`) whose commits are recorded and not yet put back or kept."""
    blocked: bool = False
    """A task its `after:` names is not done yet (or no task answers to a name)."""
    run_waits: bool = False
    """Its live run's agent waits for a person's answer to a permission request (ACP)."""
    ask_shown: bool = False
    """... and the note shows what it asks (`requested_tools`): a person who approves the
    note approves that."""
    ask_granted: bool = False
    """... and the note grants it (`granted_tools`), by an approval recorded since the agent
    asked (`ai-employee approve` or the page approved it)."""


@dataclass(frozen=True)
class Step:
    """The decision: an action, and the status and folder it leads to."""

    action: Action
    status: Status | None = None
    place: Folder | None = None
    says: str = ""


Condition = Callable[[Facts], bool]


def _always(f: Facts) -> bool:
    return True


def _running(f: Facts) -> bool:
    return f.running


def _waits(f: Facts) -> bool:
    return f.running and f.run_waits


def _granted(f: Facts) -> bool:
    return f.running and f.run_waits and f.ask_granted


def _shown(f: Facts) -> bool:
    return f.running and f.run_waits and f.ask_shown


def _unapproved(f: Facts) -> bool:
    return f.needs_approval and not f.approved


def _unplanned(f: Facts) -> bool:
    return not f.planned or f.plan_stale


def _not_due(f: Facts) -> bool:
    return not f.due


def _put_back(f: Facts) -> bool:
    return f.work_to_put_back


def _review_asked(f: Facts) -> bool:
    return f.review_asked


def _blocked(f: Facts) -> bool:
    return f.blocked


_CONDITION_TEXT: dict[Condition, str] = {
    _always: "",
    _running: "ours and running",
    _waits: "ours, running, and its agent waits for a person's answer",
    _granted: "its agent waits for what the note now grants (`granted_tools`)",
    _shown: "its agent waits for what the note shows it asks (`requested_tools`)",
    _unapproved: "type needs approval and none is recorded",
    _unplanned: "no plan yet (or the body changed since)",
    _not_due: "`next_attempt_at` not reached",
    _put_back: "reviewed work not put back yet",
    _review_asked: "its `## Review` holds comments not sent yet",
    _blocked: "a task its `after:` names is not done",
}


@dataclass(frozen=True)
class Rule:
    """One row of the lifecycle table."""

    place: Folder
    statuses: frozenset[Status | None]
    when: Condition
    step: Step


def _rule(
    place: Folder,
    statuses: set[Status | None],
    action: Action,
    says: str,
    *,
    when: Condition = _always,
    status: Status | None = None,
    to: Folder | None = None,
) -> Rule:
    return Rule(place, frozenset(statuses), when, Step(action, status, to, says))


_ANY: set[Status | None] = {None, *Status}
_NA, _PA, _AP, _RJ = Folder.NEEDS_ACTION, Folder.PENDING_APPROVAL, Folder.APPROVED, Folder.REJECTED
S = Status

RULES: tuple[Rule, ...] = (
    # Never touched, wherever it is.
    *(_rule(p, {S.DRAFT}, Action.NOTHING, "a person is still writing it") for p in TASK_FOLDERS),
    # A run of ours is alive: only a person's end to it (or a stale copy) matters.
    *(
        _rule(p, set(TERMINAL), Action.STOP, "stop the run: a person ended it", when=_running)
        for p in TASK_FOLDERS
    ),
    # Its run waits, alive, for a person's answer to what its agent asks (ACP). A person
    # answers only what the note shows: anything else it asks is shown first.
    *(
        _rule(
            p,
            _ANY - {S.DRAFT} - set(TERMINAL),
            Action.ANSWER,
            "a person granted what its run asks (`approve`, the page): the run answered",
            when=_granted,
            status=S.EXECUTING,
            to=_NA,
        )
        for p in (_NA, _PA, _AP)
    ),
    _rule(
        _PA,
        {S.APPROVED},
        Action.ANSWER,
        "a person approved what its run asks: recorded, the run answered and goes on",
        when=_shown,
        status=S.EXECUTING,
        to=_NA,
    ),
    _rule(
        _AP,
        _ANY - {S.DRAFT} - set(TERMINAL),
        Action.ANSWER,
        "a person approved what its run asks: recorded, the run answered and goes on",
        when=_shown,
        status=S.EXECUTING,
        to=_NA,
    ),
    _rule(_PA, {S.PENDING_APPROVAL}, Action.NOTHING, "its run waits for a person", when=_shown),
    *(
        _rule(
            p,
            _ANY - {S.DRAFT, S.IN_REVIEW} - set(TERMINAL),
            Action.ASK,
            "its run asks a person for a tool: shown, in Pending_Approval/, while it waits",
            when=_waits,
            status=S.PENDING_APPROVAL,
            to=_PA,
        )
        for p in (_NA, _PA, _AP)
    ),
    _rule(
        _NA,
        {None, S.NEW, S.PLANNED, S.APPROVED, S.PENDING_APPROVAL, S.IN_REVIEW},
        Action.SET_STATUS,
        "it runs: a stale copy wrote an old status back; ours is restored",
        when=_running,
        status=S.EXECUTING,
    ),
    *(
        _rule(
            p,
            _ANY - {S.DRAFT} - set(TERMINAL),
            Action.NOTHING,
            "it runs; decided when it ends",
            when=_running,
        )
        for p in (_NA, _PA, _AP, Folder.DONE, Folder.FAILED)
    ),
    _rule(_NA, {None, S.NEW}, Action.PLAN, "plan it", status=S.PLANNED),
    _rule(
        _NA,
        {S.PLANNED},
        Action.WAIT,
        "wait for the tasks it runs after (an approval is asked once they are done)",
        when=_blocked,
    ),
    _rule(
        _NA,
        {S.PLANNED},
        Action.HOLD,
        "ask a person",
        when=_unapproved,
        status=S.PENDING_APPROVAL,
        to=_PA,
    ),
    _rule(_NA, {S.PLANNED}, Action.PLAN, "plan it (again)", when=_unplanned, status=S.PLANNED),
    _rule(_NA, {S.PLANNED}, Action.WAIT, "wait for the retry time", when=_not_due),
    _rule(_NA, {S.PLANNED}, Action.RUN, "claim it and run the agent", status=S.EXECUTING),
    _rule(
        _NA,
        {S.EXECUTING},
        Action.HOLD,
        "ask a person",
        when=_unapproved,
        status=S.PENDING_APPROVAL,
        to=_PA,
    ),
    _rule(
        _NA,
        {S.EXECUTING},
        Action.INTERRUPTED,
        "an interrupted attempt (a crash, or written by hand): count it, then as planned",
        status=S.PLANNED,
    ),
    _rule(
        _NA,
        {S.PENDING_APPROVAL},
        Action.HOLD,
        "to Pending_Approval/",
        status=S.PENDING_APPROVAL,
        to=_PA,
    ),
    _rule(
        _NA,
        {S.APPROVED},
        Action.HOLD,
        "to Pending_Approval/ (approval only by a person's move)",
        when=_unapproved,
        status=S.PENDING_APPROVAL,
        to=_PA,
    ),
    _rule(_NA, {S.APPROVED}, Action.PLAN, "plan it", when=_unplanned, status=S.PLANNED),
    _rule(_NA, {S.APPROVED}, Action.SET_STATUS, "as planned", status=S.PLANNED),
    _rule(
        _NA,
        {S.IN_REVIEW},
        Action.REQUEST_CHANGES,
        "a person asks for changes: planned again, its next run told their comments",
        when=_review_asked,
        status=S.PLANNED,
    ),
    _rule(
        _NA,
        {S.IN_REVIEW},
        Action.MOVE,
        "back to Pending_Approval/: it waits for a person's review",
        to=_PA,
    ),
    _rule(_NA, {S.DONE, S.CANCELLED}, Action.MOVE, "finish the move to Done/", to=Folder.DONE),
    _rule(_NA, {S.FAILED}, Action.MOVE, "finish the move to Failed/", to=Folder.FAILED),
    _rule(_NA, {S.REJECTED}, Action.MOVE, "finish the move to Rejected/", to=_RJ),
    _rule(_PA, {S.PENDING_APPROVAL}, Action.WAIT, "wait for a person"),
    _rule(_PA, {S.IN_REVIEW}, Action.WAIT, "wait for a person's review"),
    _rule(
        _PA,
        {S.APPROVED},
        Action.APPROVE,
        "a person approved: record it, back to Needs_Action as planned, run",
        status=S.PLANNED,
        to=_NA,
    ),
    _rule(_PA, {S.REJECTED}, Action.MOVE, "to Rejected/", to=_RJ),
    _rule(_PA, {S.DONE, S.CANCELLED}, Action.MOVE, "to Done/", to=Folder.DONE),
    _rule(_PA, {S.FAILED}, Action.MOVE, "to Failed/", to=Folder.FAILED),
    _rule(_PA, {None, S.NEW}, Action.PLAN, "plan it, then wait for a person", status=S.PLANNED),
    _rule(
        _PA,
        {S.PLANNED, S.EXECUTING},
        Action.SET_STATUS,
        "wait for a person",
        status=S.PENDING_APPROVAL,
    ),
    _rule(
        _AP,
        {S.IN_REVIEW},
        Action.ACCEPT,
        "a person accepted the work: done, to Done/",
        status=S.DONE,
        to=Folder.DONE,
    ),
    _rule(
        _AP,
        _ANY - {S.DRAFT},
        Action.APPROVE,
        "a person's approval: record it, plan it if never planned, "
        "back to Needs_Action as planned, run",
        status=S.PLANNED,
        to=_NA,
    ),
    _rule(
        _RJ,
        {S.REJECTED},
        Action.PUT_BACK,
        "put its work dir back as before the task, its commits kept under a ref",
        when=_put_back,
    ),
    _rule(_RJ, {S.REJECTED}, Action.NOTHING, "rejected"),
    _rule(
        _RJ,
        _ANY - {S.DRAFT, S.REJECTED},
        Action.SET_STATUS,
        "a person rejected it (a run of it is stopped)",
        status=S.REJECTED,
    ),
    _rule(Folder.DONE, _ANY, Action.NOTHING, "not watched (`ai-employee retry` brings it back)"),
    _rule(Folder.FAILED, _ANY, Action.NOTHING, "not watched (`ai-employee retry` brings it back)"),
)


def decide(facts: Facts) -> Step:
    """The next step for a note. Pure: the same facts always give the same step."""
    if facts.refused is not None:
        return Step(Action.REFUSE, says=facts.refused)
    if facts.empty:
        return Step(Action.WAIT, says="empty note: wait until it has content")
    for rule in RULES:
        if rule.place == facts.place and facts.status in rule.statuses and rule.when(facts):
            return rule.step
    raise AssertionError(f"no lifecycle rule for {facts}")  # the table is complete (tested)


TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset(
        {S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.CANCELLED, S.EXECUTING}
    ),
    S.NEW: frozenset(
        {S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.CANCELLED, S.EXECUTING}
    ),
    S.DRAFT: frozenset(),
    S.PLANNED: frozenset(
        {S.PLANNED, S.EXECUTING, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.CANCELLED}
    ),
    S.PENDING_APPROVAL: frozenset({S.PLANNED, S.APPROVED, S.REJECTED, S.CANCELLED, S.EXECUTING}),
    S.APPROVED: frozenset(
        {S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.CANCELLED, S.EXECUTING}
    ),
    S.EXECUTING: frozenset(  # approved: a person's approval kept when its run ends asking
        {S.DONE, S.FAILED, S.PLANNED, S.CANCELLED, S.PENDING_APPROVAL, S.REJECTED}
        | {S.IN_REVIEW, S.APPROVED}
    ),
    S.IN_REVIEW: frozenset({S.DONE, S.PLANNED, S.REJECTED, S.CANCELLED, S.EXECUTING}),
    S.DONE: frozenset({S.PLANNED, S.REJECTED}),
    S.FAILED: frozenset({S.PLANNED, S.REJECTED}),
    S.CANCELLED: frozenset({S.PLANNED, S.REJECTED}),
    S.REJECTED: frozenset({S.PLANNED, S.APPROVED}),
}
"""Every status change we may make. A person may write anything; we only make these.

`executing` is restored over an older status only while our run of the task is alive (a stale
editor buffer wrote the old status back).

Done, failed, cancelled and rejected notes come back only as `planned`, through a person's act
(`ai-employee retry`, a move into Approved/), or become rejected when a person moves them there."""


def check_transition(old: Status | None, new: Status, task_id: str) -> None:
    """Raise InvalidTransition unless the table allows old -> new (staying put is allowed)."""
    if new != old and new not in TRANSITIONS[old]:
        raise InvalidTransition(old if old is not None else "no status", new, task_id)


COMMAND_FROM: dict[str, frozenset[Status | None]] = {
    "approve": frozenset({None, S.NEW, S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED}),
    "reject": frozenset({None, S.NEW, S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.IN_REVIEW}),
    "accept": frozenset({S.IN_REVIEW}),
    "request-changes": frozenset({S.IN_REVIEW}),
    "retry": frozenset({S.FAILED, S.CANCELLED}),
    "cancel": frozenset({None, S.NEW, S.PLANNED, S.PENDING_APPROVAL, S.APPROVED, S.EXECUTING}),
}
"""The statuses each vault-editing command accepts (a person's act, so wider than the service)."""


def check_command(command: str, old: Status | None, new: Status, task_id: str) -> None:
    """Raise InvalidTransition unless `command` may move a note from `old` to `new`."""
    if old not in COMMAND_FROM[command]:
        allowed = ", ".join(
            sorted({"new" if s is None else s.value for s in COMMAND_FROM[command]})
        )
        raise InvalidTransition(
            old if old is not None else "no status", new, task_id, hint=f"{command} takes {allowed}"
        )
    check_transition(old, new, task_id)


def is_due(next_attempt_at: datetime | None, now: datetime) -> bool:
    return next_attempt_at is None or next_attempt_at <= now


def markdown_table() -> str:
    """The rules as the markdown table in docs/LIFECYCLE.md."""
    rows = [
        "| folder | status found | when | the service | status after | folder after |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        if rule.step.action is Action.NOTHING and rule.statuses == {S.DRAFT}:
            continue
        statuses = (
            ", ".join(
                "missing" if s is None else f"`{s.value}`"
                for s in sorted(rule.statuses, key=lambda s: "" if s is None else s.value)
            )
            if rule.statuses != frozenset(_ANY)
            else "any"
        )
        if rule.statuses == frozenset(_ANY - {S.DRAFT}):
            statuses = "any but `draft`"
        if rule.statuses == frozenset(_ANY - {S.DRAFT, S.REJECTED}):
            statuses = "any but `draft`, `rejected`"
        rows.append(
            f"| {rule.place.value} | {statuses} | {_CONDITION_TEXT[rule.when]} | "
            f"{rule.step.action.value}: {rule.step.says} | "
            f"{f'`{rule.step.status.value}`' if rule.step.status else ''} | "
            f"{rule.step.place.value if rule.step.place else ''} |"
        )
    rows.append("| any | `draft` | | nothing: a person is still writing it | | |")
    return "\n".join(rows)
