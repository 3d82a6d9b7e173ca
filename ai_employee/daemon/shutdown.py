"""The service's stop: when to stop taking work, when the runs' grace is over, when to give up.

The first `StopRequested` stops the main loop taking work; running tasks get
`shutdown_grace_seconds` to finish, then their agents are stopped and their notes left
`executing` (an interrupted attempt, retried on the next start). A second `StopRequested` during
the grace stops them at once (a cold stop). After a cold stop the runs' ends are awaited at most
`COLD_STOP_SECONDS`; whatever did not end is found at the next start. The main loop takes the
runs' messages meanwhile; this decides only when. Used by the main loop's thread only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from ..running.coordinator import RunCoordinator

log = structlog.get_logger(__name__)

COLD_STOP_SECONDS = 30.0
"""After a cold stop, how long the loop waits for the runs' ends before it exits anyway (a run
stops its agent's group within two seconds; this bounds a run that cannot record)."""


@dataclass
class Shutdown:
    """The stop's state (see the module docstring)."""

    runs: RunCoordinator
    grace_seconds: float
    stopping: bool = False
    """A stop was requested: no new work is taken."""
    _grace_ends: float | None = None
    """When the running tasks' grace ends (monotonic), from `begin_grace` on."""
    _cold: bool = False
    _cold_deadline: float = 0.0

    def requested(self) -> None:
        """A `StopRequested` taken: the first stops taking work, a second stops the runs now."""
        if self.stopping:
            self.cold_stop()
        self.stopping = True

    def begin_grace(self) -> bool:
        """The loop has stopped taking work: the grace for the running tasks begins now.
        False when nothing runs (nothing to wait for)."""
        if not self.runs.running:
            return False
        log.info(
            "waiting for runs",
            action_type="shutdown",
            parameters={"running": self.runs.running_ids, "grace_s": self.grace_seconds},
        )
        self._grace_ends = time.monotonic() + self.grace_seconds
        return True

    def wait_more(self) -> float | None:
        """How long to wait for the next run's message (seconds); None: give up now. Stops
        the runs when the grace is over. Only after `begin_grace`."""
        if self._grace_ends is None:
            raise RuntimeError("wait_more before begin_grace")  # a bug of the caller's
        now = time.monotonic()
        if now >= self._grace_ends and not self._cold:
            self.cold_stop(why="the grace is over")
        if self._cold and now >= self._cold_deadline:
            log.error(
                "runs did not end",
                action_type="shutdown",
                parameters={"running": self.runs.running_ids},
                result="left executing; their agents are stopped at the next start",
            )
            return None
        until = self._cold_deadline if self._cold else self._grace_ends
        return max(0.01, until - now)

    def cold_stop(self, why: str = "a second stop") -> None:
        """Stop every run's agent now (once); their notes stay `executing`."""
        if self._cold:
            return
        self._cold = True
        self._cold_deadline = time.monotonic() + COLD_STOP_SECONDS
        if self.runs.running:
            log.warning(
                "stopping runs now",
                action_type="shutdown",
                parameters={"running": self.runs.running_ids},
                result=f"{why}: left executing, retried on the next start",
            )
        self.runs.interrupt_all()
