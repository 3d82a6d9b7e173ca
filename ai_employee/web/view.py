"""The board's model: one card per task note, kept from the vault's own files.

`card_of` reads one note into a `Card` (pure but for that read). `VaultView` holds the cards by
path and answers the board's questions (columns, filters, counts). It is owned by the web
server's event-loop thread: the watcher thread never touches it, it only asks that thread to
`refresh` a path (live.py). Nothing here writes.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NoteRefused
from ..lifecycle import Priority, Status
from ..notefile import peek_note
from ..taskfile import TASK_ID_SHAPE, TaskNote, held_reason
from ..vault import TASK_FOLDERS, Folder, Vault


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
    Column("waiting", "Waiting for approval", frozenset({Status.PENDING_APPROVAL})),
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


def money(value: object) -> float | None:
    """A `cost_usd` as a number, or None: a person may have written anything there."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


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
    completed: datetime | None = None
    changed: float = 0.0
    """The file's mtime (seconds): the board's order within a column, newest first."""

    @property
    def ref(self) -> str:
        """What the page's links carry: the task_id when it is a safe one, else the path."""
        return self.task_id or self.rel

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
        return Card(rel, folder.value, "refused", "refused", path.stem, error=err.reason)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if note.empty:
        return None
    return _card(note, rel, folder, snapshot.mtime_ns / 1e9)


def _card(note: TaskNote, rel: str, folder: Folder, changed: float) -> Card:
    meta = note.meta
    status = note.status.value if note.status else Status.NEW.value
    error = str(meta["error"]) if meta.get("error") not in (None, "") else None
    column = COLUMN_OF.get(status, "new")
    if folder is Folder.REJECTED or held_reason(error) is not None:
        column = "refused"  # a person's rejection stands before the service has seen it
    elif folder is Folder.APPROVED:
        column = "new"
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
        completed=note.when("completed_at"),
        changed=changed,
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


class VaultView:
    """Every task note's card, by its path in the vault. One thread only (see module doc)."""

    def __init__(self, vault: Vault, max_note_bytes: int) -> None:
        self.vault = vault
        self.max_note_bytes = max_note_bytes
        self.cards: dict[str, Card] = {}
        self._by_task: dict[str, str] = {}

    def load(self) -> int:
        """Read every note of the task folders; returns how many cards there are."""
        self.cards.clear()
        self._by_task.clear()
        for folder in TASK_FOLDERS:
            for path in self.vault.notes_in(folder):
                self.refresh(path)
        return len(self.cards)

    def refresh(self, path: Path) -> Card | None:
        """Read one path again (it changed, arrived or left); its card now, or None."""
        rel = self.vault.rel(path)
        old = self.cards.pop(rel, None)
        if old is not None and old.task_id and self._by_task.get(old.task_id) == rel:
            del self._by_task[old.task_id]
        card = card_of(self.vault, path, self.max_note_bytes)
        if card is not None:
            self.cards[rel] = card
            if card.task_id:
                self._by_task[card.task_id] = rel
        return card

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
        chosen: dict[str, list[Card]] = {c.key: [] for c in COLUMNS}
        types: set[str] = set()
        needs_you = 0
        for card in self.cards.values():
            if card.task_type:
                types.add(card.task_type)
            if card.needs_you:
                needs_you += 1
            if card.matches(filters):
                chosen[card.column].append(card)
        columns = [
            ColumnView(c, _newest(chosen[c.key], per_column), len(chosen[c.key])) for c in COLUMNS
        ]
        return Board(columns, len(self.cards), sorted(types), needs_you, filters)

    def needs_you(self) -> int:
        return sum(1 for card in self.cards.values() if card.needs_you)

    def finished(self) -> Iterator[Card]:
        """Cards in Done/ and Failed/ (the chart's figures)."""
        for card in self.cards.values():
            if card.folder in (Folder.DONE.value, Folder.FAILED.value):
                yield card


def _newest(cards: list[Card], n: int) -> list[Card]:
    return heapq.nlargest(n, cards, key=lambda c: (c.changed, c.rel))


def age(card: Card, now: datetime) -> str:
    """How long ago the card's note last changed, in words that fit a card."""
    seconds = max(0.0, now.timestamp() - card.changed)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "now"


def local(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M") if when else ""


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
