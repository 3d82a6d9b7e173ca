"""Is the service running on this vault? The lock's holder, since when (daemon/lock.py, which
looks without taking it), its last event, a usage limit's pause, and a disk (the vault's,
apps_dir's) that takes no writes, read off the filesystem: while it lasts the service can
write nothing to say so."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...base import fsops
from ...base.diskspace import troubles
from ...daemon.lock import held_by
from ...notes.vault import Vault
from ...running.usage_limit import Pause, pause_file
from .auditlog import last_entry
from .view import local


@dataclass(frozen=True)
class ServiceState:
    running: bool
    pid: int | None = None
    since: datetime | None = None
    last_event: str = ""
    last_event_at: datetime | None = None
    paused: str = ""
    """"claude runs paused until 20:13 UTC (5-hour limit)" while a usage limit holds."""
    disk: tuple[str, ...] = ()
    """A sentence for each disk that takes no writes now (diskspace.troubles)."""

    @property
    def words(self) -> str:
        if not self.running:
            return "service not running"
        since = f" since {local(self.since)}" if self.since else ""
        paused = f" · {self.paused}" if self.paused else ""
        return f"service running (pid {self.pid}){since}{paused}"


def read_state(vault: Vault, apps_dir: Path) -> ServiceState:
    holder = held_by(vault)
    entry = last_entry(vault.logs)
    now = datetime.now(UTC)
    pause = _pause(vault)
    return ServiceState(
        running=holder is not None,
        pid=holder.pid if holder is not None else None,
        since=holder.since if holder is not None else None,
        last_event=_event_words(entry),
        last_event_at=_parse_time(str(entry.get("timestamp"))) if entry else None,
        paused=f"claude runs {pause.says(now)}" if pause and pause.holds(now) else "",
        disk=tuple(t.words for t in troubles({"vault": vault.root, "apps_dir": apps_dir})),
    )


def _pause(vault: Vault) -> Pause | None:
    """The usage limit's pause the service holds (its file), read as any file here is."""
    raw = fsops.read_regular(pause_file(vault.machinery), 4096)
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
