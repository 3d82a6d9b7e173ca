"""The lifecycle's steps: what the service does to a note once `lifecycle.decide` has spoken.

One small function per action (`STEPS`), each given the note as it was read and the decision,
each returning where the note is now and the last file it placed there (`Stepped`). They run
in the main loop; their writes are edits of our keys (notefile) and moves. Running a task is
not a write here: the step offers it to the runs, whose thread claims it. A step that leaves a
note for a person (held for approval, a copy held, attempts spent) tells the hooks (notify.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from ..base.config import Config
from ..base.errors import NoteRefused
from ..notes.identity import CopyOf
from ..notes.lifecycle import Action, Status, Step
from ..notes.notefile import NoteStore, Placed, move_note, remove_if_unchanged
from ..notes.records import Record, TaskRecords
from ..notes.taskfile import (
    HELD_AS_COPY,
    OWNED_KEYS,
    TaskNote,
    edit_note_text,
    grant_requested,
    held_reason,
    parse_note,
    tool_rules,
)
from ..notes.vault import Folder, Vault, workdir_for
from ..running.run_end import RetryPolicy, decide_interrupted
from ..running.run_messages import Waiting
from ..running.scheduler import RunRequest
from ..running.usage_limit import local_time
from ..running.verify import done_when
from ..running.workrepo import GitError, WorkRepo
from ..running.worktree import branch_of, merge_accepted
from ..telling.notify import Event, Notice, Tell
from . import planner

log = structlog.get_logger(__name__)


class Runs(Protocol):
    """What a step (and a decision) needs from the runs: the service's run coordinator."""

    def is_running(self, task_id: str) -> bool: ...

    def claim_to_restore(self, task_id: str) -> Mapping[str, Any] | None:
        """The claim to put back over a stale copy; None while unknown or being recorded."""

    def offer(self, request: RunRequest) -> bool:
        """Queue a planned task that may run; True when it was not queued before."""

    def withdraw(self, task_id: str) -> None:
        """A queued task may not run now after all: off the queue."""

    def stop(self, task_id: str) -> None:
        """A person ended a running task: stop its agent."""

    def workdir_busy(self, workdir: Path) -> bool:
        """Whether a run works in this work dir now."""

    def waiting_of(self, task_id: str) -> Waiting | None:
        """What the task's live agent waits for a person to answer, if it waits."""

    def waiting_since(self, task_id: str) -> datetime | None:
        """Since when the task's live agent waits for a person (None: it does not)."""

    def answer(self, task_id: str, allow: bool) -> bool:
        """A person's answer to what the task's agent waits for; False: nothing waits now."""

    def moved(self, task_id: str, path: Path) -> None:
        """A step moved a running task's note: its run records its end there."""


class LookLater(Exception):
    """Nothing can be decided on this note until a message brings it back: its plan is being
    written in the background, or its run's claim is not known yet."""


@dataclass(frozen=True)
class StepContext:
    """What every step needs, for one look."""

    vault: Vault
    config: Config
    notes: NoteStore
    runs: Runs
    plans: planner.Plans
    records: TaskRecords
    tell: Tell
    """Where a step that leaves a note for a person tells them (the notification hooks)."""
    actor: str
    now: datetime

    def plan_path(self, note_path: Path, task_id: str) -> Path:
        """The task's plan: the one its record names, else the one it would get now."""
        recorded = self.records.plan_of(task_id)
        return recorded or self.vault.folder(Folder.PLANS) / planner.plan_name(note_path, task_id)


@dataclass(frozen=True)
class Decided:
    """A note and what was decided for it."""

    path: Path
    note: TaskNote
    step: Step
    task_type: str
    task_id: str
    id_changes: Mapping[str, Any]
    """Our keys to write with whatever step: what identifies the task anew (a first task_id;
    a copy's new one), and what its `after:` comes to (`after_ids`, `waiting_for`)."""
    copy: CopyOf | None = None
    """The task this note is a copy of (it is held for a person)."""
    attention: str | None = None
    """Why it needs a person beyond an approval (a task it waits for failed)."""
    waiting_for: str | None = None
    """What it waits for (the tasks its `after:` names that are not done), while it waits."""
    produced: tuple[str, ...] = ()
    """For a run: what the tasks it ran after produced (its prompt tells the agent)."""


@dataclass(frozen=True)
class Stepped:
    """Where the note is after a step, and the last file the step placed there (its identity
    is the index's for that path; None when the step wrote nothing)."""

    path: Path
    placed: Placed | None = None
    planned: tuple[Path, str] | None = None
    """(note, body hash) of a plan this step wrote: the next step need not read it back."""
    held_because: str | None = None
    """Why the step held the note for a person (a copy): the index's attention line."""


StepFn = Callable[[StepContext, Decided], Stepped]


def _write(
    ctx: StepContext,
    path: Path,
    changes: Mapping[str, Any],
    task_id: str,
    audit: tuple[str, dict[str, Any]] | None = None,
) -> Placed | None:
    placed = ctx.notes.update(path, changes)
    if audit is not None:
        event, fields = audit
        log.info(
            event,
            action_type=event.split()[0],
            target=ctx.vault.rel(path),
            task_id=task_id,
            **fields,
        )
    return placed


def _move(
    ctx: StepContext,
    path: Path,
    folder: Folder,
    task_id: str,
    why: str,
    status: Status | None = None,
) -> Path:
    """Move the note, and its task's record with it (the plan's `where`)."""
    new = move_note(path, ctx.vault.folder(folder))
    ctx.records.moved(task_id, new, status)
    log.info(
        "moved",
        action_type="move",
        target=ctx.vault.rel(new),
        task_id=task_id,
        parameters={"from": ctx.vault.rel(path)},
        result=why,
    )
    return new


def _tell(ctx: StepContext, event: Event, d: Decided, where: Path, detail: str) -> None:
    """Tell a person of this note, now at `where` (its work dir if it has a valid one)."""
    try:
        workdir: Path | None = workdir_of(ctx.config, d.note, d.task_id)
    except NoteRefused:
        workdir = None
    ctx.tell.tell(Notice(event, where, d.task_id, workdir, d.note.title, detail))


def _asked(ctx: StepContext, d: Decided, where: Path) -> None:
    """The note waits in Pending_Approval/ for a person's approval: tell them."""
    _tell(ctx, Event.PENDING_APPROVAL, d, where, f"type {d.task_type} waits for approval")


def workdir_of(config: Config, note: TaskNote, task_id: str) -> Path:
    """apps/<language>/<app>/ for this note, checked to stay inside the allowed roots."""
    return workdir_for(
        config.apps_dir,
        config.allowed_roots,
        task_id,
        note.meta.get("language"),
        note.meta.get("app"),
        note.meta.get("repo"),
    )


# --- the steps ----------------------------------------------------------------------------


def leave(ctx: StepContext, d: Decided) -> Stepped:
    """NOTHING, REFUSE: the note stays as it is."""
    return Stepped(d.path)


def wait(ctx: StepContext, d: Decided) -> Stepped:
    """WAIT: the note stays as it is; a run offered before (queued when it could run, and now
    it waits for another task, or a retry's time) is withdrawn."""
    ctx.runs.withdraw(d.task_id)
    return Stepped(d.path)


def hold_copy(ctx: StepContext, d: Decided) -> Stepped:
    """A copy of another task's note: a new task, straight to a person (its reason on it)."""
    assert d.copy is not None
    placed = _write(ctx, d.path, d.id_changes, d.task_id)
    why = d.copy.reason
    log.warning(
        "copy held",
        action_type="copy",
        target=ctx.vault.rel(d.path),
        task_id=d.task_id,
        parameters={"copy_of": d.copy.original.task_id},
        result="waits for a person's approval",
        error=why,
    )
    held = d.path
    if ctx.vault.folder_of(d.path) is not Folder.PENDING_APPROVAL:
        held = _move(ctx, d.path, Folder.PENDING_APPROVAL, d.task_id, "copy held")
    _tell(ctx, Event.NEEDS_ATTENTION, d, held, HELD_AS_COPY + why)
    return Stepped(held, placed, held_because=why)


def fold_edit(ctx: StepContext, d: Decided, waiting: Path, why: str) -> Stepped:
    """A later version of a task that waits for approval (pulled, synced, a stale buffer saved
    after the move): its text becomes that task's note, with the task's keys; then it goes.
    Decided on the waiting note as it is when written: if a person changed it meanwhile, the
    two are looked at again, nothing is lost."""
    _, snap = ctx.notes.read(d.path)
    text = snap.data.decode("utf-8")
    original, _ = ctx.notes.read(waiting)

    def take_their_text(current: str) -> str:
        now_there = parse_note(current, waiting.name)
        if now_there.asked != original.asked or now_there.owned() != original.owned():
            raise LookLater(waiting)  # the waiting note changed too: decide again
        keys = {k: original.meta.get(k) for k in OWNED_KEYS}
        return edit_note_text(text, keys)

    placed = ctx.notes.rewrite(waiting, take_their_text)
    # The plan a person reads before approving is of their new text (not while the task runs:
    # its plan is its run's until the run ends; the text is planned again after, if it waits).
    if placed is not None and not ctx.runs.is_running(d.task_id):
        _plan_again(ctx, waiting, parse_note(placed.data.decode("utf-8"), waiting.name))
    removed = remove_if_unchanged(d.path, snap, ctx.vault.tmp)
    log.info(
        "edit of a waiting task",
        action_type="edit",
        target=ctx.vault.rel(waiting),
        task_id=d.task_id,
        parameters={"from": ctx.vault.rel(d.path), "removed": removed},
        result=why,
    )
    return Stepped(waiting, placed)


def _plan_again(ctx: StepContext, path: Path, note: TaskNote) -> None:
    """A waiting task's text changed: its plan is made again (Claude's in the background), and
    its record compares later notes with the new text."""
    assert note.task_id is not None
    task_type = note.task_type or ctx.config.default_type
    workdir = workdir_of(ctx.config, note, note.task_id)
    made = planner.template_plan(
        note,
        path,
        task_type,
        workdir,
        ctx.now,
        status=note.status or Status.PENDING_APPROVAL,
        done_when=done_when(note.meta, ctx.config, task_type),
    )
    ctx.plans.write(path, note, made, workdir)
    ctx.records.asked_now(note.task_id, note.title, planner.body_hash(note))


def run(ctx: StepContext, d: Decided) -> Stepped:
    """RUN: offer the task to the runs (their thread claims it)."""
    queued = ctx.runs.offer(
        RunRequest(
            d.path,
            d.task_id,
            d.note.priority.value,
            d.task_type,
            d.note.when("planned_at"),
            workdir_of(ctx.config, d.note, d.task_id),
            ctx.plan_path(d.path, d.task_id),
            d.produced,
        )
    )
    if queued:
        log.info(
            "queued",
            action_type="queue",
            target=ctx.vault.rel(d.path),
            task_id=d.task_id,
            parameters={"priority": d.note.priority.value},
        )
    return Stepped(d.path)


def stop(ctx: StepContext, d: Decided) -> Stepped:
    """STOP: a person ended a running task; its run's end moves the note."""
    ctx.runs.stop(d.task_id)
    return Stepped(d.path)


def plan(ctx: StepContext, d: Decided, extra: Mapping[str, Any] | None = None) -> Stepped:
    """PLAN: write the plan, then `status: planned` with the plan's link."""
    note = d.note if d.note.task_id == d.task_id else _with_id(d.note, d.task_id)
    workdir = workdir_of(ctx.config, note, d.task_id)
    check = done_when(note.meta, ctx.config, d.task_type)
    made = planner.template_plan(note, d.path, d.task_type, workdir, ctx.now, done_when=check)
    if not ctx.plans.write(d.path, note, made, workdir):
        # Claude is writing it; PlanWritten brings the note back. The task_id goes on the note
        # first: the plan is named after it, and the next look must find the same task.
        if d.id_changes.get("task_id"):
            _write(ctx, d.path, {"task_id": d.id_changes["task_id"]}, d.task_id)
        raise LookLater(d.path)
    plan_path = ctx.vault.folder(Folder.PLANS) / made.name
    ctx.records.add(
        Record(
            d.task_id,
            plan_path.name,
            note.title,
            d.path.name,
            planner.body_hash(note),
            ctx.vault.rel(d.path),
            Status.PLANNED,
        )
    )
    changes = {
        **(d.id_changes if extra is None else extra),
        "status": Status.PLANNED,
        "plan": planner.plan_link(plan_path),
        "planned_at": ctx.now,
    }
    audit = ("planned", {"parameters": {"plan": made.name, "planner": ctx.config.planner}})
    placed = _write(ctx, d.path, changes, d.task_id, audit)
    return Stepped(d.path, placed, (d.path, planner.body_hash(d.note)))


def approve(ctx: StepContext, d: Decided) -> Stepped:
    """APPROVE: a person's approval, recorded; planned first if it never was; then back to
    Needs_Action as planned."""
    changes: dict[str, Any] = {
        **d.id_changes,
        "approved_at": ctx.now,
        "approved_by": ctx.actor,
        "next_attempt_at": None,
    }
    if held_reason(d.note.meta.get("error")):  # a copy a person approved: a task of its own
        changes["error"] = None
    requested = tool_rules(d.note.meta, "requested_tools")
    changes |= grant_requested(d.note.meta)  # what the agent asked for, this task's only
    plan_path = ctx.plan_path(d.path, d.task_id)
    planned = bool(d.note.meta.get("plan")) and not planner.plan_is_stale(plan_path, d.note)
    placed = None
    if not planned:
        placed = plan(ctx, d, extra=changes).placed
        changes = {}
    audit_fields: dict[str, Any] = {"approval_status": "approved", "approved_by": ctx.actor}
    if requested:
        audit_fields["parameters"] = {"granted_tools": list(requested)}
    audit = ("approved", audit_fields)
    placed = _write(ctx, d.path, {**changes, "status": Status.PLANNED}, d.task_id, audit) or placed
    moved = _move(ctx, d.path, Folder.NEEDS_ACTION, d.task_id, "approved", Status.PLANNED)
    return Stepped(moved, placed)


def interrupted(ctx: StepContext, d: Decided) -> Stepped:
    """INTERRUPTED: an attempt that died with a service counts (run_end's attempts rule)."""
    counted = decide_interrupted(d.note.attempts, RetryPolicy.of(ctx.config), ctx.now)
    fields: dict[str, Any] = {"result": counted.summary}
    if counted.error:
        fields["error"] = counted.error
    changes = {**d.id_changes, **counted.changes}
    placed = _write(ctx, d.path, changes, d.task_id, ("interrupted attempt", fields))
    if counted.folder is None:
        return Stepped(d.path, placed)
    moved = _move(ctx, d.path, counted.folder, d.task_id, "attempts spent", Status.FAILED)
    _tell(ctx, Event.FAILED, d, moved, counted.error)
    return Stepped(moved, placed)


def restore_claim(ctx: StepContext, d: Decided) -> Stepped:
    """SET_STATUS executing: a stale copy dropped the claim of a running task; put it back.
    Decided inside the edit: a run that begins recording its end meanwhile is never written
    over (and a claim not known yet waits for the run's Claimed)."""

    def restore(text: str) -> str:
        claim = ctx.runs.claim_to_restore(d.task_id)
        if not claim:
            raise LookLater(d.path)
        keys = {k: v for k, v in claim.items() if v is not None}
        return edit_note_text(text, {**d.id_changes, **keys, "status": Status.EXECUTING})

    placed = ctx.notes.rewrite(d.path, restore)
    log.info(
        "claim restored",
        action_type="claim",
        target=ctx.vault.rel(d.path),
        task_id=d.task_id,
        result="a stale copy wrote an old status",
    )
    return Stepped(d.path, placed)


def set_status(ctx: StepContext, d: Decided) -> Stepped:
    """SET_STATUS: the status the rule names (executing: see restore_claim)."""
    if d.step.status is Status.EXECUTING:
        return restore_claim(ctx, d)
    assert d.step.status is not None, d.step
    placed = _write(ctx, d.path, {**d.id_changes, "status": d.step.status}, d.task_id)
    if d.step.status is Status.PENDING_APPROVAL:  # a note put in Pending_Approval/ by hand
        _asked(ctx, d, d.path)
    return Stepped(d.path, placed)


def hold(ctx: StepContext, d: Decided) -> Stepped:
    """HOLD: `pending_approval`, in Pending_Approval/."""
    placed = None
    if d.id_changes or d.note.status is not Status.PENDING_APPROVAL:
        changes = {**d.id_changes, "status": Status.PENDING_APPROVAL}
        placed = _write(ctx, d.path, changes, d.task_id)
    where = d.path
    if d.step.place is not None and ctx.vault.folder_of(d.path) is not d.step.place:
        why = "waits for approval"
        where = _move(ctx, d.path, d.step.place, d.task_id, why, Status.PENDING_APPROVAL)
    _asked(ctx, d, where)
    return Stepped(where, placed)


def ask(ctx: StepContext, d: Decided) -> Stepped:
    """ASK: its run's agent waits, alive, for a person's answer: `pending_approval` with what
    it asks (`requested_tools`, and in `error` the call as a person reads it) and its session
    (an approval after a restart loads it), in Pending_Approval/; no attempt spent while it
    waits (the claim's count less one; ANSWER puts it back, and a run that ends meanwhile
    counts from its claim). Decided inside the edit: a run that begins recording its end
    meanwhile decides instead."""
    asked: list[Waiting] = []

    def hold_while_it_waits(text: str) -> str:
        waiting = ctx.runs.waiting_of(d.task_id)
        if waiting is None or waiting.question is None:
            raise LookLater(d.path)  # its wait ended (the run's end brings the note back)
        asked.append(waiting)
        question = waiting.question
        ask = question.ask
        until = local_time(ctx.now + timedelta(seconds=question.wait_s), ctx.now)
        claim = ctx.runs.claim_to_restore(d.task_id) or {}
        changes = {
            **d.id_changes,
            "status": Status.PENDING_APPROVAL,
            "attempts": max(0, int(claim.get("attempts") or 1) - 1),  # asking spends none
            "requested_tools": [ask.rule],
            "error": (
                f"its agent waits for your answer until {until}: may it use {ask.tool}: "
                f"{ask.asked}? (later, an approval goes on in its session)"
            ),
        }
        if waiting.session_id:
            changes["session_id"] = waiting.session_id
        return edit_note_text(text, changes)

    placed = ctx.notes.rewrite(d.path, hold_while_it_waits)
    rule = asked[-1].question.ask.rule if asked[-1].question else ""
    log.info(
        "asked",
        action_type="approval",
        target=ctx.vault.rel(d.path),
        task_id=d.task_id,
        approval_status="pending",
        parameters={"requested_tools": [rule], "agent": "waits"},
    )
    where = d.path
    if ctx.vault.folder_of(d.path) is not Folder.PENDING_APPROVAL:
        why = "its agent waits for a person's answer"
        where = _move(ctx, d.path, Folder.PENDING_APPROVAL, d.task_id, why, d.step.status)
    ctx.runs.moved(d.task_id, where)
    _tell(ctx, Event.PENDING_APPROVAL, d, where, f"its agent asks for {rule}")
    return Stepped(where, placed)


def answer(ctx: StepContext, d: Decided) -> Stepped:
    """ANSWER: a person approved what the task's waiting agent asks: the approval recorded and
    the tool granted (as APPROVE does), `executing` back in Needs_Action, then the run told
    "allow". Should its wait have ended a moment ago, the run ends asking for what the note
    now grants, and runs again with it (run_end)."""
    requested = tool_rules(d.note.meta, "requested_tools")
    changes: dict[str, Any] = {**d.id_changes, "status": Status.EXECUTING}
    claim = ctx.runs.claim_to_restore(d.task_id)
    if claim and claim.get("attempts"):
        changes["attempts"] = claim["attempts"]  # the run goes on: its attempt counts again
    audit: tuple[str, dict[str, Any]] = ("answered", {"result": "the approval granted it"})
    if requested:  # not recorded yet (`ai-employee approve` and the page record it themselves)
        changes |= {"approved_at": ctx.now, "approved_by": ctx.actor}
        changes |= grant_requested(d.note.meta)
        audit = (
            "approved",
            {
                "approval_status": "approved",
                "approved_by": ctx.actor,
                "parameters": {"granted_tools": list(requested), "answered": "its waiting agent"},
            },
        )
    placed = _write(ctx, d.path, changes, d.task_id, audit)
    moved = d.path
    if ctx.vault.folder_of(d.path) is not Folder.NEEDS_ACTION:
        moved = _move(ctx, d.path, Folder.NEEDS_ACTION, d.task_id, "approved", Status.EXECUTING)
    ctx.runs.moved(d.task_id, moved)  # (a command may have moved it: the run learns it here)
    ctx.runs.answer(d.task_id, allow=True)
    return Stepped(moved, placed)


def move(ctx: StepContext, d: Decided) -> Stepped:
    """MOVE: to the folder of its status (finishes a move a crash interrupted)."""
    assert d.step.place is not None, d.step
    placed = _write(ctx, d.path, d.id_changes, d.task_id) if d.id_changes else None
    moved = _move(ctx, d.path, d.step.place, d.task_id, "move finished", d.note.status)
    return Stepped(moved, placed)


def accept(ctx: StepContext, d: Decided) -> Stepped:
    """ACCEPT: a person accepted the work under review: done, to Done/ (the audit log says
    who and when). A task on a person's repository: its branch left to merge, or with
    `merge = "ff"` its base branch fast-forwarded to it when it can be (`merged` says which)."""
    changes: dict[str, Any] = {**d.id_changes, "status": Status.DONE}
    audit = ("accepted", {"approval_status": "accepted", "approved_by": ctx.actor})
    if d.note.on_repo:
        changes["merged"] = merge_accepted(ctx.config, d.note, d.task_type)
        audit[1]["result"] = changes["merged"]
    placed = _write(ctx, d.path, changes, d.task_id, audit)
    moved = _move(ctx, d.path, Folder.DONE, d.task_id, "accepted", Status.DONE)
    _tell(ctx, Event.DONE, d, moved, "accepted after review")
    return Stepped(moved, placed)


def request_changes(ctx: StepContext, d: Decided) -> Stepped:
    """REQUEST_CHANGES: a person sent work under review back with comments: planned again,
    attempts counted afresh (a review round is not a failure); its run tells the agent the
    comments not sent yet (executor), in the same session."""
    changes = {
        **d.id_changes,
        "status": Status.PLANNED,
        "attempts": 0,
        "next_attempt_at": None,
        "error": None,
    }
    audit = ("changes requested", {"parameters": {"comments": len(d.note.review_comments)}})
    placed = _write(ctx, d.path, changes, d.task_id, audit)
    return Stepped(d.path, placed)


def put_back(ctx: StepContext, d: Decided) -> Stepped:
    """PUT_BACK: a person rejected the work under review: its work dir as it was before the
    task, the task's commits kept under a ref; or left as it is, saying why (another task ran
    there since, one runs there now, changes not committed; a person's repository is never
    reset, the task's branch kept). Once: `put_back` says which."""
    said = _put_back(ctx, d)
    audit = ("work put back", {"result": said})
    placed = _write(ctx, d.path, {**d.id_changes, "put_back": said}, d.task_id, audit)
    return Stepped(d.path, placed)


def _put_back(ctx: StepContext, d: Decided) -> str:
    """Put the rejected task's work dir back (or not); what was done, in words."""
    if d.note.on_repo:
        branch = d.note.meta.get("branch") or branch_of(d.task_id)
        return f"left as it is: your repository is not reset; the branch {branch} is kept"
    base, head = str(d.note.meta.get("base_commit")), str(d.note.meta.get("head_commit"))
    try:
        workdir = workdir_of(ctx.config, d.note, d.task_id)
        if ctx.runs.workdir_busy(workdir):
            return "left as it is: a task runs in its work dir now"
        repo = WorkRepo(workdir, d.note.title, d.task_id, ctx.config.max_commit_file_bytes)
        return repo.put_back(base, head, f"refs/ai-employee/rejected/{d.task_id}")
    except (GitError, NoteRefused) as err:
        return f"left as it is: {err}"


STEPS: Mapping[Action, StepFn] = {
    Action.NOTHING: leave,
    Action.WAIT: wait,
    Action.REFUSE: leave,
    Action.RUN: run,
    Action.STOP: stop,
    Action.PLAN: plan,
    Action.APPROVE: approve,
    Action.INTERRUPTED: interrupted,
    Action.SET_STATUS: set_status,
    Action.HOLD: hold,
    Action.ASK: ask,
    Action.ANSWER: answer,
    Action.MOVE: move,
    Action.ACCEPT: accept,
    Action.REQUEST_CHANGES: request_changes,
    Action.PUT_BACK: put_back,
}
"""The step for each action of lifecycle.decide (every action has one: tested)."""

CONTINUES: frozenset[Action] = frozenset(
    {
        Action.PLAN,
        Action.SET_STATUS,
        Action.INTERRUPTED,
        Action.APPROVE,
        Action.MOVE,
        Action.HOLD,
        Action.REQUEST_CHANGES,
    }
)
"""After these, the note is decided again in the same look (plan, then run or hold, ...)."""


def _with_id(note: TaskNote, task_id: str) -> TaskNote:
    return TaskNote(note.name, {**note.meta, "task_id": task_id}, note.body, note.empty)
