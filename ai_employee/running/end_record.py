"""A run's end, written on its note: decided on the very text it replaces (a person's cancel
saved a moment before wins), with the move to its folder, again while the disk takes no
writes, then the plan's head. Used by a run's thread (executor.py); `concluded` is pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..base.config import Config
from ..base.diskspace import is_disk_error
from ..base.errors import NoteRefused
from ..notes.lifecycle import Status
from ..notes.notefile import NoteGone
from ..notes.records import update_plan_head
from ..notes.taskfile import edit_note_text, locate, parse_note, tool_rules
from ..notes.vault import TASK_FOLDERS, Folder
from .agents.base import Outcome, OutcomeKind
from .run_context import RunContext
from .run_end import RetryPolicy, RunEnd, decide_end
from .run_messages import RUN_END, CannotWrite

log = structlog.get_logger(__name__)

BEFORE_THE_CLAIM: frozenset[Status | None] = frozenset(
    {None, Status.NEW, Status.PLANNED, Status.APPROVED, Status.PENDING_APPROVAL, Status.IN_REVIEW}
)
"""Statuses a stale copy of a running task's note can bring back (an editor's older buffer,
a sync tool's older version: also one from before its last review round)."""


class EndRecorder:
    """Writes one run's end on its note wherever the note is now, again while the disk takes
    no writes, then has the plan's head follow. Used by the run's thread (`record`); `where`
    is set by the main loop's thread (the note moved while the run lived) and `interrupt` by
    any thread (a shutdown: a wait for the disk gives up)."""

    def __init__(self, ctx: RunContext, task_id: str, path: Path, plan: Path | None) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self.path = path
        self.plan = plan
        self.where = path
        """Where the note is now, as the main loop last told: its end is recorded there."""
        self._stopping = threading.Event()

    def interrupt(self) -> None:
        self._stopping.set()

    def record(
        self, outcome: Outcome, duration: float, keys: Mapping[str, Any], answered: str | None
    ) -> tuple[Path | None, RunEnd | None]:
        """The end recorded on the note and the plan's head: where the note is now (None: it
        went away), and the end (None: not recorded). `keys`: what the claim wrote;
        `answered`: the review comments this run was told (record_end)."""
        after, end = self._recorded(outcome, duration, keys, answered)
        if after is not None and end is not None:
            self._follow_in_plan(after, end.status)
        return after, end

    def _recorded(
        self, outcome: Outcome, duration: float, keys: Mapping[str, Any], answered: str | None
    ) -> tuple[Path | None, RunEnd | None]:
        """`_record`, again every `sweep_seconds` while the disk takes no writes (full,
        read-only; each failure posted, said once by the main loop) until it is written or
        the service stops. Each write is whole or not at all: a try that wrote the end but
        could not move the note leaves that end, which the next try moves (`Recording`). If
        the service stops first, the next start finds the note `executing` (the task runs
        again, an interrupted attempt) or with its end written (it is moved then)."""
        recording = Recording()
        while True:
            try:
                return self._record(outcome, duration, keys, answered, recording)
            except OSError as err:
                if not is_disk_error(err):
                    log.exception("cannot record the run", task_id=self.task_id)
                    return self.path, None
                self.ctx.post(CannotWrite(self.task_id, RUN_END, self.where, err))
            except Exception:
                log.exception("cannot record the run", task_id=self.task_id)
                return self.path, None
            if self._stopping.wait(self.ctx.config.sweep_seconds):
                log.warning(
                    "run's end not recorded",
                    action_type="run_end",
                    task_id=self.task_id,
                    outcome=outcome.kind.value,
                    result="the disk took no writes until the service stopped: the note "
                    "stays executing, and the task runs again at the next start",
                )
                return self.path, None

    def _record(
        self,
        outcome: Outcome,
        duration: float,
        keys: Mapping[str, Any],
        answered: str | None,
        recording: Recording,
    ) -> tuple[Path | None, RunEnd | None]:
        """Write how the run ended on the note and move it; where it is now, and the end."""
        if outcome.kind is OutcomeKind.INTERRUPTED:
            log.warning(
                "run interrupted",
                action_type="run_end",
                task_id=self.task_id,
                result="left executing; retried on the next start",
            )
            return self.where, None
        where = self.where
        after, end = record_end(
            self.ctx, where, self.task_id, outcome, duration, keys, answered, recording
        )
        if after is None and end is None:  # moved as this run began recording: where to now?
            found = self.where if self.where != where else self._found(where.name)
            if found is not None and found != where:
                after, end = record_end(
                    self.ctx,
                    found,
                    self.task_id,
                    outcome,
                    duration,
                    keys,
                    answered,
                    recording,
                )
        return after, end

    def _found(self, name: str) -> Path | None:
        """The task's note under its name in another task folder (a person's move, or the
        main loop's that has not told this run yet), if it is there."""
        for folder in TASK_FOLDERS:
            path = self.ctx.vault.folder(folder) / name
            with contextlib.suppress(OSError, ValueError, NoteRefused):
                if parse_note(path.read_text(encoding="utf-8"), name).task_id == self.task_id:
                    return path
        return None

    def _follow_in_plan(self, where: Path, status: Status) -> None:
        """The plan's head follows the note to where its end put it. Here, not in the main
        loop: only this run writes its task's plan now (a task is planned again only when it
        does not run), and the main loop takes the next task meanwhile; it updates the
        records in memory when it takes RunEnded."""
        plan = self.plan
        if plan is None:
            return
        try:
            update_plan_head(plan, self.ctx.vault.tmp, self.ctx.vault.rel(where), status)
        except OSError as err:  # the plan is ours and rebuilt; the record is found by name
            log.warning(
                "plan not updated",
                action_type="plan",
                task_id=self.task_id,
                target=self.ctx.vault.rel(plan),
                error=f"{type(err).__name__}: {err}",
            )


class NotThisRun(Exception):
    """The note at a run's place holds another task's text now: its end is not written."""


@dataclass
class Recording:
    """What a run's last try to record its end wrote on the note, kept across tries. A note
    whose front matter is still exactly what we wrote holds this run's end: a try whose move
    the disk refused, or a person's save of the body right after our move (rewrite_and_move
    then edits the note again where it landed). It is moved as it is, never decided again on
    a text that now says `done` (which would read as a person's end, and our `## Result`
    would be written over their save)."""

    text: str | None = None
    end: RunEnd | None = None


def record_end(
    ctx: RunContext,
    path: Path,
    task_id: str,
    outcome: Outcome,
    duration: float,
    claim: Mapping[str, Any],
    answered: str | None = None,
    recording: Recording | None = None,
) -> tuple[Path | None, RunEnd | None]:
    """The end of a run on its note, decided on the text it replaces (`concluded`), then the
    move to its folder: one durable step (notefile.rewrite_and_move). Where the note is now
    (None: gone), and the end (None: not recorded). `answered`: the `review_sent` mark of the
    comments this run was told, recorded when it succeeded (a failed run tells them again).
    `recording`: the run's earlier tries (a note that still holds exactly the text one of them
    wrote keeps that end: only the move is left to do)."""
    ends: list[RunEnd] = []
    tried = recording if recording is not None else Recording()
    place = ctx.vault.folder_of(path)

    def conclude(text: str) -> str:
        if tried.end is not None and tried.text is not None and _head(text) == _head(tried.text):
            ends.append(tried.end)  # our end is on it already (see Recording)
            return text
        end, concluded_text = concluded(
            text, path.name, task_id, claim, outcome, duration, ctx.config, ctx.now(), place
        )
        if answered and end.kind is OutcomeKind.SUCCESS:
            concluded_text = edit_note_text(concluded_text, {"review_sent": answered})
        ends.append(end)
        tried.text, tried.end = concluded_text, end
        return concluded_text

    def destination() -> Path | None:
        folder = ends[-1].folder
        return None if folder is None else ctx.vault.folder(folder)

    try:
        _, moved_to = ctx.notes.rewrite_and_move(path, conclude, destination)
    except (NoteRefused, NotThisRun, NoteGone, FileNotFoundError) as err:
        return _unrecorded(ctx, path, task_id, outcome, err)
    if moved_to is None:  # moved or deleted by a person right after the record
        return None, ends[-1]
    _log_end(ctx.vault.rel(moved_to), task_id, ends[-1], outcome, duration)
    return moved_to, ends[-1]


def _head(text: str) -> str:
    """A note's text up to its body: the front matter, where our end's keys are."""
    try:
        layout = locate(text)
    except NoteRefused:  # an unclosed fence: no front matter to compare
        return text
    return text[: len(layout.bom) + layout.body_start]


def _unrecorded(
    ctx: RunContext, path: Path, task_id: str, outcome: Outcome, err: Exception
) -> tuple[Path | None, None]:
    """A run's end that could not be written, said in the log; where the note is (None: it is
    gone)."""
    if isinstance(err, NoteRefused):
        log.error(
            "run ended but its note cannot be read",
            action_type="run_end",
            task_id=task_id,
            error=err.reason,
            result=outcome.kind.value,
        )
        return path, None
    if isinstance(err, NotThisRun):
        log.error(
            "run ended but its note holds another task now",
            action_type="run_end",
            task_id=task_id,
            target=ctx.vault.rel(path),
            error=f"the note at its place says task_id {err}: left as it is",
            result=outcome.kind.value,
        )
        return path, None
    log.error(
        "run ended but its note is gone",
        action_type="run_end",
        task_id=task_id,
        result=outcome.kind.value,
        error=outcome.error,
    )
    return None, None


def concluded(
    text: str,
    name: str,
    task_id: str,
    claim: Mapping[str, Any],
    outcome: Outcome,
    duration: float,
    config: Config,
    now: datetime,
    place: Folder | None = None,
) -> tuple[RunEnd, str]:
    """The run's end decided on its note's text as it is now (a cancel saved a moment ago is
    seen), and that text with the end written in; `place`: the note's folder.

    A stale copy saved over the note while the run recorded (an older buffer, without the
    claim) is this run's note all the same: the claim and the end are written onto it, as the
    restore of the claim would have, so the run is recorded once and never started again. A
    note that waited in Pending_Approval/ or Approved/ while its agent asked a person, and whose
    run ends to run again, goes back to Needs_Action/ (the question died with the turn).
    """
    note = parse_note(text, name)
    if note.task_id not in (task_id, None):  # another task's text in its place (a sync tool's)
        raise NotThisRun(note.task_id)
    waiting_place = place in (Folder.PENDING_APPROVAL, Folder.APPROVED)
    approved_meanwhile = place is Folder.APPROVED or (
        place is Folder.PENDING_APPROVAL and note.status is Status.APPROVED
    )  # (`approved` written in Needs_Action/ is no approval)
    status, attempts, restored = note.status, note.attempts, {}
    # At the run's own path, a buffer without any task_id is its note too (its keys dropped).
    if note.task_id in (task_id, None) and status in BEFORE_THE_CLAIM:
        restored = {k: v for k, v in claim.items() if k != "status" and v is not None}
        status, attempts = Status.EXECUTING, int(claim.get("attempts") or 1)
    end = decide_end(
        task_id=task_id,
        status=status,
        attempts=int(attempts or claim.get("attempts") or 1),
        outcome=outcome,
        duration_s=duration,
        policy=RetryPolicy.of(config),
        now=now,
        review=config.review_for(note.task_type or config.default_type, note.review, note.on_repo),
        granted=tool_rules(note.meta, "granted_tools"),
        approved_meanwhile=approved_meanwhile,
    )
    if waiting_place and end.kind is not OutcomeKind.ASKED:  # its question died with the turn
        changes = {**end.changes, "requested_tools": None}
        back = end.folder is None and end.status is Status.PLANNED
        folder = Folder.NEEDS_ACTION if back else end.folder
        end = dataclasses.replace(end, folder=folder, changes=changes)
    if note.attempts < int(claim.get("attempts") or 0) and "attempts" not in end.changes:
        restored["attempts"] = claim["attempts"]  # (an ask took it back while it waited)
    return end, edit_note_text(text, {**restored, **end.changes}, end.result)


def _log_end(where: str, task_id: str, end: RunEnd, outcome: Outcome, duration: float) -> None:
    """The "run finished" line of the audit log (a warning unless it ended done or cancelled)."""
    log.log(
        20 if end.kind in (OutcomeKind.SUCCESS, OutcomeKind.CANCELLED) else 30,
        "run finished",
        action_type="run_end",
        task_id=task_id,
        target=where,
        result=end.label,
        error=end.error or None,
        parameters={
            "attempt": end.attempts,
            "duration_s": round(duration, 3),
            "exit_code": outcome.exit_code,
            "cost_usd": outcome.cost_usd,
            "turns": outcome.turns,
            "rounds": len(outcome.rounds) or None,
            "next_attempt_at": end.changes.get("next_attempt_at"),
        },
    )
