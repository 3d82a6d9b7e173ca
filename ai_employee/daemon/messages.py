"""What other threads tell the service's main loop: typed messages on its one queue.

Each layer defines the messages it posts, beside the code that posts them: the watcher's
reader thread posts hints, folder changes and overflows (hints.py); a run's thread the steps
of its run (run_messages.py); a planner thread that its plan is written (planner.py); a signal
handler or `stop()` that the service must stop (here). Only the main loop takes messages off
the queue, and only the main loop changes the state they concern (the note index, what is
running, the tally, the budget). One run's messages arrive in the order its thread posted
them: Claimed, any Waitings, then AgentGone, then RunEnded (a run that could not claim its
note posts RunEnded alone), with a CannotWrite for each write the disk refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..deciding.planner import PlanWritten
from ..running.run_messages import AgentGone, CannotWrite, Claimed, RunEnded, Waiting
from ..watching.hints import FolderChanged, Hint, Overflowed


@dataclass(frozen=True)
class StopRequested:
    """SIGTERM, SIGINT or `Service.stop()`: a second one during the grace stops runs at once."""

    signal: int | None = None


Message = (
    Hint
    | Claimed
    | Waiting
    | AgentGone
    | RunEnded
    | CannotWrite
    | PlanWritten
    | FolderChanged
    | Overflowed
    | StopRequested
)
"""What the main loop's queue holds. Threads hand their messages to it with the queue's `put`
(thread- and signal-safe), typed for each poster as the narrowest callable it needs
(`PostWatch`, `PostRun`, the planner's `Callable[[PlanWritten], None]`)."""
