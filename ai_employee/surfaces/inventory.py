"""What is in the vault: counts per folder and status, active tasks, series, refused notes.

Used by `ai-employee status` and Dashboard.md. Reading only; it never writes a note.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..base.errors import NoteRefused
from ..notes.lifecycle import Status
from ..notes.notefile import Signature, read_note, signature_of
from ..notes.schedule import machine_zone, parse_rules
from ..notes.vault import TASK_FOLDERS, Folder, Vault

ACTIVE_STATUSES = frozenset(
    {Status.NEW, Status.PLANNED, Status.EXECUTING, Status.PENDING_APPROVAL, Status.APPROVED}
)


@dataclass(frozen=True)
class NoteSummary:
    """One task as status and the dashboard show it."""

    path: Path
    folder: str
    status: str
    task_id: str | None
    title: str
    task_type: str | None
    priority: str
    attempts: int
    error: str | None
    cost_usd: float | None
    completed_at: str | None
    waiting_for: str | None = None
    """What it waits for (`after:`), as its note says."""

    def as_json(self, root: Path) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["path"] = str(self.path.relative_to(root))
        return data


@dataclass(frozen=True)
class Refusal:
    """A note we refuse to touch, and why, in words for a person."""

    path: Path
    reason: str


@dataclass(frozen=True)
class SeriesSummary:
    """A series note in Recurring/ as status shows it."""

    path: Path
    title: str
    every: str
    next_at: str | None
    """As the note says (the service writes it); None when paused or not seen yet."""
    last_occurrence: str | None
    paused: bool

    def as_json(self, root: Path) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["path"] = str(self.path.relative_to(root))
        return data


@dataclass
class VaultReport:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    tasks: list[NoteSummary] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    series: list[SeriesSummary] = field(default_factory=list)

    @property
    def active(self) -> list[NoteSummary]:
        return [
            t
            for t in self.tasks
            if t.folder not in (Folder.DONE.value, Folder.FAILED.value)
            and t.status in {s.value for s in ACTIVE_STATUSES}
        ]

    def as_json(self, root: Path, service_running: bool = True) -> dict[str, Any]:
        return {
            "vault": str(root),
            "counts": {folder: dict(counter) for folder, counter in self.counts.items()},
            "active": [
                t.as_json(root) | {"stale": is_stale(t, service_running)} for t in self.active
            ],
            "refused": [
                {"path": str(r.path.relative_to(root)), "reason": r.reason} for r in self.refused
            ],
            "series": [s.as_json(root) for s in self.series],
        }


def scan(vault: Vault, max_note_bytes: int) -> VaultReport:
    """Read every task note once and summarise the vault."""
    report = VaultReport()
    for folder in TASK_FOLDERS:
        counter: Counter[str] = Counter()
        report.counts[folder.value] = counter
        for path in vault.notes_in(folder):
            try:
                note, _ = read_note(path, vault.root, max_note_bytes)
            except NoteRefused as err:
                report.refused.append(Refusal(path, err.reason))
                counter["refused"] += 1
                continue
            except FileNotFoundError:
                continue
            if note.empty:
                counter["empty"] += 1
                continue
            status = note.status.value if note.status else Status.NEW.value
            counter[status] += 1
            cost = note.meta.get("cost_usd")
            report.tasks.append(
                NoteSummary(
                    path=path,
                    folder=folder.value,
                    status=status,
                    task_id=note.task_id,
                    title=note.title,
                    task_type=note.task_type,
                    priority=note.priority.value,
                    attempts=note.attempts,
                    error=str(note.meta["error"]) if note.meta.get("error") else None,
                    cost_usd=float(cost) if isinstance(cost, int | float) else None,
                    completed_at=str(note.meta.get("completed_at") or "") or None,
                    waiting_for=str(note.meta.get("waiting_for") or "") or None,
                )
            )
    _scan_series(vault, max_note_bytes, report)
    return report


class SeriesCache:
    """What each series note said when it had this identity, so the page reads only the
    changed ones; its worker threads share it (one scan at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[Path, tuple[Signature, SeriesSummary | Refusal]] = {}


def series_soonest(
    vault: Vault, max_note_bytes: int, cache: SeriesCache | None = None
) -> list[SeriesSummary]:
    """The series notes in Recurring/, the soonest first (the page's Recurring list)."""
    report = VaultReport()
    if cache is None:
        _scan_series(vault, max_note_bytes, report)
    else:
        with cache.lock:
            _scan_series(vault, max_note_bytes, report, cache.seen)
    return sorted(report.series, key=_soonest)


def _scan_series(
    vault: Vault,
    max_note_bytes: int,
    report: VaultReport,
    cache: dict[Path, tuple[Signature, SeriesSummary | Refusal]] | None = None,
) -> None:
    """The series notes in Recurring/ (a bad one is listed as refused, with why); with a
    cache, a note whose identity (inode, size, mtime) is unchanged is not read again."""
    seen: set[Path] = set()
    for path in vault.notes_in(Folder.RECURRING):
        try:
            signature = signature_of(os.lstat(path))
        except FileNotFoundError:
            continue
        seen.add(path)
        hit = cache.get(path) if cache is not None else None
        found = (
            hit[1]
            if hit is not None and hit[0] == signature
            else _read_series(vault, path, max_note_bytes)
        )
        if found is None:
            continue
        if cache is not None:
            cache[path] = (signature, found)
        if isinstance(found, Refusal):
            report.refused.append(found)
        else:
            report.series.append(found)
    if cache is not None:
        for gone in set(cache) - seen:
            del cache[gone]


def _read_series(vault: Vault, path: Path, max_note_bytes: int) -> SeriesSummary | Refusal | None:
    try:
        note, _ = read_note(path, vault.root, max_note_bytes)
        parse_rules(note.meta, machine_zone())
    except NoteRefused as err:
        return Refusal(path, err.reason)
    except FileNotFoundError:
        return None
    meta = note.meta
    return SeriesSummary(
        path=path,
        title=note.title,
        every=" ".join(str(meta.get("every")).split()),
        next_at=_when(meta.get("next_at")),
        last_occurrence=_when(meta.get("last_occurrence")),
        paused=meta.get("paused") is True,
    )


def _soonest(series: SeriesSummary) -> tuple[bool, float]:
    """The soonest first, paused ones and those not seen yet last."""
    try:
        at = datetime.fromisoformat(series.next_at or "").timestamp()
    except ValueError:
        at = float("inf")
    return series.paused, at


def _when(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def is_stale(task: NoteSummary, service_running: bool) -> bool:
    """A task that says `executing` while no service runs on its vault: not true (the service
    stopped or crashed); its next start takes it as an interrupted attempt and retries it."""
    return task.status == Status.EXECUTING.value and not service_running


STALE = "(not running: no service holds the vault; retried when it starts)"


def render_text(
    report: VaultReport, root: Path, *notices: str, service_running: bool = True
) -> str:
    """`ai-employee status` for a person: the notices (the service, the budget, a usage limit's
    pause) under the vault's line; a task `executing` with no service running is marked."""
    lines = [f"vault: {root}"]
    lines += [notice for notice in notices if notice]
    for folder, counter in report.counts.items():
        if counter:
            detail = ", ".join(f"{n} {status}" for status, n in sorted(counter.items()))
            lines.append(f"  {folder:<17} {detail}")
        else:
            lines.append(f"  {folder:<17} -")
    active = report.active
    lines.append(f"active tasks: {len(active)}")
    for task in active:
        stale = f"  {STALE}" if is_stale(task, service_running) else ""
        if task.waiting_for and task.status == Status.PLANNED.value:
            stale += f"  (waits for {task.waiting_for})"
        lines.append(
            f"  {task.task_id or '-':<9} {task.status:<17} {task.priority:<6} "
            f"{task.path.relative_to(root)}  {task.title}{stale}"
        )
    lines.append(f"series: {len(report.series)}")
    for series in sorted(report.series, key=lambda s: (s.paused, s.next_at or "")):
        when = (
            "paused" if series.paused else f"next {series.next_at or '(when the service sees it)'}"
        )
        lines.append(
            f"  {series.path.relative_to(root)}  every {series.every}  {when}  {series.title}"
        )
    lines.append(f"refused notes: {len(report.refused)}")
    for refusal in report.refused:
        lines.append(f"  {refusal.path.relative_to(root)}: {refusal.reason}")
    return "\n".join(lines)
