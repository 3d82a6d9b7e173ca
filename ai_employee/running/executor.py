"""One run of one task, in a thread of its own: claim the note, run the agent, record the end.

The thread owns the run's agent processes (and its check's, rounds.py), its prompt file and its
transcript, and makes two edits of the note: the claim (`executing`, before the agent may
start) and the end (done, a retry, failed, cancelled; with the move to its folder: written by
its EndRecorder, end_record.py). Each is a compare-and-set decided on the very text it
replaces, so a person's cancel saved a moment before wins. While the run lives, the main loop
holds its task as running and writes that note only to put the claim back over a stale copy,
never once `recording` is set. Everything the main loop learns comes from the messages this
thread posts, in this order: `Claimed`, `AgentGone`, `RunEnded` (or `RunEnded` alone when the
note could no longer be claimed), with a `CannotWrite` before `RunEnded` for each write the
disk refused (full, read-only: the end is tried again until it is written). The thread never
touches another thread's state."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..base import fsops
from ..base.diskspace import is_disk_error
from ..base.errors import NoteRefused
from ..notes.lifecycle import Status, check_transition
from ..notes.notefile import NoteGone, NoteStore
from ..notes.review import sent_mark, unsent
from ..notes.taskfile import TaskNote, edit_note_text, parse_note, tool_rules
from .agentproc import ControlPipe, Transcript
from .agents.base import Agent, Outcome, OutcomeKind, Question, RunSpec
from .end_record import EndRecorder
from .prompt import prompt_path, read_handbook, review_prompt, write_prompt
from .rounds import Attempt, AttemptParts, base_in_transcript
from .run_context import RunContext
from .run_messages import (
    CLAIM,
    AgentGone,
    CannotWrite,
    Claimed,
    RunEnded,
    Waiting,
)
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
        self._end_record = EndRecorder(ctx, request.task_id, path, request.plan)
        """How its end gets on the note (end_record.py); knows where the note is now."""
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
            self._end_record.interrupt()

    def answer(self, number: int, allow: bool) -> None:
        """A person's answer to the agent's question `number` (a rejection ends the run). Any
        thread; does nothing once the agent is gone, or the question no longer waits."""
        self._control.answer(number, allow)

    def moved(self, path: Path) -> None:
        """The main loop moved the note (the run asks a person, or was answered): its end is
        recorded there. Main loop's thread; read by this run's thread when it records."""
        self._end_record.where = path

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
        answered = sent_mark(claim.note.review_comments) if self._review_news(claim) else None
        after, end = self._end_record.record(outcome, duration, claim.keys, answered)
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
        where = self._end_record.where
        self.ctx.post(Waiting(self.run_id, self.task_id, where, question, session_id))

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

    @staticmethod
    def _review_news(claim: Claim) -> str:
        """A person's comments on the work under review that its agent was not told yet."""
        note = claim.note
        return unsent(note.review_comments, note.meta.get("review_sent"))


def sessions_of(agent: Agent) -> str:
    """Who names the agent's sessions (claim_note's `sessions`)."""
    if not getattr(agent, "uses_sessions", False):
        return ""
    return "agents" if getattr(agent, "names_sessions", False) else "ours"


def _text(value: object) -> str | None:
    """A key the note records as text (None: missing, empty or not text)."""
    return value.strip() if isinstance(value, str) and value.strip() else None
