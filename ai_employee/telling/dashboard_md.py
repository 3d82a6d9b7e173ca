"""Dashboard.md: what the service sees, for a person in Obsidian.

`render` is pure: a `DashboardState` in, the markdown out. `DashboardFile` is the main loop's
model of the file: what changed, when to redraw, the counts of Done/ and Failed/, and what it
shows of the main loop's note index, its runs and the daily budget.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from ..base import fsops
from ..notes.index import NoteIndex
from ..notes.lifecycle import Status
from ..notes.records import TaskRecords
from ..notes.vault import TASK_FOLDERS, Folder, Vault
from ..running.budget import DailyBudget
from ..running.scheduler import RunRequest
from ..running.usage_limit import Pause


@dataclass(frozen=True)
class Line:
    """One task as the dashboard lists it."""

    link: str  # a wikilink target: the note's path in the vault without .md
    title: str
    detail: str = ""
    task_id: str = ""
    """The task it is of, if any: when drawn, its link follows the note to where it is now."""


@dataclass
class DashboardState:
    updated: datetime
    counts: dict[str, Counter[str]]
    queued: Sequence[Line] = ()
    running: Sequence[Line] = ()
    waiting_approval: Sequence[Line] = ()
    waiting_tasks: Sequence[Line] = ()
    upcoming: Sequence[Line] = ()
    recent: Sequence[Line] = ()
    attention: Sequence[Line] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def link_for(root: Path, path: Path) -> str:
    return str(path.relative_to(root).with_suffix("")).replace("\\", "/")


def render(state: DashboardState) -> str:
    out = [
        "# Dashboard",
        "",
        f"_Written by ai-employee at {state.updated.isoformat(timespec='seconds')}; "
        "edits here are overwritten._",
        "",
    ]
    out += [f"> {note}" for note in state.notes]
    if state.notes:
        out.append("")
    out += ["## Counts", "", "| folder | tasks |", "|---|---|"]
    for folder, counter in state.counts.items():
        detail = ", ".join(_counted(n, what) for what, n in sorted(counter.items()) if n) or "-"
        out.append(f"| {folder} | {detail} |")
    out.append("")
    for heading, lines, empty in (
        (
            "Needs attention",
            state.attention,
            "Nothing: every note could be read, none is held, none failed.",
        ),
        ("Running", state.running, "Nothing runs."),
        ("Queue", state.queued, "Empty."),
        ("Waiting for you (approval or review)", state.waiting_approval, "None."),
        ("Waiting for other tasks (`after:`)", state.waiting_tasks, "None."),
        ("Next occurrences (Recurring/)", state.upcoming, "No series."),
        ("Recent", state.recent, "Nothing yet."),
    ):
        out += [f"## {heading}", ""]
        if not lines:
            out.append(empty)
        for line in lines:
            detail = f" - {line.detail}" if line.detail else ""
            out.append(f"- [[{line.link}|{_safe(line.title)}]]{detail}")
        out.append("")
    return "\n".join(out)


def _counted(n: int, what: str) -> str:
    """`3 planned`; Done/ and Failed/ are counted as notes: `1 note`, `12 notes`."""
    return f"{n} note{'' if n == 1 else 's'}" if what == "notes" else f"{n} {what}"


def _safe(text: str) -> str:
    return text.replace("|", "/").replace("]]", "] ]").replace("\n", " ")


class SeriesShown(Protocol):
    """A series in Recurring/ as Dashboard.md lists it (deciding/recurring.py's Series)."""

    @property
    def path(self) -> Path: ...

    @property
    def title(self) -> str: ...

    @property
    def every(self) -> str: ...

    @property
    def zone(self) -> ZoneInfo: ...

    @property
    def next_at(self) -> datetime | None:
        """None while paused."""


UPCOMING_LINES = 15
"""How many series the "Next occurrences" list shows (the soonest)."""


def upcoming_line(root: Path, series: SeriesShown) -> Line:
    """`Standup notes - every 0 9 * * 1-5; next 2026-12-07 09:00 (Europe/Berlin)`."""
    if series.next_at is None:
        when = "paused"
    else:
        when = f"next {series.next_at.astimezone(series.zone):%Y-%m-%d %H:%M} ({series.zone.key})"
    return Line(link_for(root, series.path), series.title, f"every {series.every}; {when}")


class RunsShown(Protocol):
    """What Dashboard.md shows of the runs (the run coordinator is one)."""

    @property
    def queued(self) -> Sequence[RunRequest]: ...

    @property
    def running_ids(self) -> Sequence[str]: ...

    @property
    def pause(self) -> Pause | None: ...


MIN_REDRAW_SECONDS = 1.0
"""Dashboard.md is redrawn at most this often, and only after a change."""

RECENT_LINES = 15
"""How many finished runs the "Recent" list shows."""


class DashboardFile:
    """Dashboard.md as the main loop keeps it: what changed, when to redraw, the counts of the
    folders nobody watches.

    Done/ and Failed/ are counted when the service starts and at each safety sweep (a scan of
    each); a note the service itself puts there adds one (`landed`), and a task's note found
    out of one (a retry, a person's move into an active folder) takes one away (`left`); other
    changes a person makes there show at the next sweep. So a redraw costs the same in a vault
    of ten notes or of a hundred thousand. The file is written atomically, not fsynced (it is
    rebuilt from the notes), and only when more than its time stamp changed. Used by the main
    loop only, and it reads only the main loop's state: the note index, the runs, the budget,
    the task records (where each task's note is now).
    """

    def __init__(
        self,
        vault: Vault,
        index: NoteIndex,
        runs: RunsShown,
        budget: DailyBudget,
        now: Callable[[], datetime],
        records: TaskRecords,
    ) -> None:
        self.vault = vault
        self.index = index
        self.records = records
        """Where each task's note is now (the Recent list links there)."""
        self.runs = runs
        self.budget = budget
        self.now = now
        self.recent: deque[Line] = deque(maxlen=RECENT_LINES)
        self.finished: dict[Folder, int] = {Folder.DONE: 0, Folder.FAILED: 0}
        self.failures: deque[Line] = deque(maxlen=RECENT_LINES)
        """The newest notes in Failed/, with why (they need a person: "Needs attention")."""
        self._landed: set[Path] = set()
        """Notes counted by `landed` since the last count (so none is counted twice)."""
        self._drawn_at = 0.0
        self._drawn_version = -1
        self.version = 0
        """Bumped by every change worth a redraw (the owner counts its own changes too)."""
        self.series: Callable[[], Sequence[SeriesShown]] = tuple
        """The series in Recurring/, the soonest first (set by the service once it has them)."""
        self.problems: Callable[[], list[str]] = list
        """What stops work now, first on the page (a disk that takes no writes; set by the
        service)."""

    def count_finished(self) -> None:
        """Count the notes in Done/ and Failed/ (at start and at each sweep); failures whose
        note left Failed/ (retried, deleted) leave "Needs attention". At start, the newest
        notes already in Failed/ are listed there (by name; their run ended before)."""
        for folder in self.finished:
            self.finished[folder] = self.vault.count_notes(folder)
        self._landed.clear()
        root = self.vault.root
        kept = [line for line in self.failures if (root / f"{line.link}.md").exists()]
        if not kept and self.version == 0:
            kept = [Line(link_for(root, p), p.stem, "failed") for p in self._newest_failed()]
        self.failures = deque(kept, maxlen=RECENT_LINES)
        self.version += 1

    def _newest_failed(self) -> list[Path]:
        notes = list(self.vault.notes_in(Folder.FAILED))
        if len(notes) > 1000:  # a name order is enough there: no stat of every note
            return notes[-RECENT_LINES:][::-1]

        def mtime(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except OSError:
                return 0.0

        return sorted(notes, key=mtime, reverse=True)[:RECENT_LINES]

    def landed(self, path: Path, why: str = "") -> None:
        """A note of ours is at `path` now: one more in Done/ or Failed/ if it is there (each
        path counts once until the next count); in Failed/, it needs attention (`why`)."""
        folder = self.vault.folder_of(path)
        if (folder is Folder.DONE or folder is Folder.FAILED) and path not in self._landed:
            self._landed.add(path)
            self.finished[folder] += 1
            if folder is Folder.FAILED:
                link = link_for(self.vault.root, path)
                rest = [line for line in self.failures if line.link != link]
                self.failures = deque(rest, maxlen=RECENT_LINES)
                self.failures.appendleft(
                    Line(link, path.stem, f"failed: {why}" if why else "failed")
                )
            self.version += 1

    def left(self, path: Path) -> None:
        """A note counted in Done/ or Failed/ was found elsewhere (a retry, a person's move):
        one fewer there, and it needs no attention for its failure. (A sweep that recounted
        in between leaves the count one low until the next one.)"""
        folder = self.vault.folder_of(path)
        if folder is not Folder.DONE and folder is not Folder.FAILED:
            return
        self._landed.discard(path)
        self.finished[folder] = max(0, self.finished[folder] - 1)
        link = link_for(self.vault.root, path)
        self.failures = deque(
            (line for line in self.failures if line.link != link), maxlen=RECENT_LINES
        )
        self.version += 1

    def ran(self, line: Line) -> None:
        self.recent.appendleft(line)
        self.version += 1

    def changed(self) -> None:
        """Something it shows beside the notes changed (a usage limit's pause): redraw."""
        self.version += 1

    def state(self) -> DashboardState:
        """What Dashboard.md shows, from the main loop's index, its runs, the budget and a
        usage limit's pause."""
        now, pause = self.now(), self.runs.pause
        notices = [*self.problems(), self.budget.notice(now)]
        if pause is not None and pause.holds(now):
            notices.append(f"Claude runs are {pause.says(now)}: nothing starts before then.")
        return DashboardState(
            notes=[n for n in notices if n],
            updated=now,
            counts=self._counts(),
            running=self._running(),
            queued=self._queued(),
            waiting_approval=[
                Line(link_for(self.vault.root, p), e.title, e.task_type)
                for p, e in self.index.entries.items()
                if e.folder is Folder.PENDING_APPROVAL
            ],
            waiting_tasks=[
                Line(link_for(self.vault.root, p), e.title, f"waits for {e.waiting_for}")
                for p, e in sorted(self.index.entries.items())
                if e.waiting_for and not e.attention  # else under "Needs attention"
            ],
            upcoming=[upcoming_line(self.vault.root, s) for s in self.series()[:UPCOMING_LINES]],
            recent=[self._followed(line) for line in self.recent],
            attention=self._attention(),
        )

    def _followed(self, line: Line) -> Line:
        """The line linking to where its task's note is now (as the task's record has it)."""
        record = self.records.by_id.get(line.task_id) if line.task_id else None
        if record is None or not record.where:
            return line
        return replace(line, link=record.where.removesuffix(".md"))

    def _counts(self) -> dict[str, Counter[str]]:
        """Notes per folder and status (the refused ones too); Done/ and Failed/ as counted (a
        note the loop itself just moved there may still be in the index: counted once)."""
        counts: dict[str, Counter[str]] = {f.value: Counter() for f in TASK_FOLDERS}
        for entry in self.index.entries.values():
            if entry.folder not in self.finished:
                counts[entry.folder.value][(entry.status or Status.NEW).value] += 1
        for path in self.index.refused:
            folder = self.vault.folder_of(path)
            if folder is not None and folder.value in counts:
                counts[folder.value]["refused"] += 1
        for folder, notes in self.finished.items():
            counts[folder.value]["notes"] = notes
        return counts

    def _running(self) -> list[Line]:
        lines = []
        for task_id in self.runs.running_ids:
            where = self.index.owner_of(task_id)
            seen = self.index.entries.get(where) if where else None
            link = link_for(self.vault.root, where) if where else task_id
            lines.append(Line(link, seen.title if seen else task_id, task_id))
        return lines

    def _queued(self) -> list[Line]:
        entries = self.index.entries
        by_id = {e.task_id: e for e in entries.values() if e.task_id}
        return [
            Line(
                link_for(self.vault.root, r.path),
                by_id[r.task_id].title if r.task_id in by_id else r.task_id,
                r.priority,
            )
            for r in self.runs.queued
        ]

    def _attention(self) -> list[Line]:
        """Refused notes, held copies, the newest failures: each needs a person."""
        root = self.vault.root
        return [
            *(
                Line(link_for(root, p), p.name, reason)
                for p, (_, reason) in sorted(self.index.refused.items())
            ),
            *(
                Line(link_for(root, p), e.title, e.attention)
                for p, e in sorted(self.index.entries.items())
                if e.attention
            ),
            *self.failures,
        ]

    def deadline(self) -> float | None:
        """When the next redraw is due (monotonic), or None if nothing changed."""
        if self.index.changes + self.version == self._drawn_version:
            return None
        return self._drawn_at + MIN_REDRAW_SECONDS

    def draw(self, force: bool = False) -> None:
        """Redraw if something changed (in the index or here) and it is time."""
        version = self.index.changes + self.version
        now = time.monotonic()
        if not force and (
            version == self._drawn_version or now - self._drawn_at < MIN_REDRAW_SECONDS
        ):
            return
        self._drawn_at = now
        text = render(self.state())
        try:
            current = fsops.read_plain_text(self.vault.dashboard)
        except (OSError, UnicodeDecodeError):  # missing, or not a file of ours: replaced
            current = ""
        if _without_timestamp(current) != _without_timestamp(text):
            fsops.write_atomic(
                self.vault.dashboard, text.encode("utf-8"), self.vault.tmp, durable=False
            )
        self._drawn_version = version  # after the write: a refused one is tried again


def _without_timestamp(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("_Written by"))
