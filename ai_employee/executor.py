"""Claim, run, record: the exactly-once path from `status: planned` to Done/ or Failed/.

Called from the service's main loop only. The claim (`executing`, `started_at`, `attempts`) is
written to the note before the agent starts; the end of the run is recorded on the note (and its
`## Result`), which then moves to its folder or waits for its retry time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from . import fsops
from .agentproc import Run, RunFinished
from .agents.base import Agent, Outcome, OutcomeKind, RunSpec
from .config import Config
from .errors import NoteRefused
from .lifecycle import Status, check_transition
from .notefile import NoteGone, NoteStore, Placed
from .planner import plan_name
from .reconcile import RunRequest
from .run_end import RetryPolicy, RunEnd, decide_end
from .runrecords import RunJournal
from .taskfile import TaskNote, edit_note_text, parse_note
from .vault import Folder, Vault

log = structlog.get_logger(__name__)


class ClaimLost(Exception):
    """The note changed between our read and our claim: nothing is started."""


@dataclass
class Tally:
    """What happened to runs since the service started (for `once` and the log)."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    cancelled: int = 0
    interrupted: int = 0


@dataclass
class Executor:
    vault: Vault
    config: Config
    agent: Agent
    now: Callable[[], datetime]
    post: Callable[[RunFinished], None]
    agent_gone: Callable[[Run], None] = lambda run: None
    """Told from a run's thread when its agent is gone (the run still records its end)."""
    live: dict[str, Run] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The owned keys each live run's claim wrote (put back over a stale copy)."""
    tally: Tally = field(default_factory=Tally)
    spent: dict[str, float] = field(default_factory=dict)
    """Cost recorded per UTC day."""
    journal: RunJournal | None = None
    """Records of live agents (opened by the service once leftovers from a crash are stopped)."""
    announce: Callable[[Path, Placed, Status | None], None] = lambda path, placed, status: None
    """Told just before a run thread swaps its write into place (see Reconciler.ours)."""

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.of(self.config)

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes)

    def is_running(self, task_id: str) -> bool:
        return task_id in self.live

    def budget_reached(self) -> bool:
        limit = self.config.daily_budget_usd
        return limit > 0 and self.spent.get(self.now().date().isoformat(), 0.0) >= limit

    # --- claim and start --------------------------------------------------------------------

    def start(self, request: RunRequest, path: Path) -> bool:
        """Hand the task to a run thread, which claims it, runs it and records the end.

        From here on the task counts as running, so no second run can start; the thread's
        claim re-reads the note and gives up if it is no longer `planned`.
        """
        if request.task_id in self.live:
            return False
        if self.journal is None:
            self.journal = RunJournal(self.vault.run_journal)
        run = Run(
            task_id=request.task_id,
            prepare=lambda: self._claim(request, path),
            conclude=lambda finished: self.record(
                finished, finished.spec.note_path if finished.spec else path
            ),
            agent=self.agent,
            timeout=self.config.timeout_for(request.task_type),
            stall=self.config.stall_seconds,
            journal=self.journal,
            transcripts=self.vault.transcripts,
            report=self.post,
            agent_done=self._agent_done,
        )
        self.live[request.task_id] = run
        run.start()
        return True

    def _claim(self, request: RunRequest, path: Path) -> RunSpec | None:
        """In the run's thread: write the claim (durably) before the agent may start.

        The note is read once, inside the edit: the claim is decided on the very text it
        replaces (compare and set), so a person who cancelled or changed the note a moment ago
        wins and nothing starts. The note's folder is synced whatever is decided: the main loop
        hands the sync of its own edits there (the plan) to the claim.
        """
        now = self.now()
        uses_sessions = getattr(self.agent, "uses_sessions", False)
        claimed: dict[str, Any] = {}

        def claim_if_still_planned(text: str) -> str:
            current = parse_note(text, path.name)
            if current.task_id != request.task_id or current.status is not Status.PLANNED:
                raise ClaimLost(request.task_id)
            check_transition(current.status, Status.EXECUTING, request.task_id)
            session_id, resume = None, False
            if uses_sessions:
                previous = current.meta.get("session_id")
                session_id, resume = (
                    (str(previous), True) if previous else (str(uuid.uuid4()), False)
                )
            claim: dict[str, Any] = {
                "status": Status.EXECUTING,
                "started_at": now,
                "attempts": current.attempts + 1,
                "session_id": session_id,
                "next_attempt_at": None,
                "completed_at": None,
            }
            claimed.update(note=current, claim=claim, resume=resume)
            return edit_note_text(text, claim)

        placed = None
        try:
            fsops.ensure_dir(request.workdir)
            placed = self.notes.rewrite(
                path,
                claim_if_still_planned,
                announce=lambda placed: self.announce(path, placed, Status.EXECUTING),
            )
        except (NoteRefused, NoteGone, FileNotFoundError, ClaimLost):
            return None
        finally:
            if placed is None:  # no swap, so no sync of ours: the main loop handed it over
                with contextlib.suppress(OSError):
                    fsops.fsync_dir(path.parent)
        note: TaskNote = claimed["note"]
        claim = claimed["claim"]
        spec = RunSpec(
            task_id=request.task_id,
            task_type=request.task_type,
            note_path=path,
            vault=self.vault.root,
            workdir=request.workdir,
            prompt_file=self.vault.machinery / "prompts" / f"{request.task_id}.md",
            attempt=claim["attempts"],
            session_id=claim["session_id"],
            resume=claimed["resume"],
            handbook=self._handbook() if self.agent.reads_prompt else "",
        )
        self.claims[request.task_id] = {k: v for k, v in claim.items() if v is not None}
        # The prompt is written after the claim: a crash in between leaves an interrupted
        # attempt, which is retried (and writes it again). One that cannot be written (a full
        # disk) ends this attempt as a transient failure, recorded like any other. An agent
        # that does not read a prompt gets none.
        if self.agent.reads_prompt:
            try:
                self._write_prompt(spec, note)
            except OSError as err:
                spec = dataclasses.replace(
                    spec, setup_error=f"cannot write the prompt file {spec.prompt_file}: {err}"
                )
        self.tally.started += 1
        return spec

    def _handbook(self) -> str:
        try:
            return self.vault.handbook.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # missing or unreadable: the prompt goes without
            return ""

    def _write_prompt(self, spec: RunSpec, note: TaskNote) -> None:
        plan_path = self.vault.folder(Folder.PLANS) / plan_name(spec.note_path)
        try:
            plan = plan_path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            plan = "(no plan file)"
        header = self.agent.prompt_header(spec).strip()
        parts = [header] if header else []
        parts += [
            f"# Task: {note.title}",
            f"Task id: {spec.task_id}. Type: {spec.task_type}. Attempt {spec.attempt}.",
            f"Work in this directory and nowhere else: {spec.workdir}",
            "## What was asked",
            note.body_without_result.strip() or "(the note has no body; the title is the task)",
            "## The plan",
            plan.strip(),
        ]
        fsops.write_atomic(
            spec.prompt_file,
            ("\n\n".join(parts) + "\n").encode("utf-8"),
            self.vault.tmp,
            durable=False,
        )

    # --- stop -------------------------------------------------------------------------------

    def cancel(self, task_id: str) -> None:
        run = self.live.get(task_id)
        if run is not None and not run.ending:  # a run recording its end has nothing to stop
            log.info(
                "stopping run", action_type="cancel", task_id=task_id, result="a person ended it"
            )
            run.stop()

    def interrupt_all(self) -> None:
        for run in list(self.live.values()):
            run.stop(interrupt=True)

    # --- record -----------------------------------------------------------------------------

    def _agent_done(self, run: Run, outcome: Outcome) -> None:
        """In the run's thread, before the end is recorded: the cost counts at once (the
        budget check before the next start sees it), then a gone agent frees its slot."""
        self._count_cost(outcome)
        if run.agent_gone:
            self.agent_gone(run)

    def finished(self, task_id: str) -> None:
        """The main loop saw the run's end: it no longer counts as running."""
        self.live.pop(task_id, None)
        self.claims.pop(task_id, None)

    def record(self, finished: RunFinished, path: Path | None) -> Path | None:
        """In the run's thread: write how the run ended on the note, move it; return where."""
        # From here on the note is ours to change: the main loop must not restore the claim
        # over what we are about to write.
        claim = self.claims.pop(finished.task_id, {})
        outcome = finished.outcome  # its cost was counted when the agent was done
        if outcome.kind is OutcomeKind.INTERRUPTED:
            self.tally.interrupted += 1
            log.warning(
                "run interrupted",
                action_type="run_end",
                task_id=finished.task_id,
                result="left executing; retried on the next start",
            )
            return path
        ends: list[RunEnd] = []
        name = path.name if path is not None else ""

        def conclude(text: str) -> str:
            # Decided on the very text we replace: a cancel saved a moment ago is seen.
            end = self._end_of(parse_note(text, name), finished, claim)
            ends.append(end)
            return edit_note_text(text, end.changes, end.result)

        def destination() -> Path | None:
            folder = ends[-1].folder
            return None if folder is None else self.vault.folder(folder)

        try:
            if path is None:
                raise NoteGone(finished.task_id)
            note_path = path
            _, moved_to = self.notes.rewrite_and_move(
                path,
                conclude,
                destination,
                announce=lambda placed: self.announce(note_path, placed, ends[-1].status),
            )
        except NoteRefused as err:
            log.error(
                "run ended but its note cannot be read",
                action_type="run_end",
                task_id=finished.task_id,
                error=err.reason,
                result=outcome.kind.value,
            )
            return path
        except (NoteGone, FileNotFoundError):
            log.error(
                "run ended but its note is gone",
                action_type="run_end",
                task_id=finished.task_id,
                result=outcome.kind.value,
                error=outcome.error,
            )
            return None
        end = ends[-1]
        self._count_end(end.kind)
        if moved_to is None:  # moved or deleted by a person right after the record
            return None
        path = moved_to
        log.log(
            20 if end.kind in (OutcomeKind.SUCCESS, OutcomeKind.CANCELLED) else 30,
            "run finished",
            action_type="run_end",
            task_id=finished.task_id,
            target=self._rel(path),
            result=end.label,
            error=end.error or None,
            parameters={
                "attempt": end.attempts,
                "duration_s": round(finished.duration_s, 3),
                "exit_code": outcome.exit_code,
                "cost_usd": outcome.cost_usd,
                "turns": outcome.turns,
                "next_attempt_at": end.changes.get("next_attempt_at"),
            },
        )
        return path

    def _end_of(self, note: TaskNote, finished: RunFinished, claim: dict[str, Any]) -> RunEnd:
        """How the run ends on this note (decided by run_end.decide_end)."""
        return decide_end(
            task_id=finished.task_id,
            status=note.status,
            attempts=int(note.attempts or claim.get("attempts") or 1),
            outcome=finished.outcome,
            duration_s=finished.duration_s,
            policy=self.policy,
            now=self.now(),
        )

    def _count_end(self, kind: OutcomeKind) -> None:
        if kind is OutcomeKind.SUCCESS:
            self.tally.succeeded += 1
        elif kind is OutcomeKind.CANCELLED:
            self.tally.cancelled += 1
        elif kind is OutcomeKind.TRANSIENT:
            self.tally.retrying += 1
        else:
            self.tally.failed += 1

    def _count_cost(self, outcome: Outcome) -> None:
        if outcome.cost_usd:
            day = self.now().date().isoformat()
            self.spent[day] = self.spent.get(day, 0.0) + outcome.cost_usd

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.vault.root))
        except ValueError:
            return str(path)
