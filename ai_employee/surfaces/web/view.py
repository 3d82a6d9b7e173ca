"""The board's model: one card per task note, kept from the vault's own files.

`card_of` reads one note into a `Card` (pure but for that read). `VaultView` holds the cards by
path and answers the board's questions (columns, filters, counts). It is owned by the web
server's event-loop thread: the watcher thread never touches it, it only asks that thread to
`refresh` a path (live.py). Nothing here writes.
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ...base.errors import NoteRefused
from ...notes.lifecycle import Priority, Status
from ...notes.notefile import peek_note
from ...notes.taskfile import TASK_ID_SHAPE, TaskNote, held_reason
from ...notes.vault import TASK_FOLDERS, Folder, Vault


@dataclass(frozen=True)
class Column:
    """A column of the board: its key (in URLs and tests), its heading, and its statuses."""

    key: str
    heading: str
    statuses: frozenset[str]


COLUMNS: tuple[Column, ...] = (
    Column("new", "New", frozenset({Status.NEW, Status.DRAFT, Status.APPROVED})),
    Column("planned", "Planned", frozenset({Status.PLANNED})),
    Column("running", "Running", frozenset({Status.EXECUTING})),
    Column("waiting", "Waiting for you", frozenset({Status.PENDING_APPROVAL, Status.IN_REVIEW})),
    Column("done", "Done", frozenset({Status.DONE})),
    Column("failed", "Failed", frozenset({Status.FAILED})),
    Column("cancelled", "Cancelled", frozenset({Status.CANCELLED})),
    Column("refused", "Refused or rejected", frozenset({"refused", Status.REJECTED})),
)
"""The board, left to right. `refused` holds notes the service will not touch (broken YAML,
a held copy) beside tasks a person rejected: neither will run."""

COLUMN_OF: dict[str, str] = {status: c.key for c in COLUMNS for status in c.statuses}

CARDS_PER_COLUMN = 50
"""A column shows its newest cards, up to this many, and says how many more it holds."""

NEEDS_YOU = frozenset({"waiting", "failed", "refused"})
"""Columns whose cards wait for a person (the page's badge counts them, rejected aside)."""


MAX_MONEY = 1e9
"""A `cost_usd` (or `duration_s`) above this is not taken for a figure."""


def money(value: object) -> float | None:
    """A `cost_usd` as a number, or None: a person may have written anything there."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and 0 <= number <= MAX_MONEY else None


def displayable(text: str) -> str:
    """Text that can be sent (a file name that is not UTF-8 holds surrogates)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def local_date(when: datetime | None) -> date | None:
    """`when` as a local date; None for a date the local zone cannot hold (year 1 or 9999)."""
    try:
        return when.astimezone().date() if when else None
    except (OverflowError, ValueError):
        return None


@dataclass(frozen=True)
class Card:
    """One task note as the board and the task page show it."""

    rel: str
    """Its path in the vault (`Done/Some task.md`): how the page names it."""
    folder: str
    column: str
    status: str
    title: str
    task_id: str | None = None
    task_type: str | None = None
    priority: str = Priority.NORMAL.value
    attempts: int = 0
    cost_usd: float | None = None
    duration_s: float | None = None
    error: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    """When its current run began (`started_at`), for how long a running task has run."""
    completed: datetime | None = None
    completed_day: date | None = None
    """`completed` as a local date (the chart's day), worked out once."""
    changed: float = 0.0
    """The file's mtime (seconds): the board's order within a column, newest first."""
    changes: str = ""
    """What the task changed, as its note says (`3 files, +40 -2`)."""
    waiting_for: str = ""
    """What it waits for (`after:`), as its note says, while it waits."""

    @property
    def lines(self) -> str:
        """The lines a task changed, for its card (`+40 -2`; empty when not known)."""
        _, _, counts = self.changes.partition(", ")
        return counts if counts.startswith("+") else ""

    @property
    def ref(self) -> str:
        """What the page's links carry: the task_id when it is a safe one, else the path."""
        return self.task_id or displayable(self.rel)

    @property
    def needs_you(self) -> bool:
        rejected = self.status == Status.REJECTED or self.folder == Folder.REJECTED.value
        return self.column in NEEDS_YOU and not rejected

    def matches(self, filters: Filters) -> bool:
        if filters.task_type and (self.task_type or "") != filters.task_type:
            return False
        if filters.priority and self.priority != filters.priority:
            return False
        if filters.text:
            haystack = f"{self.title}\n{self.rel}\n{self.task_id or ''}\n{self.error or ''}"
            if filters.text.casefold() not in haystack.casefold():
                return False
        return True


def card_of(vault: Vault, path: Path, max_bytes: int) -> Card | None:
    """The card of one note, a refused card if we cannot trust it, None if it is gone."""
    folder = vault.folder_of(path)
    if folder is None or folder not in TASK_FOLDERS:
        return None
    rel = vault.rel(path)
    try:
        note, snapshot = peek_note(path, vault.root, max_bytes)
    except NoteRefused as err:
        return _refused(path, rel, folder, err.reason)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:  # no permission, an I/O error: said on the card
        return _refused(path, rel, folder, f"cannot be read: {err.strerror or err}")
    if note.empty:
        return None
    if displayable(rel) != rel:
        return _refused(path, rel, folder, "its file name is not UTF-8; rename it")
    return _card(note, rel, folder, snapshot.mtime_ns / 1e9)


def _refused(path: Path, rel: str, folder: Folder, reason: str) -> Card:
    """The card of a note the service will not touch: its name, why, and when it changed."""
    try:
        changed = os.lstat(path).st_mtime
    except OSError:
        changed = 0.0
    title = displayable(path.stem)
    return Card(rel, folder.value, "refused", "refused", title, error=reason, changed=changed)


def _card(note: TaskNote, rel: str, folder: Folder, changed: float) -> Card:
    meta = note.meta
    status = note.status.value if note.status else Status.NEW.value
    error = str(meta["error"]) if meta.get("error") not in (None, "") else None
    column = COLUMN_OF.get(status, "new")
    if folder is Folder.REJECTED or held_reason(error) is not None:
        column = "refused"  # a person's rejection stands before the service has seen it
    elif folder is Folder.APPROVED:
        column = "new"
    completed = note.when("completed_at")
    task_id = note.task_id if note.task_id and TASK_ID_SHAPE.fullmatch(note.task_id) else None
    return Card(
        rel=rel,
        folder=folder.value,
        column=column,
        status=status,
        title=note.title,
        task_id=task_id,
        task_type=note.task_type,
        priority=note.priority.value,
        attempts=note.attempts,
        cost_usd=money(meta.get("cost_usd")),
        duration_s=money(meta.get("duration_s")),
        error=error,
        created=note.when("created") or note.when("planned_at"),
        started=note.when("started_at"),
        completed=completed,
        completed_day=local_date(completed),
        changed=changed,
        changes=str(meta.get("changes") or "")[:80],
        waiting_for=str(meta.get("waiting_for") or "") if status == Status.PLANNED else "",
    )


@dataclass(frozen=True)
class Filters:
    """The board's filters, from the query string; empty means "all"."""

    task_type: str = ""
    priority: str = ""
    text: str = ""

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        def get(name: str) -> str:
            return str(query.get(name) or "").strip()[:200]

        priority = get("priority")
        return cls(
            get("type"), priority if priority in {p.value for p in Priority} else "", get("q")
        )

    @property
    def active(self) -> bool:
        return bool(self.task_type or self.priority or self.text)


@dataclass
class ColumnView:
    column: Column
    cards: list[Card]
    count: int

    @property
    def more(self) -> int:
        return self.count - len(self.cards)


@dataclass
class Board:
    columns: list[ColumnView]
    total: int
    types: list[str]
    needs_you: int
    filters: Filters = field(default_factory=Filters)

    @property
    def needing_you(self) -> str:
        """The column the "needs you" badge links to: the first that holds a card waiting for
        a person (or the approvals' column when none does)."""
        return next(
            (cv.column.key for cv in self.columns if cv.column.key in NEEDS_YOU and cv.count),
            "waiting",
        )


@dataclass
class DayTotal:
    """What the finished cards of one local day add up to (cost in micro-dollars: exact)."""

    cost_micro: int = 0
    done: int = 0


def _finished(card: Card) -> bool:
    return (
        card.folder in (Folder.DONE.value, Folder.FAILED.value) and card.completed_day is not None
    )


class VaultView:
    """Every task note's card, by its path in the vault, and the indexes the board reads, kept
    as cards come and go: each column's cards in order, the counts, the types, the day totals.
    Drawing the board then costs the same whatever Done/ holds (filters aside: they look at
    every card). One thread only (see the module docstring)."""

    def __init__(self, vault: Vault, max_note_bytes: int) -> None:
        self.vault = vault
        self.max_note_bytes = max_note_bytes
        self.cards: dict[str, Card] = {}
        self._by_task: dict[str, str] = {}
        self._order: dict[str, list[tuple[float, str]]] = {c.key: [] for c in COLUMNS}
        """Each column's (changed, rel), oldest first."""
        self._types: Counter[str] = Counter()
        self._needs_you = 0
        self.per_day: dict[date, DayTotal] = {}

    def load(self) -> int:
        """Read every note of the task folders; returns how many cards there are."""
        for card in list(self.cards.values()):
            self._remove(card)
        for folder in TASK_FOLDERS:
            for path in self.vault.notes_in(folder):
                self.refresh(path)
        return len(self.cards)

    def refresh(self, path: Path) -> Card | None:
        """Read one path again (it changed, arrived or left); its card now, or None."""
        old = self.cards.get(self.vault.rel(path))
        if old is not None:
            self._remove(old)
        card = card_of(self.vault, path, self.max_note_bytes)
        if card is not None:
            self._add(card)
        return card

    def _add(self, card: Card) -> None:
        self.cards[card.rel] = card
        if card.task_id:
            self._by_task[card.task_id] = card.rel
        bisect.insort(self._order[card.column], (card.changed, card.rel))
        if card.task_type:
            self._types[card.task_type] += 1
        self._needs_you += card.needs_you
        if _finished(card):
            total = self.per_day.setdefault(card.completed_day, DayTotal())  # type: ignore[arg-type]
            total.cost_micro += round((card.cost_usd or 0.0) * 1e6)
            total.done += card.status == Status.DONE

    def _remove(self, card: Card) -> None:
        del self.cards[card.rel]
        if card.task_id and self._by_task.get(card.task_id) == card.rel:
            del self._by_task[card.task_id]
        order = self._order[card.column]
        del order[bisect.bisect_left(order, (card.changed, card.rel))]
        if card.task_type:
            self._types[card.task_type] -= 1
            if not self._types[card.task_type]:
                del self._types[card.task_type]
        self._needs_you -= card.needs_you
        if _finished(card):
            total = self.per_day[card.completed_day]  # type: ignore[index]
            total.cost_micro -= round((card.cost_usd or 0.0) * 1e6)
            total.done -= card.status == Status.DONE

    def find(self, ref: str) -> Card | None:
        """A card by task_id or by its path in the vault; nothing else reaches a file."""
        rel = self._by_task.get(ref)
        if rel is not None:
            return self.cards.get(rel)
        return self.cards.get(ref)

    def path_of(self, card: Card) -> Path:
        return self.vault.root / card.rel

    def board(self, filters: Filters, per_column: int = CARDS_PER_COLUMN) -> Board:
        """The columns with their newest matching cards, and the counts."""
        columns = []
        if not filters.active:
            for column in COLUMNS:
                order = self._order[column.key]
                newest = [self.cards[rel] for _, rel in reversed(order[-per_column:])]
                columns.append(ColumnView(column, newest, len(order)))
        else:
            chosen: dict[str, list[Card]] = {c.key: [] for c in COLUMNS}
            for card in self.cards.values():
                if card.matches(filters):
                    chosen[card.column].append(card)
            for column in COLUMNS:
                matching = chosen[column.key]
                newest = heapq.nlargest(per_column, matching, key=lambda c: (c.changed, c.rel))
                columns.append(ColumnView(column, newest, len(matching)))
        return Board(columns, len(self.cards), sorted(self._types), self._needs_you, filters)

    def needs_you(self) -> int:
        """How many cards wait for a person (the page's badge)."""
        return self._needs_you


def age(card: Card, now: datetime) -> str:
    """How long ago the card's note last changed, in words that fit a card; for a running
    task, how long its run has run. Empty when the time is not known."""
    if card.column == "running" and card.started is not None:
        return f"running {span(now.timestamp() - card.started.timestamp())}"
    if card.changed <= 0:
        return ""
    return span(now.timestamp() - card.changed)


def span(seconds: float) -> str:
    """A length of time that fits a card: `now`, `42s`, `5m`, `3h`, `2d`."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "now"


def local(when: datetime | None) -> str:
    try:
        return when.astimezone().strftime("%Y-%m-%d %H:%M") if when else ""
    except (OverflowError, ValueError):
        return str(when)


def utcnow() -> datetime:
    return datetime.now(UTC)


def work_files(root: Path, limit: int = 200) -> tuple[list[tuple[str, int]], bool]:
    """The files of a work dir (relative path, size), never following a symlink out of it;
    at most `limit`, and whether there were more. Version-control and dependency folders are
    left out."""
    skip = {".git", "node_modules", "__pycache__", ".venv", "venv", "target", ".mypy_cache"}
    found: list[tuple[str, int]] = []
    if not root.is_dir() or root.is_symlink():
        return found, False
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in skip and d not in links)
        for name in sorted([*filenames, *links]):  # a link to a folder is listed, not entered
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            found.append((str(path.relative_to(root)), st.st_size))
            if len(found) >= limit:
                return found, True
    return found, False
