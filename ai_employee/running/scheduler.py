"""Which planned task runs next: a priority queue (high, normal, low, then oldest first).

Pure bookkeeping, owned by the run coordinator: requests are added once per task (a newer one
replaces the path), and `next_ready` takes the first whose work dir is not busy. How many run
at once, and which work dirs are busy, is the coordinator's to say.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..notes.lifecycle import Priority

_EPOCH = datetime.min.isoformat()


@dataclass(frozen=True)
class RunRequest:
    """A planned task that may run now (the scheduler decides when)."""

    path: Path
    task_id: str
    priority: str
    task_type: str
    planned_at: datetime | None
    workdir: Path
    plan: Path | None = None
    """The task's plan file (for its prompt)."""
    after: tuple[str, ...] = ()
    """What each task it runs after produced (its Result, work dir, branch), for its prompt."""


def _rank(priority: str) -> int:
    try:
        return Priority(priority).rank
    except ValueError:
        return Priority.NORMAL.rank


@dataclass
class Scheduler:
    _heap: list[tuple[int, str, int, str]] = field(default_factory=list)
    _queued: dict[str, RunRequest] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, request: RunRequest) -> bool:
        """Queue a request (once per task). False when it was queued already (the newer
        request's path is kept: the note may have moved)."""
        if request.task_id in self._queued:
            self._queued[request.task_id] = request
            return False
        self._queued[request.task_id] = request
        age = request.planned_at.isoformat() if request.planned_at else _EPOCH
        heapq.heappush(
            self._heap, (_rank(request.priority), age, next(self._counter), request.task_id)
        )
        return True

    def discard(self, task_id: str) -> None:
        """Forget a queued request (the note went away, was cancelled, needs approval...)."""
        self._queued.pop(task_id, None)

    def next_ready(self, busy: Collection[Path] = ()) -> RunRequest | None:
        """The highest-priority request whose work dir is not in `busy`, taken off the queue."""
        skipped = []
        found = None
        while self._heap:
            item = heapq.heappop(self._heap)
            request = self._queued.get(item[3])
            if request is None:
                continue
            if request.workdir in busy:
                skipped.append(item)  # its work dir is in use: it waits, others may go
                continue
            found = request
            del self._queued[item[3]]
            break
        for item in skipped:
            heapq.heappush(self._heap, item)
        return found

    def waiting(self) -> int:
        """How many requests wait (cheap, unlike `queued`, which sorts them)."""
        return len(self._queued)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._queued

    @property
    def queued(self) -> list[RunRequest]:
        """Queued requests in the order they would run."""
        order = sorted(
            (item for item in self._heap if item[3] in self._queued), key=lambda item: item[:3]
        )
        seen: set[str] = set()
        out = []
        for item in order:
            if item[3] not in seen:
                seen.add(item[3])
                out.append(self._queued[item[3]])
        return out
