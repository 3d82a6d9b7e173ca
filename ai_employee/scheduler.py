"""Which planned task runs next: a priority queue (high, normal, low, then oldest first).

Pure bookkeeping: the service adds run requests, asks for the next one allowed to start, and
tells it when a run ends. It never runs two tasks in one work dir, nor more than `max_parallel`.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .lifecycle import Priority
from .reconcile import RunRequest

_EPOCH = datetime.min.isoformat()


def _rank(priority: str) -> int:
    try:
        return Priority(priority).rank
    except ValueError:
        return Priority.NORMAL.rank


@dataclass
class Scheduler:
    max_parallel: int
    _heap: list[tuple[int, str, int, str]] = field(default_factory=list)
    _queued: dict[str, RunRequest] = field(default_factory=dict)
    _running: dict[str, Path] = field(default_factory=dict)  # task_id -> work dir
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, request: RunRequest) -> bool:
        """Queue a request (once per task). False when it is already queued or running."""
        if request.task_id in self._queued:
            self._queued[request.task_id] = request  # keep the newest path (after a move)
            return False
        if request.task_id in self._running:
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

    def next_ready(self) -> RunRequest | None:
        """The highest-priority request that may start now, taken off the queue."""
        if len(self._running) >= self.max_parallel:
            return None
        busy = set(self._running.values())
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

    def started(self, task_id: str, workdir: Path) -> None:
        self._running[task_id] = workdir

    def finished(self, task_id: str) -> None:
        self._running.pop(task_id, None)

    def waiting(self) -> int:
        """How many requests wait (cheap, unlike `queued`, which sorts them)."""
        return len(self._queued)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._running

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

    @property
    def running(self) -> dict[str, Path]:
        return dict(self._running)
