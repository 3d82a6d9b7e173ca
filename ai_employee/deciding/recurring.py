"""Recurring tasks: the series notes in Recurring/, each occurrence written as a task note.

`Recurring.look(path)` reads a series note, checks its rules (`schedule.parse_rules`; a bad one
refuses the note, said once) and asks `schedule.due` what is due now. Each occurrence it names
is written into Needs_Action/ as a new task note: its name holds the occurrence's local date and
time, its keys name its series (`series`) and its occurrence (`occurrence`), and its task_id is
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import yaml

from ..base import fsops
from ..base.errors import NoteRefused
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
            note, snap = self.notes.read(path)
            rules = parse_rules(note.meta, self.zone)
        except NoteRefused as err:
            self.known.pop(path, None)
            self.refusals.refuse(path, err.reason)
            return []
        except (FileNotFoundError, NoteGone):
            self.forget(path)
            return []
        self.refusals.readable(path)
        signature = (snap.inode, len(snap.data), snap.mtime_ns)
        try:
            return self._bring_in_line(path, note, signature, rules)
        except OSError:  # a full disk, a permission: tried again later, not at every turn
            series_id = str(note.meta.get("series_id") or "")
            retry = now + RETRY_AFTER_ERROR
            self.known[path] = Series(
                path, signature, series_id, note.title, rules.every.text, rules.zone, retry
            )
            raise

    def forget(self, path: Path) -> None:
        if self.known.pop(path, None) is not None:
            self.index.changes += 1

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
        previous = _as_utc(note.when("last_occurrence"))
        written: list[Path] = []
        for moment in decision.write:
            wrote, skipped = self._occur(note, rules, series_id, moment, previous)
            if skipped:
                changes["last_skipped"] = moment.astimezone(rules.zone)
                continue
            previous = moment
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
        self.known[path] = Series(
            path,
            placed.signature if placed is not None else signature,
            series_id,
            note.title,
            rules.every.text,
            rules.zone,
            decision.next_at,
        )
        self.index.changes += 1  # Dashboard.md's next occurrences
        return written

    def _series_id(self, path: Path, note: TaskNote) -> str:
        """The series' id: the one on its note, unless another series note holds it (a copy
        a person made to start a series of their own): then a new one."""
        kept = note.meta.get("series_id")
        if not isinstance(kept, str) or not TASK_ID_SHAPE.fullmatch(kept):
            return new_task_id()
        taken = any(s.series_id == kept for p, s in self.known.items() if p != path)
        return new_task_id() if taken else kept

    def _occur(
        self,
        series: TaskNote,
        rules: Rules,
        series_id: str,
        moment: datetime,
        previous: datetime | None,
    ) -> tuple[Path | None, bool]:
        """Write one occurrence (unless it is there already, or skipped for overlap). Returns
        the note written (None: there already, or skipped) and whether it was skipped."""
        task_id = occurrence_id(series_id, moment)
        if self._exists(task_id):
            return None, False
        after: str | None = None
        if previous is not None:
            before = occurrence_id(series_id, previous)
            if self._unfinished(before):
                if rules.overlap == "skip":
                    log.info(
                        "occurrence skipped",
                        action_type="recurring",
                        target=f"{Folder.RECURRING.value}/{series.name}",
                        task_id=task_id,
                        parameters={"occurrence": moment.astimezone(rules.zone).isoformat()},
                        result=f"the previous occurrence ({before}) has not ended (overlap: skip)",
                    )
                    return None, True
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

    def _unfinished(self, task_id: str) -> bool:
        """The task has a note that has not ended (done, failed, cancelled, rejected)."""
        known = self.records.known(task_id, read_body=False)
        if known is not None:
            return known.where is not None and known.status not in TERMINAL
        path = self.index.owners.get(task_id)
        entry = self.index.entries.get(path) if path is not None else None
        return entry is not None and entry.status not in TERMINAL


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


def occurrence_name(title: str, local: datetime) -> str:
    """`<title> 2026-12-07 08.00.md` (seconds too when the time has them)."""
    stamp = f"{local:%Y-%m-%d %H.%M}" + (f".{local:%S}" if local.second else "")
    return f"{file_name_for(title).removesuffix('.md')[:60].rstrip()} {stamp}.md"


def occurrence_text(
    series: TaskNote, series_id: str, local: datetime, task_id: str, after: str | None
) -> str:
    """An occurrence's note: the series' title with the time, the series' task keys, its body;
    and our keys naming the series, the occurrence and the task."""
    stamp = f"{local:%Y-%m-%d %H:%M}" + (f":{local:%S}" if local.second else "")
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
        f"series: {series_id}",
        f"occurrence: {render_value(local)}",
        f"task_id: {task_id}",
    ]
    body = series.body_without_result.strip("\n")
    return "---\n" + "\n".join(lines) + "\n---\n" + (body + "\n" if body else "")
