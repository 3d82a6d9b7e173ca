"""Recurring tasks: the series notes in Recurring/, each occurrence written as a task note.

`Recurring.look(path)` reads a series note, checks its rules (`schedule.parse_rules`; a bad one
refuses the note, said once) and asks `schedule.due` what is due now. Each occurrence it names
is written into Needs_Action/ as a new task note: its name holds the occurrence's local date and
time, its keys name its series (`series_id`) and its occurrence (`occurrence`), and its task_id is
derived from the two, so an occurrence is written once: after a restart, after a crash between
writing it and recording it on the series note, and where a sync tool brings it back (identity
holds such copies), it is found, not written again. Then the series note's own keys say what
happened: `next_at`, `last_occurrence`, `last_skipped`. With `overlap: skip` (the default) an
occurrence is skipped, and the skip recorded, while the previous one has not ended; with `queue`
it is written to run after it (`after:`).

The next times are the main loop's deadlines (`next_wakeup`, `due_paths`): nothing polls, and
a series an hour away costs nothing until then. Owned by the main loop (its one thread): the
series it knows, and every write here (occurrence notes, the series' keys).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import yaml

from ..base import fsops
from ..base.errors import NoteRefused, WriteConflict
from ..notes.identity import conflict_base
from ..notes.index import NoteIndex
from ..notes.lifecycle import TERMINAL
from ..notes.notefile import NoteGone, NoteStore, Signature, signature_of
from ..notes.records import TaskRecords
from ..notes.schedule import SERIES_KEYS, Rules, due, machine_zone, parse_rules
from ..notes.taskfile import (
    OWNED_KEYS,
    TASK_ID_SHAPE,
    TaskNote,
    derived_task_id,
    new_task_id,
    render_value,
)
from ..notes.vault import Folder, Vault, file_name_for
from .refusals import Refusals

log = structlog.get_logger(__name__)

RETRY_AFTER_ERROR = timedelta(seconds=60)
"""A series whose occurrence or keys could not be written (a full disk) is tried again after
this (the error is logged by the main loop)."""

NOT_COPIED = frozenset({*SERIES_KEYS, *OWNED_KEYS, "title", "status"})
"""A series note's keys an occurrence does not take (the rest it does: type, priority, ...)."""


@dataclass
class Series:
    """A series note as the service last decided on it."""

    path: Path
    signature: Signature
    series_id: str
    title: str
    every: str
    zone: ZoneInfo
    next_at: datetime | None
    """None while paused."""


@dataclass(frozen=True)
class Written:
    """An occurrence of a series: its task, and where it was written (None: only recorded)."""

    task_id: str
    path: Path | None


RECENT_OCCURRENCES = 8
"""Occurrences of each series remembered for the overlap rule (the last one recorded on the
note is always among them)."""


def occurrence_id(series_id: str, moment: datetime) -> str:
    """The task_id of a series' occurrence: the same on every machine, after every restart."""
    return derived_task_id(f"{series_id}@{moment.isoformat()}")


@dataclass
class Recurring:
    """The series in Recurring/ (see the module docstring)."""

    vault: Vault
    notes: NoteStore
    records: TaskRecords
    index: NoteIndex
    refusals: Refusals
    now: Callable[[], datetime]
    zone: ZoneInfo = field(default_factory=machine_zone)
    """Where a series without `timezone:` keeps its times: the machine's zone."""
    known: dict[Path, Series] = field(default_factory=dict)
    _by_id: dict[str, Path] = field(default_factory=dict)
    """series_id -> the note that holds it."""
    _written: dict[str, deque[Written]] = field(default_factory=dict)
    """series_id -> its latest occurrences (written by this service, or recorded on the note
    as its last): the overlap rule asks about each; one written is known at once, before its
    own look."""

    def paths(self) -> Iterator[Path]:
        yield from self.vault.notes_in(Folder.RECURRING)

    def look(self, path: Path, *, force: bool = False) -> list[Path]:
        """One series note brought in line: what is due now written, its keys updated.
        Returns the occurrence notes written (for the caller to look at at once)."""
        try:
            signature = signature_of(os.lstat(path))
        except FileNotFoundError:
            self.forget(path)
            return []
        seen, now = self.known.get(path), self.now()
        unchanged = not force and seen is not None and seen.signature == signature
        if unchanged and seen is not None and (seen.next_at is None or seen.next_at > now):
            return []
        try:
            self._not_a_conflict_copy(path)
            note, snap = self.notes.read(path)
            rules = parse_rules(note.meta, self.zone)
        except NoteRefused as err:
            self.forget(path)
            self.refusals.refuse(path, err.reason)
            return []
        except (FileNotFoundError, NoteGone):
            self.forget(path)
            return []
        self.refusals.readable(path)
        signature = (snap.inode, len(snap.data), snap.mtime_ns)
        try:
            return self._bring_in_line(path, note, signature, rules)
        except (FileNotFoundError, NoteGone):  # moved or deleted while we wrote: its event
            self.forget(path)
            return []
        except (OSError, WriteConflict):  # a full disk; a note that kept changing: tried
            series_id = str(note.meta.get("series_id") or "")  # again later, not every turn
            retry = now + RETRY_AFTER_ERROR
            self._remember(
                Series(path, signature, series_id, note.title, rules.every.text, rules.zone, retry)
            )
            raise

    def forget(self, path: Path) -> None:
        """The series note is gone (or refused): no more of its times."""
        series = self.known.pop(path, None)
        if series is not None:
            if self._by_id.get(series.series_id) == path:
                del self._by_id[series.series_id]
            self.index.changes += 1

    def _remember(self, series: Series) -> None:
        old = self.known.get(series.path)
        if old is not None and self._by_id.get(old.series_id) == series.path:
            del self._by_id[old.series_id]
        self.known[series.path] = series
        if series.series_id:
            self._by_id.setdefault(series.series_id, series.path)

    def _not_a_conflict_copy(self, path: Path) -> None:
        """A sync tool's conflict copy of a series note beside the note it copies would be a
        second series writing every occurrence again: refused, saying so."""
        base, sure = conflict_base(path.name)
        if base is not None and sure and (path.parent / base).exists():
            raise NoteRefused(
                f"a sync tool's conflict copy of {Folder.RECURRING.value}/{base}: keep what you "
                "want of it in that note and delete this one (a copy would be a second series)"
            )

    def keep_only(self, seen: Iterable[Path]) -> None:
        """After a full scan: forget the series whose notes were not seen."""
        for path in set(self.known) - set(seen):
            self.forget(path)

    def due_paths(self, now: datetime) -> list[Path]:
        """The series notes whose next time has come."""
        return [s.path for s in self.known.values() if s.next_at is not None and s.next_at <= now]

    def next_wakeup(self) -> datetime | None:
        times = [s.next_at for s in self.known.values() if s.next_at is not None]
        return min(times) if times else None

    def upcoming(self) -> list[Series]:
        """The series, the soonest first (paused ones last)."""
        return sorted(
            self.known.values(),
            key=lambda s: (s.next_at is None, s.next_at or datetime.max.replace(tzinfo=s.zone)),
        )

    # --- inside ---------------------------------------------------------------------------

    def _bring_in_line(
        self, path: Path, note: TaskNote, signature: Signature, rules: Rules
    ) -> list[Path]:
        now = self.now()
        changes: dict[str, Any] = {}
        series_id = self._series_id(path, note)
        if series_id != note.meta.get("series_id"):
            changes["series_id"] = series_id
        decision = due(rules, _next_from(rules, note.when("next_at"), now), now)
        last = _as_utc(note.when("last_occurrence"))
        recent = self._written.setdefault(series_id, deque(maxlen=RECENT_OCCURRENCES))
        if last is not None and all(w.task_id != occurrence_id(series_id, last) for w in recent):
            recent.appendleft(Written(occurrence_id(series_id, last), None))  # the note's record
        written: list[Path] = []
        for moment in decision.write:
            wrote, skipped = self._occur(note, rules, series_id, moment, recent)
            if skipped:
                changes["last_skipped"] = moment.astimezone(rules.zone)
                continue
            changes["last_occurrence"] = moment.astimezone(rules.zone)
            if wrote is not None:
                written.append(wrote)
        if decision.missed:
            log.info(
                "occurrences missed",
                action_type="recurring",
                target=self.vault.rel(path),
                parameters={"missed": decision.missed, "catch_up": rules.catch_up},
                result=f"{len(decision.write)} written; the rest not (catch_up: {rules.catch_up})",
            )
        next_local = decision.next_at.astimezone(rules.zone) if decision.next_at else None
        if next_local != note.when("next_at"):
            changes["next_at"] = next_local
        placed = self.notes.update(path, changes) if changes else None
        self._remember(
            Series(
                path,
                placed.signature if placed is not None else signature,
                series_id,
                note.title,
                rules.every.text,
                rules.zone,
                decision.next_at,
            )
        )
        self.index.changes += 1  # Dashboard.md's next occurrences
        return written

    def _series_id(self, path: Path, note: TaskNote) -> str:
        """The series' id: the one on its note, unless another series note holds it (a copy
        a person made to start a series of their own): then a new one."""
        kept = note.meta.get("series_id")
        if not isinstance(kept, str) or not TASK_ID_SHAPE.fullmatch(kept):
            return new_task_id()
        holder = self._by_id.get(kept)
        return new_task_id() if holder is not None and holder != path else kept

    def _occur(
        self,
        series: TaskNote,
        rules: Rules,
        series_id: str,
        moment: datetime,
        recent: deque[Written],
    ) -> tuple[Path | None, bool]:
        """Write one occurrence (unless it is there already, or skipped for overlap). Returns
        the note written (None: there already, or skipped) and whether it was skipped.
        `recent`: the series' latest occurrences (newest last); this one is added once written."""
        task_id = occurrence_id(series_id, moment)
        if any(w.task_id == task_id for w in recent) or self._exists(task_id):
            return None, False
        after: str | None = None
        before = next((w.task_id for w in reversed(recent) if self._unfinished(w)), None)
        if before is not None and rules.overlap == "skip":
            log.info(
                "occurrence skipped",
                action_type="recurring",
                target=f"{Folder.RECURRING.value}/{series.name}",
                task_id=task_id,
                parameters={"occurrence": moment.astimezone(rules.zone).isoformat()},
                result=f"the previous occurrence ({before}) has not ended (overlap: skip)",
            )
            return None, True
        if before is not None:  # overlap: queue
            after = before
        local = moment.astimezone(rules.zone)
        text = occurrence_text(series, series_id, local, task_id, after)
        name = occurrence_name(series.title, local)
        staged = fsops.write_temp(self.vault.tmp, text.encode("utf-8"))
        try:
            path = fsops.move_noreplace(staged, self.vault.folder(Folder.NEEDS_ACTION), name)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        recent.append(Written(task_id, path))
        log.info(
            "occurrence written",
            action_type="recurring",
            target=self.vault.rel(path),
            task_id=task_id,
            parameters={"series": series_id, "occurrence": local.isoformat()},
        )
        return path, False

    def _exists(self, task_id: str) -> bool:
        """The occurrence was written before: its task is known (planned, or seen)."""
        return task_id in self.records.by_id or task_id in self.index.owners

    def _unfinished(self, written: Written) -> bool:
        """The occurrence's note has not ended (done, failed, cancelled, rejected). One this
        service wrote a moment ago, not looked at yet: its note is where it was written."""
        task_id = written.task_id
        path = self.index.owners.get(task_id)
        entry = self.index.entries.get(path) if path is not None else None
        if entry is not None:
            return entry.status not in TERMINAL
        if task_id not in self.records.by_id:
            return written.path is not None and written.path.exists()
        known = self.records.known(task_id, read_body=False)
        return known is not None and known.where is not None and known.status not in TERMINAL


def _next_from(rules: Rules, recorded: datetime | None, now: datetime) -> datetime | None:
    """The series' next time as the rules say now: the recorded one once it has come (what
    was missed is the catch-up's); else from the rules (an edit may have changed them). An
    interval keeps its rhythm unless the interval got shorter."""
    if rules.paused or recorded is None or recorded <= now:
        return None if rules.paused else _as_utc(recorded)
    if rules.every.interval is not None:
        return min(_as_utc(recorded) or now, now + rules.every.interval)
    return rules.every.after(now, rules.zone)


def _as_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _stamp(local: datetime, time_sep: str) -> str:
    """`2026-12-07 08:00` (seconds too when it has them; the zone's abbreviation too on the
    hour the clocks repeat, whose local times come twice)."""
    stamp = f"{local:%Y-%m-%d %H}{time_sep}{local:%M}"
    stamp += f"{time_sep}{local:%S}" if local.second else ""
    other = local.replace(fold=1 - local.fold)
    return f"{stamp} {local:%Z}" if other.utcoffset() != local.utcoffset() else stamp


def occurrence_name(title: str, local: datetime) -> str:
    """`<title> 2026-12-07 08.00.md` (see `_stamp`)."""
    return f"{file_name_for(title).removesuffix('.md')[:60].rstrip()} {_stamp(local, '.')}.md"


def occurrence_text(
    series: TaskNote, series_id: str, local: datetime, task_id: str, after: str | None
) -> str:
    """An occurrence's note: the series' title with the time, the series' task keys, its body;
    and our keys naming the series, the occurrence and the task."""
    stamp = _stamp(local, ":")
    copied = {k: v for k, v in series.meta.items() if k not in NOT_COPIED}
    if after is not None:
        named = copied.get("after")
        before = (
            [named] if isinstance(named, str) else list(named) if isinstance(named, list) else []
        )
        copied["after"] = [*before, after]
    lines = [f"title: {render_value(f'{series.title} {stamp}')}"]
    if copied:
        dumped = yaml.safe_dump(copied, allow_unicode=True, sort_keys=False, width=1_000_000)
        lines.append(dumped.rstrip("\n"))
    lines += [
        f"series_id: {series_id}",
        f"occurrence: {render_value(local)}",
        f"task_id: {task_id}",
    ]
    body = series.body_without_result.strip("\n")
    return "---\n" + "\n".join(lines) + "\n---\n" + (body + "\n" if body else "")
