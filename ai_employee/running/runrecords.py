"""Records of live agent processes, and the recovery of agents a previous service left behind.

`.ai-employee/runs.jsonl` gets one line when an agent starts (task, pid, process group, start
time in clock ticks) and one when its run ends, appended to a file the service keeps open: no
file is created per run, and no watch sees it. The lines matter only while the machine is up
(a reboot ends every agent), so they are not fsynced. The file is emptied whenever no run is
live. At start-up, before any retry can begin, `stop_leftovers` stops every agent these records
(or, for a crash before the record, the agent's own environment) name as still alive.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from ..base.processes import process_start_ticks, stop_group, wait_pid

log = structlog.get_logger(__name__)


class RunJournal:
    """Appends start and end lines; thread-safe (run threads write, each its own lines).

    The file is opened at the first start line (after the start-up recovery read and removed
    the previous one) and kept open.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._lock = threading.Lock()
        self._live = 0

    def started(self, record: dict[str, Any]) -> None:
        """An agent started: `record` holds task_id, pid, pgid and start_ticks, at least."""
        with self._lock:
            if self._fd < 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o600)
            self._live += 1
            self._append({"event": "start", **record})

    def ended(self, task_id: str, pid: int) -> None:
        """The agent's run is over (its group was stopped or it exited)."""
        with self._lock:
            self._live -= 1
            if self._fd < 0:
                return
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


def leftover_agents(journal: Path, legacy_runs: Path, vault: Path) -> Iterator[tuple[str, int]]:
    """(task_id, pid) of agents a previous service left running: by run record, then by /proc."""
    seen: set[int] = set()
    for record in [*live_records(journal), *_legacy_records(legacy_runs)]:
        try:
            pid, ticks = int(record["pid"]), record.get("start_ticks")
        except (ValueError, KeyError, TypeError):
            continue
        alive_since = process_start_ticks(pid)
        if pid not in seen and alive_since is not None and alive_since == ticks:
            seen.add(pid)  # the same process, not a reused pid
            yield str(record["task_id"]), pid
    # A crash between starting the agent and writing its record: find it by its environment.
    want = f"AI_EMPLOYEE_VAULT={vault}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in seen or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in environ:
            task = next((v for v in environ if v.startswith(b"AI_EMPLOYEE_TASK_ID=")), None)
            if task is not None and os.getpgid(int(entry.name)) == int(entry.name):
                yield task.split(b"=", 1)[1].decode(), int(entry.name)


def _legacy_records(runs_dir: Path) -> Iterator[dict[str, Any]]:
    """`.ai-employee/runs/<task_id>.json`, written by versions before the journal."""
    for record_path in sorted(runs_dir.glob("*.json")):
        try:
            record = json.loads(record_path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(record, dict):
            yield record


def stop_leftovers(journal: Path, legacy_runs: Path, vault: Path) -> list[tuple[str, int]]:
    """Stop every leftover agent (and its group) before any retry starts; clear the records."""
    stopped = []
    for task_id, pid in leftover_agents(journal, legacy_runs, vault):
        stop_group(pid, functools.partial(wait_pid, pid), grace=2.0)
        log.warning(
            "stopped a leftover agent",
            action_type="recover",
            task_id=task_id,
            parameters={"pid": pid},
            result="stopped before the task's retry",
        )
        stopped.append((task_id, pid))
    for record_path in legacy_runs.glob("*.json"):
        record_path.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)
    return stopped
