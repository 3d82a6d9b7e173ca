"""After a run: what its end means to the rest of the service, once the main loop takes its
`RunEnded` (and the run coordinator no longer counts it as running).

The note is decided again from the disk wherever it is now, so a note left `executing` with no
live run is an interrupted attempt, never stuck; the task's record and the note index follow
the note; a note that landed in Done/ or Failed/ is counted there; a person is told when the
task waits for their grant, is done or failed (the notification hooks); Dashboard.md lists the
run. Not after our own shutdown (an interrupted run is retried on the next start), and not at
once after a claim that failed on our side (the safety sweep tries again: a failure must not
spin). How the run ended on the note was decided by its thread (running/run_end.py). Used by
the main loop's thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.records import TaskRecords
from ..notes.vault import Folder, Vault
from ..running.agents.base import OutcomeKind
from ..running.run_messages import RunEnded
from ..telling import dashboard_md
from ..telling.dashboard_md import DashboardFile
from ..telling.notify import Event, Notice, Tell
from .reconcile import Reconciler

log = structlog.get_logger(__name__)

TOLD_ENDS = {
    Status.DONE: Event.DONE,
    Status.FAILED: Event.FAILED,
    Status.IN_REVIEW: Event.PENDING_APPROVAL,
}
"""The ends of a run a person is told of (a cancel is theirs; a retry is not news; work that
waits for their review is an approval they owe)."""


@dataclass
class AfterRun:
    """Takes each run's end (see the module docstring)."""

    vault: Vault
    index: NoteIndex
    records: TaskRecords
    reconciler: Reconciler
    dashboard: DashboardFile
    hooks: Tell

    def take(self, ended: RunEnded) -> None:
        old = self.index.owners.get(ended.task_id, ended.before)
        new = ended.after or old
        if ended.claim_error:
            self._not_started(ended)
        elif ended.outcome.kind is not OutcomeKind.INTERRUPTED:
            self._follow(ended, old, new)
        if ended.outcome.kind is OutcomeKind.SKIPPED:
            return
        self._tell(ended, new or ended.before)
        end = ended.end
        said = end.said if end is not None else ended.outcome.kind.said
        error = (end.error if end is not None else "") or ended.outcome.error
        detail = f"{said}: {error}" if error else said
        link = dashboard_md.link_for(self.vault.root, new) if new else ended.task_id
        title = ended.title or ended.task_id
        self.dashboard.ran(dashboard_md.Line(link, title, detail, ended.task_id))

    def _not_started(self, ended: RunEnded) -> None:
        """A claim that failed on our side is tried again, never at once (a failure must not
        spin): once the disk takes writes again if that refused it (write_trouble.py, which
        said so), else at the next safety sweep."""
        if ended.disk_error and self.reconciler.trouble.hold(ended.before):
            return
        self.index.unsettled(ended.before)  # so the sweep does not pass it by as unchanged
        if not ended.disk_error:
            log.warning(
                "run not started",
                action_type="run",
                task_id=ended.task_id,
                error=ended.outcome.error,
                result="tried again at the next safety sweep",
            )

    def _follow(self, ended: RunEnded, old: Path | None, new: Path | None) -> None:
        """The task's record and the index follow the note; the note is decided again where
        it is now (and where it was, if it moved again meanwhile)."""
        if new is not None and ended.end is not None:
            self.records.moved(ended.task_id, new, ended.end.status, head_written=True)
        if old is not None and old != new:
            self.index.forget(old)
        if new is not None and self.vault.folder_of(new) in (Folder.DONE, Folder.FAILED):
            self.index.forget(new)  # not watched
            self.dashboard.landed(new, ended.outcome.error)
        elif new is not None and new.exists():
            self.reconciler.look(new, force=True)
        if old is not None and old != new and old.exists():
            # Moved again before the main loop took the run's end (a person approved the note
            # the moment it reached Pending_Approval/): its event was looked at while the task
            # still ran and left as it was; it is decided where it is now.
            self.reconciler.look(old, force=True)

    def _tell(self, ended: RunEnded, where: Path) -> None:
        """The hooks: a task that waits for a person's grant, or is done, or failed."""
        if ended.end is None:
            return
        events = []
        if ended.end.kind is OutcomeKind.ASKED:
            events += [Event.PENDING_APPROVAL, Event.NEEDS_ATTENTION]
        if ended.end.status in TOLD_ENDS:
            events.append(TOLD_ENDS[ended.end.status])
        title = ended.title or ended.task_id
        for event in events:
            notice = Notice(event, where, ended.task_id, ended.workdir, title, ended.end.error)
            self.hooks.tell(notice)
