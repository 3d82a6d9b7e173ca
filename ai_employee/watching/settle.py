"""When to look at a path a hint names: at once, or once a writer is done with it.

A note renamed into place (a save by rename, a sync tool, a script) is complete at once. One
written in place is read once it is closed and quiet for `settle_seconds`, so a person's editor
is never read half way through a save. A path that is gone is forgotten. Owned by the main
loop: `Settling.take` is called for each hint as it is taken off the queue, and `due` gives the
paths whose time has come.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path

from ..base import fsops
from .hints import Hint, Kind


@dataclass
class Settling:
    """Paths waiting to be looked at, each with the time it is due (monotonic seconds)."""

    settle_seconds: float
    _due: dict[Path, float] = field(default_factory=dict)
    _heap: list[tuple[float, str, Path]] = field(default_factory=list)
    """(due time, path as text for a stable order, path); stale items are skipped."""

    def take(self, hint: Hint, now: float) -> bool:
        """Note what a hint says about its path. True when the path is gone (forget it)."""
        path = hint.path
        if hint.kind is Kind.GONE:
            if path.exists():  # an exchange or a rename over it: a new file is there
                self.arrived(path, now)
                return False
            self.forget(path)
            return True
        if hint.kind is Kind.ARRIVED:
            self.arrived(path, now)
        elif hint.kind is Kind.WRITTEN:  # written in place: wait until closed and quiet
            self.activity(path, now)
        else:
            self._created(path, now)
        return False

    def _created(self, path: Path, now: float) -> None:
        # A file renamed in from outside the vault shows up as "created" only: if nobody holds
        # it open for writing and it has content, it is complete now. A writer creating it in
        # place still has it open (its close then settles it like any in-place write).
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size > 0 and fsops.has_writers(path) is False and path not in self:
            self.arrived(path, now)
        else:
            self.activity(path, now)

    def activity(self, path: Path, now: float) -> None:
        """Written in place: due once quiet for settle_seconds."""
        self._set(path, now + self.settle_seconds)

    def arrived(self, path: Path, now: float) -> None:
        """Complete: due at once."""
        self._set(path, now)

    def forget(self, path: Path) -> None:
        self._due.pop(path, None)

    def _set(self, path: Path, when: float) -> None:
        self._due[path] = when
        heapq.heappush(self._heap, (when, str(path), path))

    def due(self, now: float, limit: int = 1_000_000) -> list[Path]:
        """Paths whose quiet time has passed, each once (at most `limit` of them)."""
        ready: list[Path] = []
        while self._heap and self._heap[0][0] <= now and len(ready) < limit:
            when, _, path = heapq.heappop(self._heap)
            if self._due.get(path) == when:
                del self._due[path]
                ready.append(path)
        return ready

    def next_deadline(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, path: object) -> bool:
        return path in self._due
