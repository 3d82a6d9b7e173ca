"""What the vault records of every task, read from its plans: the service's memory of tasks.

Each plan (`Plans/PLAN_<note> (<task_id>).md`) heads its text with its task's task_id, note
name, where its note is now (`where`, updated when the service moves the note), the hash of
what was asked, its status and title. `TaskRecords` is those heads, read once at start (only
the head of each plan) and kept up to date as the service plans, moves notes and folds edits
in; a person's moves it learns when it finds the note. It finds a task by task_id, by note name
and by body hash, and checks on the disk where its note is. It is a cache of the vault, never
the only copy: after a restart, or on another machine, the plans say the same. Owned by the
main loop (its one thread: no locks).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from ..base import fsops
from ..base.errors import NoteRefused
from .identity import Known
from .lifecycle import Status
from .notefile import NoteGone, NoteStore
from .taskfile import TASK_ID_SHAPE, TaskNote
from .vault import TASK_FOLDERS, Folder, Vault

FINISHED = (Folder.DONE, Folder.FAILED, Folder.REJECTED)

log = structlog.get_logger(__name__)

MAX_NUMBERED = 100
"""Numbered names (`x (2).md` ...) tried at most in each finished folder."""
MAX_NAMED = 50
"""Tasks of one name (or one text) a new note is compared with at most, the newest first."""

HEAD_BYTES = 1024
"""How much of a plan is read at start: its head holds the record (a long title, more)."""
MAX_HEAD_BYTES = 64 * 1024
"""A head that does not end within this is not one of ours."""

_FIELD = re.compile(r"^(task_id|title|note|body_sha256|where|status):[ \t]*(.*?)[ \t]*$", re.M)


def plan_head(
    task_id: str, title: str, note_name: str, asked_hash: str, where: str, status: Status
) -> list[str]:
    """The record a plan heads its text with (`read_record` reads it back): names as JSON
    strings, which YAML reads as double-quoted scalars, so every name comes back exactly; the
    title, of any length, last."""
    return [
        f"task_id: {task_id}",
        f"note: {json.dumps(note_name, ensure_ascii=False)}",
        f"where: {json.dumps(where, ensure_ascii=False)}",
        f"body_sha256: {asked_hash}",
        f"status: {status.value}",
        f"title: {json.dumps(title, ensure_ascii=False)}",
    ]


_HEAD_FIELD = re.compile(r"^(where|status): .*$", re.MULTILINE)


def update_plan_head(plan_path: Path, tmp_dir: Path, where: str, status: Status | None) -> bool:
    """Its note moved (or its status changed): the plan's `where` and `status` follow. Atomic,
    not fsynced (records.py finds a note whose plan missed this). False when there is no such
    plan."""
    try:
        text = fsops.read_plain_text(plan_path)
    except (OSError, UnicodeDecodeError):  # missing, or not a plan file (a FIFO in its place)
        return False
    head, sep, rest = text.partition("\n---\n")
    values = {"where": json.dumps(where, ensure_ascii=False)}
    if status is not None:
        values["status"] = status.value
    new_head = _HEAD_FIELD.sub(
        lambda m: f"{m[1]}: {values.get(m[1], m[0].split(': ', 1)[1])}", head
    )
    if new_head != head:
        fsops.write_atomic(
            plan_path, (new_head + sep + rest).encode("utf-8"), tmp_dir, durable=False
        )
    return True


@dataclass(slots=True)
class Record:
    """One task as its plan records it (slots and plain strings: a vault may hold 100,000)."""

    task_id: str
    plan: str
    """The plan's file name in Plans/."""
    title: str
    name: str
    body_hash: str
    where: str
    """Its note's place relative to the vault (`Done/x.md`), as last recorded."""
    status: Status | None


def _unquote(value: str) -> str:
    """A head field as `plan_head` writes it: a JSON string (a YAML double-quoted
    scalar), or a plain word."""
    if not value.startswith('"'):
        return value
    if "\\" not in value and value.endswith('"') and value.count('"') == 2:
        return value[1:-1]  # no escapes: the common case, without json's cost
    try:
        loaded = json.loads(value)
    except ValueError:
        return value
    return loaded if isinstance(loaded, str) else value


def _named_for(record: Record) -> bool:
    """The plan file is named for its own task (`PLAN_<note> (<task_id>).md`)."""
    return record.plan.endswith(f" ({record.task_id}).md")


def read_record(plan: Path) -> Record | None:
    """The record at the head of a plan; None for a file that is not one of our plans."""
    return _read_record(str(plan), plan.name, None)


def _read_record(path: str, name: str, dir_fd: int | None) -> Record | None:
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO in Plans/ must not hang the start
            return None
        data = os.read(fd, HEAD_BYTES)
        if data.startswith(b"---"):
            while b"\n---" not in data and len(data) < MAX_HEAD_BYTES:
                more = os.read(fd, HEAD_BYTES)
                if not more:
                    break
                data += more
    except OSError:
        return None
    finally:
        os.close(fd)
    head = data.decode("utf-8", errors="replace")
    if not head.startswith("---") or "\n---" not in head:
        return None
    fields = {key: _unquote(value) for key, value in _FIELD.findall(head.split("\n---", 1)[0])}
    task_id = fields.get("task_id", "")
    if not TASK_ID_SHAPE.fullmatch(task_id):
        return None
    status = fields.get("status")
    return Record(
        task_id=task_id,
        plan=name,
        title=fields.get("title", ""),
        name=fields.get("note", ""),
        body_hash=fields.get("body_sha256", ""),
        where=fields.get("where", ""),
        status=_STATUSES.get(status) if status else None,
    )


_STATUSES = {s.value: s for s in Status}


def _drop(index: dict[str, list[str]], key: str, task_id: str) -> None:
    ids = index.get(key)
    if ids is not None and task_id in ids:
        ids.remove(task_id)
        if not ids:
            del index[key]


class TaskRecords:
    """The records of every task in a vault, by task_id, note name and body hash."""

    def __init__(self, vault: Vault, notes: NoteStore) -> None:
        self.vault = vault
        self.notes = notes
        self.by_id: dict[str, Record] = {}
        # Task ids oldest first (lists: small, and most names have one): newest searched first.
        self._by_name: dict[str, list[str]] = {}
        self._by_hash: dict[str, list[str]] = {}
        self.listeners: list[Callable[[Record], None]] = []
        """Told of each record the service adds or changes (the waiting tasks' index)."""

    def load(self) -> int:
        """Read every plan's head (at start), oldest first; returns how many records there
        are. Two plans that claim one task (a person's copy of a plan, a sync tool's conflict
        copy in Plans/): the one named for it (`... (<task_id>).md`) wins, then the newer."""
        plans = self.vault.folder(Folder.PLANS)
        try:
            dir_fd = os.open(plans, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            with os.scandir(dir_fd) as entries:
                found = [
                    (e.stat(follow_symlinks=False).st_mtime_ns, e.name)
                    for e in entries
                    if e.name.endswith(".md") and e.is_file(follow_symlinks=False)
                ]
            for _, name in sorted(found):
                record = _read_record(name, name, dir_fd)
                if record is None:
                    continue
                old = self.by_id.get(record.task_id)
                if old is None or _named_for(record) or not _named_for(old):
                    self.add(record)
        finally:
            os.close(dir_fd)
        return len(self.by_id)

    def add(self, record: Record) -> None:
        """Record a task (planned, or planned again), as the newest of its name."""
        old = self.by_id.pop(record.task_id, None)
        if old is not None:
            _drop(self._by_name, old.name, old.task_id)
            _drop(self._by_hash, old.body_hash, old.task_id)
        self.by_id[record.task_id] = record
        self._by_name.setdefault(record.name, []).append(record.task_id)
        self._by_hash.setdefault(record.body_hash, []).append(record.task_id)
        self._changed(record)

    def _changed(self, record: Record) -> None:
        for listener in self.listeners:
            listener(record)

    def asked_now(self, task_id: str, title: str, body_hash: str) -> None:
        """A task's note now asks for this text (an edit folded into it): it is what the
        task is compared with from now on (its plan is made again for it)."""
        record = self.by_id.get(task_id)
        if record is not None and (record.body_hash, record.title) != (body_hash, title):
            self.add(replace(record, title=title, body_hash=body_hash))

    def plan_of(self, task_id: str) -> Path | None:
        record = self.by_id.get(task_id)
        return self.vault.folder(Folder.PLANS) / record.plan if record is not None else None

    def moved(
        self, task_id: str, where: Path, status: Status | None, *, head_written: bool = False
    ) -> None:
        """The service moved a task's note (or changed its status): the record follows, in
        memory and in the plan's head (what a restart or another machine will read), unless
        `head_written` (a run's thread wrote it at the run's end)."""
        record = self.by_id.get(task_id)
        if record is None:
            return
        record.where = self.vault.rel(where)
        if status is not None:
            record.status = status
        self._changed(record)
        if head_written:
            return
        # Not fsynced: a head that missed a move (a crash just after it) is corrected when the
        # note is found, under its name or, in Done/ and Failed/, a numbered one (`x (2).md`).
        try:
            update_plan_head(
                self.vault.folder(Folder.PLANS) / record.plan, self.vault.tmp, record.where, status
            )
        except OSError as err:  # the plan is ours and rebuilt; the move stands
            log.warning(
                "plan not updated",
                action_type="plan",
                target=f"{Folder.PLANS.value}/{record.plan}",
                task_id=task_id,
                error=f"{type(err).__name__}: {err}",
            )

    def finished_at(self, task_id: str) -> Path | None:
        """Where the record has the task's note, when that is Done/, Failed/ or Rejected/."""
        record = self.by_id.get(task_id)
        if record is None or not record.where:
            return None
        where = self.vault.root / record.where
        return where if self.vault.folder_of(where) in FINISHED else None

    def _numbered_finished(self, record: Record) -> dict[Path, TaskNote]:
        """The task's note under a numbered name in Done/ or Failed/ (`x (2).md`: the name a
        run's end took beside another `x.md`), when the record still says it is active: the
        service stopped between the move and the record's update. The numbers in turn, while
        such files exist."""
        stem, dot, suffix = record.name.rpartition(".")
        if not dot or not stem:
            return {}
        for folder in (Folder.DONE, Folder.FAILED):
            for n in range(2, MAX_NUMBERED + 2):
                path = self.vault.folder(folder) / f"{stem} ({n}).{suffix}"
                try:
                    note, _ = self.notes.read(path)
                except (FileNotFoundError, NotADirectoryError):
                    break
                except (NoteRefused, NoteGone):
                    continue
                if note.task_id == record.task_id:
                    return {path: note}
        return {}

    def named(self, *names: str | None) -> list[str]:
        """The tasks whose notes had one of these names, the newest MAX_NAMED of each name (a
        common name, `Untitled.md`, may have hundreds: the ones a copy comes back from are
        recent, and each candidate costs a read)."""
        found: list[str] = []
        for name in names:
            if name:
                found += self._by_name.get(name, [])[: -MAX_NAMED - 1 : -1]
        return found

    def with_hash(self, body_hash: str) -> list[str]:
        return self._by_hash.get(body_hash, [])[: -MAX_NAMED - 1 : -1]

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
        if not holders and (recorded is None or self.vault.folder_of(recorded) not in FINISHED):
            holders = self._numbered_finished(record)
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
