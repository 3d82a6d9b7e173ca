"""What a run's thread tells the main loop, in this order: `Claimed`, any `Waiting`s, then
`AgentGone`, then `RunEnded` (a run that could not claim its note posts `RunEnded` alone).

Each names its run (`run_id`), so a word from an earlier run of the task changes nothing. The
run coordinator takes them in the main loop (coordinator.py); every message the main loop takes
is listed in messages.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agents.base import Outcome, Question
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
class Waiting:
    """A run's agent asks a person for a tool and waits, alive, for the answer (`question`);
    or waits no more (`question` None: answered, or its wait is over and it was refused)."""

    run_id: int
    task_id: str
    path: Path
    """Where the run's note is, as far as the run knows."""
    question: Question | None
    session_id: str | None
    """The agent's session (written on the note while it waits: an approval after a restart
    loads it)."""


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
    disk_error: bool = False
    """That claim failed on a disk that took no writes (said with `CannotWrite` first): the
    note is looked at again once the disk takes writes (write_trouble.py), not at the sweep."""
    workdir: Path | None = None
    """The run's work dir (for the notification hooks' `{workdir}`)."""
    title: str = ""
    """The task's title as claimed (for the notification hooks)."""


CLAIM = "the claim"
RUN_END = "the run's end"


@dataclass(frozen=True)
class CannotWrite:
    """A run's thread could not write to the vault's disk (full, read-only): its claim (the
    run then ends unstarted) or its end (it tries again until it is written, or the service
    stops). Said to a person once, by the main loop, however many writes fail."""

    task_id: str
    what: str
    """What could not be written: `CLAIM` (the note is looked at again once the disk takes
    writes) or `RUN_END` (the thread tries again itself)."""
    target: Path
    error: OSError


RunMessage = Claimed | Waiting | AgentGone | RunEnded | CannotWrite

PostRun = Callable[[RunMessage], None]
"""How a run's thread hands its words to the main loop (the main loop's queue's `put`)."""
