"""What other threads tell the service's main loop: typed messages on its one queue.

The watcher's reader thread posts hints, folder changes and overflows; a run's thread posts the
steps of its run; a planner thread that its plan is written; a signal handler or `stop()` that
the service must stop. Only the main loop takes messages off the queue, and only the main loop
changes the state they concern (the note index, what is running, the tally, the budget). One
run's messages arrive in the order its thread posted them: Claimed, then AgentGone, then
RunEnded (a run that could not claim its note posts RunEnded alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agents.base import Outcome
from .hints import Hint
from .run_end import RunEnd
from .usage_limit import Pause


@dataclass(frozen=True)
class Claimed:
    """A run wrote its claim on the note: from now on its agent may start."""

    run_id: int
    task_id: str
    path: Path
    claim: Mapping[str, Any]
    """The owned keys the claim wrote (put back over a stale copy that dropped them)."""


@dataclass(frozen=True)
class AgentGone:
    """A run's agent and its process group are gone; the run now records its end."""

    run_id: int
    task_id: str
    cost_usd: float | None
    pause: Pause | None = None
    """The agent hit a usage limit: no run may start until it resets (said here, before the
    slot is free, so no queued run starts into the same limit)."""


@dataclass(frozen=True)
class RunEnded:
    """A run is over: recorded on its note, or never begun (its note changed first)."""

    run_id: int
    task_id: str
    outcome: Outcome
    end: RunEnd | None
    """How it ended on the note; None when nothing was recorded (skipped, the note gone)."""
    before: Path
    """Where the note was when the run was handed to its thread."""
    after: Path | None
    """Where the note is now (None: it went away, or the run never began)."""
    duration_s: float
    claim_error: bool = False
    """The claim failed on our side (a bug, the disk), not because the note changed: the note
    is not looked at again at once (the safety sweep does), so a failure cannot spin."""
    workdir: Path | None = None
    """The run's work dir (for the notification hooks' `{workdir}`)."""
    title: str = ""
    """The task's title as claimed (for the notification hooks)."""


@dataclass(frozen=True)
class PlanWritten:
    """planner = "claude": the plan for this note is on disk (or the template, if not)."""

    path: Path


@dataclass(frozen=True)
class FolderChanged:
    """A watched folder (or a folder that may hold one) came, went or was replaced."""

    folder: Path
    went: bool


@dataclass(frozen=True)
class Overflowed:
    """The kernel dropped events: every active folder must be looked at again."""


@dataclass(frozen=True)
class StopRequested:
    """SIGTERM, SIGINT or `Service.stop()`: a second one during the grace stops runs at once."""

    signal: int | None = None


Message = (
    Hint | Claimed | AgentGone | RunEnded | PlanWritten | FolderChanged | Overflowed | StopRequested
)

Post = Callable[[Message], None]
"""How a thread hands a message to the main loop (`queue.SimpleQueue.put`: thread- and
signal-safe)."""
