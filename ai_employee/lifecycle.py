"""The lifecycle: statuses, priorities, and (issue 3) the folder x status table as data."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A task's state, kept in its note's `status` key. The folder follows the state."""

    NEW = "new"
    """Dropped by a person; not planned yet (a missing status means the same)."""
    DRAFT = "draft"
    """A person is still writing it: never touched."""
    PLANNED = "planned"
    """A plan exists; runs when allowed (auto type or approved) and due."""
    PENDING_APPROVAL = "pending_approval"
    """Waits in Pending_Approval/ for a person."""
    APPROVED = "approved"
    """A person approved it; the service records it and runs it."""
    EXECUTING = "executing"
    """Claimed: an agent run was started for it."""
    DONE = "done"
    """Finished successfully, in Done/."""
    FAILED = "failed"
    """Failed after its retries, in Failed/."""
    CANCELLED = "cancelled"
    """Stopped by a person, in Done/."""
    REJECTED = "rejected"
    """Refused by a person, in Rejected/."""


class Priority(StrEnum):
    """Run order: high before normal before low, then oldest first."""

    HIGH = "high"
    """Runs first."""
    NORMAL = "normal"
    """The default."""
    LOW = "low"
    """Runs when nothing else waits."""

    @property
    def rank(self) -> int:
        return {"high": 0, "normal": 1, "low": 2}[self.value]
