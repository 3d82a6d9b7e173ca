"""A subscription's usage limit through the service's life: the pause begins, lasts, is over.

When a run's agent hits a usage limit, the run coordinator holds every run until it resets
(`RunCoordinator.pause_runs`, from the run's `AgentGone`). This module does the rest: the pause
is saved for `status`, the web page and a restart (`.ai-employee/usage_limit.json`), logged,
shown on Dashboard.md, and a person is told once per pause, not once per task that hit it; when
it is over (the main loop wakes at the reset), the file goes and runs start again. A service
that starts during a saved pause holds its runs until the reset too. Used by the main loop's
thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from ..base.config import Config
from ..notes.index import NoteIndex
from ..notes.vault import Vault
from ..running.coordinator import RunCoordinator
from ..running.usage_limit import Pause, load_pause, save_pause
from ..telling.dashboard_md import DashboardFile
from ..telling.notify import Event, Notice, Tell

log = structlog.get_logger(__name__)


@dataclass
class Pauses:
    """The pause's life around the coordinator's `pause` (see the module docstring)."""

    config: Config
    vault: Vault
    runs: RunCoordinator
    index: NoteIndex
    """For the title of the task that hit the limit."""
    dashboard: DashboardFile
    hooks: Tell
    now: Callable[[], datetime]

    def load(self) -> None:
        """At start: a usage limit a previous service waited for still holds the runs."""
        if self.config.agent != "claude":
            return
        pause = load_pause(self.vault.machinery, self.now())
        if pause is not None:
            self.runs.pause_runs(pause)

    def began(self, pause: Pause) -> None:
        """A run hit a usage limit and the coordinator holds every run until it resets (one
        timer, the pause's): on disk, in the log, and a person is told."""
        self._save(pause)
        self.dashboard.changed()
        says = pause.says(self.now())
        log.warning(
            "claude runs paused",
            action_type="usage_limit",
            task_id=pause.task_id,
            result=says,
            parameters={"until": pause.until, "limit": pause.limit},
        )
        where = self.index.owners.get(pause.task_id)
        seen = self.index.entries.get(where) if where is not None else None
        title = seen.title if seen is not None else pause.task_id
        detail = f"claude runs are {says}; queued tasks start after it"
        notice = Notice(
            Event.NEEDS_ATTENTION, where or self.vault.root, pause.task_id, None, title, detail
        )
        self.hooks.tell(notice)

    def end_if_over(self) -> None:
        """The pause's reset has come: runs may start again."""
        over = self.runs.pause_over()
        if over is None:
            return
        self._save(None)
        self.dashboard.changed()
        log.info(
            "claude runs resumed",
            action_type="usage_limit",
            result=f"the {over.limit} reset",
            parameters={"until": over.until},
        )

    def _save(self, pause: Pause | None) -> None:
        """The pause on disk (best effort)."""
        try:
            save_pause(self.vault.machinery, self.vault.tmp, pause)
        except OSError as err:
            log.error(
                "cannot write the usage-limit pause",
                action_type="usage_limit",
                error=f"{type(err).__name__}: {err}",
            )
