"""The facts of one note: everything `lifecycle.decide` depends on, read from the note, the
configuration, the task's plan and record, and the live runs.

`FactsOf.of` is the reconciler's question "what is true of this note now?"; the answer is a
`lifecycle.Facts`, and the decision is the lifecycle's. It reads (the plan, for staleness) and
never writes. Used in the main loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..base.config import Config
from ..notes.lifecycle import Facts, Status, is_due
from ..notes.records import TaskRecords
from ..notes.review import unsent
from ..notes.taskfile import TaskNote, tool_rules
from ..notes.vault import Folder, Vault
from . import planner
from .steps import Runs


@dataclass(frozen=True)
class FactsOf:
    """Reads the facts of a note (see the module docstring)."""

    vault: Vault
    config: Config
    runs: Runs
    records: TaskRecords
    now: Callable[[], datetime]

    def of(
        self,
        folder: Folder,
        note: TaskNote,
        task_type: str,
        path: Path,
        task_id: str,
        planned_plan: tuple[Path, str] | None,
        blocked: bool,
    ) -> Facts:
        """The facts of the note at `path`. `planned_plan`: (note, body hash) of a plan the
        previous step wrote (fresh, not read back); `blocked`: a task its `after:` names is
        not done (waits.py)."""
        running = self.runs.is_running(task_id)
        waiting = self.runs.waiting_of(task_id) if running else None
        question = waiting.question if waiting is not None else None
        rule = question.ask.rule if question is not None else None
        status = note.status
        planned = bool(note.meta.get("plan"))
        stale = False
        if planned and not running and status in (Status.PLANNED, Status.APPROVED):
            fresh = planned_plan == (path, planner.body_hash(note))
            plan = self.records.plan_of(task_id) or self.vault.folder(Folder.PLANS) / (
                planner.plan_name(path, task_id)
            )
            stale = not fresh and planner.plan_is_stale(plan, note)
        return Facts(
            place=folder,
            status=status,
            needs_approval=self.config.requires_approval(task_type) or note.requires_approval,
            approved=note.meta.get("approved_at") is not None,
            planned=planned,
            plan_stale=stale,
            running=running,
            due=is_due(note.when("next_attempt_at"), self.now()),
            empty=note.empty,
            review_asked=status is Status.IN_REVIEW
            and bool(unsent(note.review_comments, note.meta.get("review_sent"))),
            work_to_put_back=work_to_put_back(
                note, self.config.review_for(task_type, note.review, note.on_repo)
            ),
            blocked=blocked,
            run_waits=waiting is not None,
            ask_shown=rule in tool_rules(note.meta, "requested_tools"),
            ask_granted=rule in tool_rules(note.meta, "granted_tools")
            and approved_since(note, self.runs.waiting_since(task_id)),
        )


def approved_since(note: TaskNote, since: datetime | None) -> bool:
    """A person's approval is recorded on the note (`approved_at`) since `since` (to the
    second, as the note records it)."""
    approved = note.when("approved_at")
    return since is not None and approved is not None and approved >= since.replace(microsecond=0)


def work_to_put_back(note: TaskNote, reviewed: bool) -> bool:
    """Reviewed work a person rejected whose commits the note records, not yet put back."""
    meta = note.meta
    recorded = all(isinstance(meta.get(k), str) and meta[k] for k in ("base_commit", "head_commit"))
    return reviewed and note.status is Status.REJECTED and recorded and not meta.get("put_back")
