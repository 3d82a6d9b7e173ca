"""One run of one task, in a thread of its own: claim the note, run the agent, record the end.

The thread owns the run's agent processes (and its check's, rounds.py), its prompt file and its
transcript, and makes two edits of the note: the claim (`executing`, before the agent may
start) and the end (done, a retry, failed, cancelled; with the move to its folder). Each is a
compare-and-set decided on the very text it replaces, so a person's cancel saved a moment
before wins. While the run lives, the
main loop holds its task as running and writes that note only to put the claim back over a stale
copy, never once `recording` is set. Everything the main loop learns comes from the messages
this thread posts, in this order: `Claimed`, `AgentGone`, `RunEnded` (or `RunEnded` alone when
the note could no longer be claimed), with a `CannotWrite` before `RunEnded` for each write the
disk refused (full, read-only: the end is tried again until it is written). The thread never
touches another thread's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..base import fsops
from ..base.config import Config
from ..base.diskspace import is_disk_error
from ..base.errors import NoteRefused
from ..notes.lifecycle import Status, check_transition
from ..notes.notefile import NoteGone, NoteStore
from ..notes.records import update_plan_head
from ..notes.review import sent_mark, unsent
from ..notes.taskfile import TaskNote, edit_note_text, parse_note, tool_rules
from ..notes.vault import TASK_FOLDERS, Folder, Vault
from .agentproc import ControlPipe, Transcript
from .agents.base import Agent, Outcome, OutcomeKind, Question, RunSpec
from .agents.choose import agent_of_type
from .prompt import prompt_path, read_handbook, review_prompt, write_prompt
from .rounds import Attempt, AttemptParts, base_in_transcript
from .run_end import RetryPolicy, RunEnd, decide_end
from .run_messages import (
    CLAIM,
    RUN_END,
    AgentGone,
    CannotWrite,
    Claimed,
    PostRun,
    RunEnded,
    Waiting,
)
from .runrecords import RunJournal
from .scheduler import RunRequest
from .usage_limit import Pause
from .verify import BadCheck, Check, check_for
from .workrepo import WorkRepo
from .worktree import TaskWorktree, branch_of

log = structlog.get_logger(__name__)


class ClaimLost(Exception):
    """The note is no longer this task's, or no longer `planned`: nothing is started."""


@dataclass(frozen=True)
class Claim:
    """What a claim wrote, and the note it was decided on."""

    note: TaskNote
    keys: dict[str, Any]
    resume: bool


def claim_note(
    notes: NoteStore, path: Path, request: RunRequest, now: datetime, sessions: str = ""
) -> Claim | None:
    """Write the claim on the note if it is still this task and `planned`; else None.
    `sessions`: "ours" (an agent whose session we name: a fresh attempt gets a new uuid),
    "agents" (the agent names it: a fresh attempt has none until it says), "" (none).

    The note is read once, inside the edit: the claim is decided on the very text it replaces,
    so a person who cancelled or changed the note a moment ago wins and nothing is written.
    """
    claimed: list[Claim] = []

    def claim_if_still_planned(text: str) -> str:
        current = parse_note(text, path.name)
        if current.task_id != request.task_id or current.status is not Status.PLANNED:
            raise ClaimLost(request.task_id)
        if current.meta.get("waiting_for"):  # it waits for another task (deciding/waits.py)
            raise ClaimLost(request.task_id)
        check_transition(current.status, Status.EXECUTING, request.task_id)
        session_id, resume = None, False
        previous = current.meta.get("session_id") if sessions else None
        if previous:
            session_id, resume = str(previous), True
        elif sessions == "ours":
            session_id = str(uuid.uuid4())
        keys: dict[str, Any] = {
            "status": Status.EXECUTING,
            "started_at": now,
            "attempts": current.attempts + 1,
            "session_id": session_id,
            "next_attempt_at": None,
            "completed_at": None,
        }
        claimed.append(Claim(current, keys, resume))
        return edit_note_text(text, keys)

    try:
        notes.rewrite(path, claim_if_still_planned)  # durable before it returns
    except (NoteRefused, NoteGone, FileNotFoundError, ClaimLost):
        return None
    return claimed[-1]


@dataclass(frozen=True)
class RunContext:
    """What every run needs from the service, given once."""

    vault: Vault
    config: Config
    agent: Agent
    """The configured agent; a type that names another (`[types.NAME] agent`) gets its own."""
    journal: RunJournal
    now: Callable[[], datetime]
    post: PostRun
    by_type: dict[str, Agent] = field(default_factory=dict)

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes)

    def agent_for(self, task_type: str) -> Agent:
        """The agent that runs tasks of this type (made once per type; run threads may ask at
        once: the worst a race costs is a second, equal agent)."""
        per_type = self.config.for_type(task_type)
        if per_type.agent is None and per_type.acp_command is None:
            return self.agent
        if task_type not in self.by_type:
            self.by_type[task_type] = agent_of_type(self.config, task_type)
        return self.by_type[task_type]


class RunThread:
    """One attempt of one task (see the module docstring)."""

    def __init__(self, run_id: int, request: RunRequest, path: Path, ctx: RunContext) -> None:
        self.run_id = run_id
        self.request = request
        self.path = path
        self.ctx = ctx
        self.agent = ctx.agent_for(request.task_type)
        """The backend of this task's type (RunContext.agent_for)."""
        self.recording = threading.Event()
        """Set by this thread before it records the end: the claim is no longer put back."""
        self._control = ControlPipe()
        self._stopping = threading.Event()
        """Set by a shutdown's interrupt: a wait to record the end on a full disk gives up."""
        self._where = path
        """Where the note is now, as the main loop last told (`moved`): its end is recorded
        there."""
        self._thread = threading.Thread(
            target=self._main, name=f"run-{request.task_id}", daemon=True
        )

    @property
    def task_id(self) -> str:
        return self.request.task_id

    def start(self) -> None:
        self._thread.start()

    def stop(self, interrupt: bool = False) -> None:
        """Cancel (a person) or interrupt (shutdown): the thread stops the agent's group.
        Any thread. Once the agent is gone, an interrupt ends a wait to record the run's end
        on a disk that takes no writes; nothing else is left to stop."""
        self._control.stop(interrupt)
        if interrupt:
            self._stopping.set()

    def answer(self, number: int, allow: bool) -> None:
        """A person's answer to the agent's question `number` (a rejection ends the run). Any
        thread; does nothing once the agent is gone, or the question no longer waits."""
        self._control.answer(number, allow)

    def moved(self, path: Path) -> None:
        """The main loop moved the note (the run asks a person, or was answered): its end is
        recorded there. Main loop's thread; read by this run's thread when it records."""
        self._where = path

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the run's thread -------------------------------------------------------------------

    def _main(self) -> None:
        try:
            spec, claim = self._claim()
        except OSError as err:  # the disk (said once, by the main loop), or a permission
            if is_disk_error(err):
                self.ctx.post(CannotWrite(self.task_id, CLAIM, self.path, err))
            else:
                log.exception("cannot claim the task", task_id=self.task_id)
            self._skipped(f"cannot write the claim: {err}", True, is_disk_error(err))
            return
        except Exception as err:  # a bug: the next safety sweep tries again
            log.exception("cannot claim the task", task_id=self.task_id)
            self._skipped(f"internal error while claiming: {err}", claim_error=True)
            return
        if spec is None or claim is None:
            self._skipped("the note changed before it could be claimed", claim_error=False)
            return
        self.ctx.post(Claimed(self.run_id, self.task_id, self.path, claim.keys))
        started = time.monotonic()
        transcript = Transcript(self.ctx.vault.transcripts / f"{self.task_id}.jsonl")
        try:
            outcome = Attempt(spec, self._check(claim), self._parts(transcript, claim)).run()
        except Exception as err:  # it says it never raises; a run must end whatever happens
            log.exception("run crashed", task_id=self.task_id)
            outcome = Outcome(OutcomeKind.TRANSIENT, error=f"internal error: {err}")
        finally:
            self._control.close()
        duration = time.monotonic() - started
        self._agent_gone(outcome, duration, transcript)
        self.recording.set()
        self._end(outcome, duration, claim)

    def _agent_gone(self, outcome: Outcome, duration: float, transcript: Transcript) -> None:
        """The slot is free now (max_parallel counts agents); the cost (and a usage limit's
        pause) count before the next start is decided. The transcript's last line."""
        pause = None
        if outcome.kind is OutcomeKind.PAUSED and outcome.resets_at is not None:
            pause = Pause(outcome.resets_at, outcome.limit, self.task_id)
        self.ctx.post(AgentGone(self.run_id, self.task_id, outcome.cost_usd, pause))
        with contextlib.suppress(OSError):
            transcript.write(
                "end",
                outcome=outcome.kind.value,
                exit_code=outcome.exit_code,
                error=outcome.error or None,
                duration_s=round(duration, 3),
                cost_usd=outcome.cost_usd,
                rounds=len(outcome.rounds) or None,
            )
        transcript.close()

    def _end(self, outcome: Outcome, duration: float, claim: Claim) -> None:
        """The end recorded on the note (and the plan's head), then `RunEnded`, whatever
        happened while recording."""
        after, end = self._recorded(outcome, duration, claim)
        if after is not None and end is not None:
            self._follow_in_plan(after, end.status)
        self.ctx.post(
            RunEnded(
                self.run_id,
                self.task_id,
                outcome,
                end,
                self.path,
                after,
                duration,
                workdir=self.request.workdir,
                title=claim.note.title,
            )
        )

    def _recorded(
        self, outcome: Outcome, duration: float, claim: Claim
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
                return self._record(outcome, duration, claim, recording)
            except OSError as err:
                if not is_disk_error(err):
                    log.exception("cannot record the run", task_id=self.task_id)
                    return self.path, None
                self.ctx.post(CannotWrite(self.task_id, RUN_END, self._where, err))
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

    def _check(self, claim: Claim) -> Check | BadCheck | None:
        """The task's check, read from the note the claim was decided on (BadCheck: it cannot
        run as written, and the attempt fails at once saying so)."""
        try:
            return check_for(claim.note.meta, self.ctx.config, self.request.task_type)
        except BadCheck as err:
            return err

    def _parts(self, transcript: Transcript, claim: Claim) -> AttemptParts:
        ctx, plan = self.ctx, self.request.plan

        def next_prompt(spec: RunSpec, failure: str) -> None:
            write_prompt(ctx.vault, self.agent, spec, claim.note, plan, failure, self.request.after)

        meta = claim.note.meta
        repo = WorkRepo(
            self.request.workdir,
            claim.note.title,
            self.task_id,
            ctx.config.max_commit_file_bytes,
            branch=branch_of(self.task_id) if claim.note.on_repo else None,
        )
        worktree = None
        if claim.note.on_repo:
            recorded = {k: _text(meta.get(k)) for k in ("branch", "base_branch", "head_commit")}
            worktree = TaskWorktree(
                meta.get("repo"),
                ctx.config.allowed_roots,
                self.request.workdir,
                self.task_id,
                meta.get("base"),
                recorded,
            )
        base = _text(meta.get("base_commit")) or base_in_transcript(transcript.path)
        return AttemptParts(
            self.agent,
            ctx.config,
            ctx.journal,
            transcript,
            self._control,
            next_prompt,
            repo,
            base,
            worktree,
            self._told,
        )

    def _told(self, question: Question | None, session_id: str | None) -> None:
        """The agent began (or ended) waiting for a person's answer: the main loop decides."""
        self.ctx.post(Waiting(self.run_id, self.task_id, self._where, question, session_id))

    def _follow_in_plan(self, where: Path, status: Status) -> None:
        """The plan's head follows the note to where its end put it. Here, not in the main
        loop: only this run writes its task's plan now (a task is planned again only when it
        does not run), and the main loop takes the next task meanwhile; it updates the
        records in memory when it takes RunEnded."""
        plan = self.request.plan
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

    def _skipped(self, why: str, claim_error: bool, disk_error: bool = False) -> None:
        self._control.close()
        outcome = Outcome(OutcomeKind.SKIPPED, why)
        ended = RunEnded(self.run_id, self.task_id, outcome, None, self.path, None, 0.0)
        self.ctx.post(dataclasses.replace(ended, claim_error=claim_error, disk_error=disk_error))

    def _claim(self) -> tuple[RunSpec | None, Claim | None]:
        """The claim, then the work dir and the prompt. A crash in between leaves an
        interrupted attempt, which is retried; a work dir or prompt that cannot be made (a
        full disk, a permission) ends this attempt as a transient failure, recorded like any
        other (so it is counted, and retried after a backoff)."""
        ctx, request = self.ctx, self.request
        claim = claim_note(ctx.notes, self.path, request, ctx.now(), sessions_of(self.agent))
        if claim is None:
            return None, None
        spec = RunSpec(
            task_id=request.task_id,
            task_type=request.task_type,
            note_path=self.path,
            vault=ctx.vault.root,
            workdir=request.workdir,
            prompt_file=prompt_path(ctx.vault, request.task_id),
            attempt=claim.keys["attempts"],
            session_id=claim.keys["session_id"],
            resume=claim.resume,
            allowed_tools=tool_rules(claim.note.meta, "granted_tools"),
            handbook=read_handbook(ctx.vault) if self.agent.reads_prompt else "",
        )
        try:
            if claim.note.meta.get("repo") in (None, ""):  # else the worktree is made there
                fsops.ensure_dir(request.workdir)
        except OSError as err:
            error = f"cannot make the work dir {request.workdir}: {err}"
            return dataclasses.replace(spec, setup_error=error), claim
        if self.agent.reads_prompt:
            try:
                news = review_prompt(self._review_news(claim))
                write_prompt(
                    ctx.vault, self.agent, spec, claim.note, request.plan, news, request.after
                )
            except OSError as err:
                error = f"cannot write the prompt file {spec.prompt_file}: {err}"
                spec = dataclasses.replace(spec, setup_error=error)
        return spec, claim

    def _record(
        self, outcome: Outcome, duration: float, claim: Claim, recording: Recording
    ) -> tuple[Path | None, RunEnd | None]:
        """Write how the run ended on the note and move it; where it is now, and the end."""
        if outcome.kind is OutcomeKind.INTERRUPTED:
            log.warning(
                "run interrupted",
                action_type="run_end",
                task_id=self.task_id,
                result="left executing; retried on the next start",
            )
            return self._where, None
        answered = sent_mark(claim.note.review_comments) if self._review_news(claim) else None
        where = self._where
        after, end = record_end(
            self.ctx, where, self.task_id, outcome, duration, claim.keys, answered, recording
        )
        if after is None and end is None:  # moved as this run began recording: where to now?
            found = self._where if self._where != where else self._found(where.name)
            if found is not None and found != where:
                after, end = record_end(
                    self.ctx,
                    found,
                    self.task_id,
                    outcome,
                    duration,
                    claim.keys,
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

    @staticmethod
    def _review_news(claim: Claim) -> str:
        """A person's comments on the work under review that its agent was not told yet."""
        note = claim.note
        return unsent(note.review_comments, note.meta.get("review_sent"))


class NotThisRun(Exception):
    """The note at a run's place holds another task's text now: its end is not written."""


@dataclass
class Recording:
    """What a run's last try to record its end wrote on the note, kept across tries: a try
    whose write went through but whose move the disk refused left the end on the note, and
    the next try must move that very end, not decide again on a text that now says `done`
    (which would read as a person's end)."""

    text: str | None = None
    end: RunEnd | None = None


def sessions_of(agent: Agent) -> str:
    """Who names the agent's sessions (claim_note's `sessions`)."""
    if not getattr(agent, "uses_sessions", False):
        return ""
    return "agents" if getattr(agent, "names_sessions", False) else "ours"


BEFORE_THE_CLAIM: frozenset[Status | None] = frozenset(
    {None, Status.NEW, Status.PLANNED, Status.APPROVED, Status.PENDING_APPROVAL, Status.IN_REVIEW}
)
"""Statuses a stale copy of a running task's note can bring back (an editor's older buffer,
a sync tool's older version: also one from before its last review round)."""


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
        if tried.end is not None and text == tried.text:  # written before; the move was not
            ends.append(tried.end)
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
    except NoteRefused as err:
        log.error(
            "run ended but its note cannot be read",
            action_type="run_end",
            task_id=task_id,
            error=err.reason,
            result=outcome.kind.value,
        )
        return path, None
    except NotThisRun as other:
        log.error(
            "run ended but its note holds another task now",
            action_type="run_end",
            task_id=task_id,
            target=ctx.vault.rel(path),
            error=f"the note at its place says task_id {other}: left as it is",
            result=outcome.kind.value,
        )
        return path, None
    except (NoteGone, FileNotFoundError):
        log.error(
            "run ended but its note is gone",
            action_type="run_end",
            task_id=task_id,
            result=outcome.kind.value,
            error=outcome.error,
        )
        return None, None
    if moved_to is None:  # moved or deleted by a person right after the record
        return None, ends[-1]
    _log_end(ctx.vault.rel(moved_to), task_id, ends[-1], outcome, duration)
    return moved_to, ends[-1]


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


def _text(value: object) -> str | None:
    """A key the note records as text (None: missing, empty or not text)."""
    return value.strip() if isinstance(value, str) and value.strip() else None
