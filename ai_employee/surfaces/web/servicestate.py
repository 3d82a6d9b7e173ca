"""Is the service running on this vault? The lock's holder, since when, and its last event.

The page never takes the lock (not even for a moment: a service starting then would see it
held and exit). It looks: on Linux, `/proc/locks` says whether anyone holds a lock on the
lock file's inode; elsewhere the pid the lock file names must be alive.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...notes.vault import Vault
from ...running.usage_limit import Pause, pause_file
from .auditlog import last_entry, read_regular
from .view import local

_HOLDER = re.compile(r"pid (\d+) since (\S+)")
PROC_LOCKS = Path("/proc/locks")


@dataclass(frozen=True)
class ServiceState:
    running: bool
    pid: int | None = None
    since: datetime | None = None
    last_event: str = ""
    last_event_at: datetime | None = None
    paused: str = ""
    """"claude runs paused until 20:13 UTC (5-hour limit)" while a usage limit holds."""

    @property
    def words(self) -> str:
        if not self.running:
            return "service not running"
        since = f" since {local(self.since)}" if self.since else ""
        paused = f" · {self.paused}" if self.paused else ""
        return f"service running (pid {self.pid}){since}{paused}"


def _locked(path: Path) -> bool | None:
    """Whether /proc/locks lists a lock on this file; None where it cannot be told."""
    try:
        st = path.stat()
        text = PROC_LOCKS.read_text()
    except OSError:
        return None
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    wanted = {f"{major:02x}:{minor:02x}:{st.st_ino}", f"{major}:{minor}:{st.st_ino}"}
    return any(len(f) > 5 and f[5] in wanted for f in (line.split() for line in text.splitlines()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(vault: Vault) -> ServiceState:
    holder = read_regular(vault.lock_file, 200).decode("utf-8", "replace")
    match = _HOLDER.search(holder)
    pid = int(match.group(1)) if match else None
    since = _parse_time(match.group(2)) if match else None
    locked = _locked(vault.lock_file)
    running = locked if locked is not None else (pid is not None and _alive(pid))
    entry = last_entry(vault.logs)
    now = datetime.now(UTC)
    pause = _pause(vault)
    return ServiceState(
        running=bool(running),
        pid=pid if running else None,
        since=since if running else None,
        last_event=_event_words(entry),
        last_event_at=_parse_time(str(entry.get("timestamp"))) if entry else None,
        paused=f"claude runs {pause.says(now)}" if pause and pause.holds(now) else "",
    )


def _pause(vault: Vault) -> Pause | None:
    """The usage limit's pause the service holds (its file), read as any file here is."""
    raw = read_regular(pause_file(vault.machinery), 4096)
    try:
        return Pause.from_json(json.loads(raw)) if raw else None
    except ValueError:
        return None


def _event_words(entry: dict[str, Any] | None) -> str:
    if not entry:
        return ""
    return " ".join(str(entry.get(k)) for k in ("event", "task_id") if entry.get(k))


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
