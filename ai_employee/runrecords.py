"""Records of live agent processes: `.ai-employee/runs.jsonl`, so a restart can stop leftovers.

One line when an agent starts (task, pid, process group, start time in clock ticks) and one when
its run ends, appended to a file the service keeps open: no file is created per run, and no
watch sees it. The lines matter only while the machine is up (a reboot ends every agent), so
they are not fsynced. The file is emptied whenever no run is live, and read at start-up.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class RunJournal:
    """Appends start and end lines; thread-safe (run threads write, each its own lines)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self._live = 0

    def started(self, record: dict[str, Any]) -> None:
        """An agent started: `record` holds task_id, pid, pgid and start_ticks, at least."""
        with self._lock:
            self._live += 1
            self._append({"event": "start", **record})

    def ended(self, task_id: str, pid: int) -> None:
        """The agent's run is over (its group was stopped or it exited)."""
        with self._lock:
            self._live -= 1
            if self._live <= 0:
                self._live = 0
                os.ftruncate(self._fd, 0)  # nothing live: nothing worth keeping
            else:
                self._append({"event": "end", "task_id": task_id, "pid": pid})

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _append(self, line: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(line) + "\n").encode())  # one write: O_APPEND keeps it whole


def live_records(path: Path) -> Iterator[dict[str, Any]]:
    """The start records of `path` with no end record after them (a torn last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    live: dict[tuple[str, int], dict[str, Any]] = {}
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
            key = (str(line["task_id"]), int(line["pid"]))
        except (ValueError, KeyError, TypeError):
            continue
        if line.get("event") == "start":
            live[key] = line
        else:
            live.pop(key, None)
    yield from live.values()
