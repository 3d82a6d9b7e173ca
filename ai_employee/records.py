"""What the vault records of every task, read from its plans: the service's memory of tasks.

Each plan (`Plans/PLAN_<note> (<task_id>).md`) heads its text with its task's task_id, title,
note name, the hash of what was asked, and where its note is now (`where`, updated when the
service moves the note). `TaskRecords` is those heads, read once at start (only the first few
hundred bytes of each plan) and kept up to date as the service plans and moves notes; it finds
a task by task_id, by note name and by body hash, and checks on the disk where its note is. It
is a cache of the vault, never the only copy: after a restart, or on another machine, the
plans say the same. Owned by the main loop.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from .errors import NoteRefused
from .identity import Known
from .lifecycle import Status
from .notefile import NoteGone, NoteStore
from .planner import update_plan_head
from .taskfile import TaskNote
from .vault import TASK_FOLDERS, Folder, Vault

FINISHED = (Folder.DONE, Folder.FAILED, Folder.REJECTED)

log = structlog.get_logger(__name__)

HEAD_BYTES = 1024
"""How much of a plan is read at start: its head holds the record."""

_FIELD = re.compile(r"^(task_id|title|note|body_sha256|where|status):[ \t]*(.*?)[ \t]*$", re.M)


@dataclass
class Record:
    """One task as its plan records it."""

    task_id: str
    plan: Path
    title: str
    name: str
    body_hash: str
    where: str
    """Its note's place relative to the vault (`Done/x.md`), as last recorded."""
    status: Status | None


def _unquote(value: str) -> str:
    """A head field as planner.plan_head writes it: a JSON string (a YAML double-quoted
    scalar), or a plain word."""
    if value.startswith('"'):
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def read_record(plan: Path) -> Record | None:
    """The record at the head of a plan; None for a file that is not one of our plans."""
    try:
        fd = os.open(plan, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.read(fd, HEAD_BYTES).decode("utf-8", errors="replace")
    finally:
        os.close(fd)
    if not head.startswith("---"):
        return None
    fields = {key: _unquote(value) for key, value in _FIELD.findall(head.split("\n---", 1)[0])}
    task_id = fields.get("task_id", "")
    if not task_id:
        return None
    status = fields.get("status") or None
    return Record(
        task_id=task_id,
        plan=plan,
        title=fields.get("title", ""),
        name=fields.get("note", ""),
        body_hash=fields.get("body_sha256", ""),
        where=fields.get("where", ""),
        status=Status(status) if status and status in Status._value2member_map_ else None,
    )


class TaskRecords:
    """The records of every task in a vault, by task_id, note name and body hash."""

    def __init__(self, vault: Vault, notes: NoteStore) -> None:
        self.vault = vault
        self.notes = notes
        self.by_id: dict[str, Record] = {}
        self._by_name: dict[str, set[str]] = {}
        self._by_hash: dict[str, set[str]] = {}

    def load(self) -> int:
        """Read every plan's head (at start); returns how many records there are."""
        plans = self.vault.folder(Folder.PLANS)
        try:
            with os.scandir(plans) as entries:
                names = [e.name for e in entries if e.name.endswith(".md") and e.is_file()]
        except FileNotFoundError:
            names = []
        for name in names:
            record = read_record(plans / name)
            if record is not None:
                self.add(record)
        return len(self.by_id)

    def add(self, record: Record) -> None:
        old = self.by_id.get(record.task_id)
        if old is not None:
            self._by_name.get(old.name, set()).discard(old.task_id)
            self._by_hash.get(old.body_hash, set()).discard(old.task_id)
        self.by_id[record.task_id] = record
        self._by_name.setdefault(record.name, set()).add(record.task_id)
        self._by_hash.setdefault(record.body_hash, set()).add(record.task_id)

    def plan_of(self, task_id: str) -> Path | None:
        record = self.by_id.get(task_id)
        return record.plan if record is not None else None

    def moved(self, task_id: str, where: Path, status: Status | None) -> None:
        """The service moved a task's note (or changed its status): the record follows, in
        memory and in the plan's head (what a restart or another machine will read)."""
        record = self.by_id.get(task_id)
        if record is None:
            return
        record.where = self.vault.rel(where)
        if status is not None:
            record.status = status
        try:
            update_plan_head(record.plan, self.vault.tmp, record.where, status)
        except OSError as err:  # the plan is ours and rebuilt; the move stands
            log.warning(
                "plan not updated",
                action_type="plan",
                target=self.vault.rel(record.plan),
                task_id=task_id,
                error=f"{type(err).__name__}: {err}",
            )

    def named(self, *names: str | None) -> list[str]:
        found: list[str] = []
        for name in names:
            if name:
                found += sorted(self._by_name.get(name, ()))
        return found

    def with_hash(self, body_hash: str) -> list[str]:
        return sorted(self._by_hash.get(body_hash, ()))

    def known(self, task_id: str, read_body: bool, not_at: Path | None = None) -> Known | None:
        """The task as the vault has it now: where its note is (checked on the disk), and,
        with `read_body`, what it asks now. `not_at`: the note being decided on, which may
        carry the task_id too; when another note holds it, that one is the task's."""
        record = self.by_id.get(task_id)
        if record is None:
            return None
        recorded = self.vault.root / record.where if record.where else None
        where, body = self._locate(record, read_body, not_at)
        return Known(
            task_id=record.task_id,
            title=record.title,
            name=record.name,
            body_hash=record.body_hash,
            where=where,
            status=record.status,
            body=body,
            recorded=recorded,
        )

    def _locate(
        self, record: Record, read_body: bool, not_at: Path | None
    ) -> tuple[Path | None, str | None]:
        """Where the task's note is: of the notes that hold its task_id (at the place the
        record says, or under its name in a task folder: a move the service did not see, such
        as `ai-employee retry`), one in a finished folder first (a task never leaves one but
        by a move of that very note), then the record's, then any other, then `not_at`."""
        recorded = self.vault.root / record.where if record.where else None
        places = [recorded] if recorded else []
        places += [self.vault.folder(f) / record.name for f in TASK_FOLDERS if record.name]
        if not_at is not None:
            places.append(not_at)
        holders: dict[Path, TaskNote] = {}
        for path in dict.fromkeys(places):
            try:
                note, _ = self.notes.read(path)
            except (FileNotFoundError, NotADirectoryError, NoteRefused, NoteGone):
                continue
            if note.task_id == record.task_id:
                holders[path] = note
        if not holders:
            return None, None
        others = [p for p in holders if p != not_at]
        finished = [p for p in others if self.vault.folder_of(p) in FINISHED]
        order = finished + ([recorded] if recorded in others else []) + others + [not_at]
        where = next(p for p in order if p in holders)
        note = holders[where]
        if note.status is not None:
            record.status = note.status
        if where != not_at:
            record.where = self.vault.rel(where)
        return where, note.asked if read_body else None
