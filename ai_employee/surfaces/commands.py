"""Commands that only edit the vault, so they work with or without the service running."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..base import fsops
from ..base.config import Config
from ..base.errors import NoteRefused, TaskNotFound, UsageError
from ..notes.after import references
from ..notes.lifecycle import HOME, Priority, Status, check_command
from ..notes.notefile import NoteGone, NoteStore, move_note
from ..notes.schedule import parse_every
from ..notes.taskfile import (
    TASK_ID_SHAPE,
    TaskNote,
    grant_requested,
    new_task_id,
    render_value,
    tool_rules,
    with_review_comment,
)
from ..notes.vault import TASK_FOLDERS, Folder, Vault, check_name, file_name_for
from ..running.worktree import merge_accepted

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Added:
    path: Path
    task_id: str | None
    """None for a series (each of its occurrences is a task of its own)."""


def add_task(
    vault: Vault,
    config: Config,
    title: str,
    *,
    task_type: str | None = None,
    priority: str | None = None,
    body: str = "",
    app: str | None = None,
    language: str | None = None,
    after: Sequence[str] = (),
    every: str | None = None,
    actor: str,
) -> Added:
    """Write a new task note into Needs_Action atomically; never overwrite one. `after`: the
    tasks it runs after (`after:`, one or a list). `every`: a series note in Recurring/
    instead, whose every occurrence becomes a task (it has no task_id of its own)."""
    vault.require()
    _check_new_task(title, priority, app, language)
    try:
        refs = references(list(after))
    except NoteRefused as err:
        raise UsageError(f"add: --after: {err.reason}") from None
    if every is not None:
        try:
            parse_every(every)
        except NoteRefused as err:
            raise UsageError(f"add: --every: {err.reason}") from None
    task_id = None if every is not None else new_task_id()
    keys: list[tuple[str, object]] = [
        ("title", title.strip()),
        ("type", task_type or config.default_type),
        ("priority", priority or Priority.NORMAL.value),
        ("language", language),
        ("app", app),
        ("after", refs[0] if len(refs) == 1 else list(refs)),
        ("every", every),
        ("task_id", task_id),
        ("status", None if every is not None else Status.NEW.value),
    ]
    folder = Folder.RECURRING if every is not None else Folder.NEEDS_ACTION
    front = "".join(f"{k}: {render_value(v)}\n" for k, v in keys if v)
    text = f"---\n{front}---\n{body.rstrip()}\n" if body.strip() else f"---\n{front}---\n"
    target = fsops.write_temp(vault.tmp, text.encode("utf-8"))
    try:
        fsops.ensure_dir(vault.folder(folder))  # Recurring/ of a vault made before it
        path = fsops.move_noreplace(target, vault.folder(folder), file_name_for(title))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    log.info(
        "series added" if every is not None else "task added",
        action_type="add",
        actor=actor,
        target=vault.rel(path),
        task_id=task_id,
        parameters={"type": task_type or config.default_type, "priority": priority, "every": every},
        result="ok",
    )
    return Added(path, task_id)


def _check_new_task(
    title: str, priority: str | None, app: str | None, language: str | None
) -> None:
    """`add`'s arguments, or a UsageError naming the one that cannot be."""
    if not title.strip():
        raise UsageError("add: the title is empty")
    if priority is not None and priority not in {p.value for p in Priority}:
        raise UsageError(f"add: priority {priority!r} is not one of high, normal, low")
    try:
        for key, value in (("app", app), ("language", language)):
            if value:
                check_name(key, value)
    except NoteRefused as err:
        raise UsageError(f"add: {err.reason}") from err


@dataclass(frozen=True)
class Found:
    path: Path
    note: TaskNote


def find_task(vault: Vault, config: Config, ref: str) -> Found:
    """A note by task_id, file name (with or without .md) or path, in the task folders."""
    vault.require()
    candidate = Path(ref).expanduser()
    for path in (candidate, vault.root / candidate):
        if path.suffix == ".md" and path.is_file():
            if vault.folder_of(path.absolute()) not in TASK_FOLDERS:
                raise UsageError(f"{ref!r} is not in one of the vault's task folders")
            return _read(vault, config, path.absolute())
    name = ref if ref.endswith(".md") else ref + ".md"
    matches: list[Found] = []
    for folder in TASK_FOLDERS:
        for path in vault.notes_in(folder):
            if path.name == name:
                matches.append(_read(vault, config, path))
                continue
            try:
                note, _ = _store(vault, config).read(path)
            except (NoteRefused, FileNotFoundError):
                continue
            if note.task_id == ref:
                matches.append(Found(path, note))
    if not matches:
        raise TaskNotFound(f"no task {ref!r} (by task_id, file name or path) in {vault.root}")
    if len(matches) > 1:
        where = ", ".join(str(m.path.relative_to(vault.root)) for m in matches)
        raise UsageError(f"{ref!r} matches {len(matches)} notes ({where}); give the path")
    return matches[0]


def task_id_of(vault: Vault, config: Config, ref: str) -> str:
    """The task_id a person means by `ref` (`logs --task`): the task_id of the note a file name
    (with or without .md) or path names, else a task_id as given (a task whose note is gone
    still has its log). A word is looked up by name only, never by reading every note."""
    if not ref.endswith(".md") and "/" not in ref and TASK_ID_SHAPE.fullmatch(ref):
        named = [vault.folder(f) / f"{ref}.md" for f in TASK_FOLDERS]
        if not any(path.is_file() for path in named):
            return ref
    found = find_task(vault, config, ref)
    if not found.note.task_id:
        raise UsageError(f"{ref!r} has no task_id yet: the service gives it one when it sees it")
    return found.note.task_id


def _store(vault: Vault, config: Config) -> NoteStore:
    return NoteStore(vault.root, vault.tmp, config.max_note_bytes)


def _read(vault: Vault, config: Config, path: Path) -> Found:
    note, _ = _store(vault, config).read(path)
    return Found(path, note)


@dataclass(frozen=True)
class Edited:
    """What a vault-editing command did."""

    path: Path
    task_id: str
    old: Status | None
    new: Status


def approve(vault: Vault, config: Config, ref: str, *, actor: str, now: datetime) -> Edited:
    """A person's approval, recorded; back to Needs_Action (`approved` until it has a plan).
    Tools the agent asked for are granted to this task (its resumed session may use them)."""
    found = find_task(vault, config, ref)
    new = Status.PLANNED if found.note.meta.get("plan") else Status.APPROVED
    changes = {"approved_at": now, "approved_by": actor, "next_attempt_at": None}
    granted = grant_requested(found.note.meta)
    logged = {"granted_tools": tool_rules(found.note.meta, "requested_tools")} if granted else {}
    return _edit(
        vault,
        config,
        "approve",
        found,
        new,
        {**changes, **granted},
        Folder.NEEDS_ACTION,
        actor,
        **logged,
    )


def accept(vault: Vault, config: Config, ref: str, *, actor: str, now: datetime) -> Edited:
    """A person accepted the work under review (`in_review`): done, to Done/; a task on a
    person's repository has its branch left to merge or fast-forwarded into (`merged`)."""
    found = find_task(vault, config, ref)
    changes: dict[str, Any] = {}
    if found.note.on_repo and found.note.status is Status.IN_REVIEW:
        task_type = found.note.task_type or config.default_type
        changes["merged"] = merge_accepted(config, found.note, task_type)
    return _edit(vault, config, "accept", found, Status.DONE, changes, Folder.DONE, actor)


def request_changes(
    vault: Vault,
    config: Config,
    ref: str,
    comment: str,
    *,
    actor: str,
    now: datetime,
    at: str = "",
) -> Edited:
    """A person's comments on the work under review (`at`: the file, and line, they are
    about), appended under the note's `## Review`, and the note back to Needs_Action: the
    service runs the task again, its agent told the comments, and it comes back for review."""
    if not comment.strip():
        raise UsageError("request-changes: the comment is empty (-m TEXT)")
    found = find_task(vault, config, ref)
    task_id = found.note.task_id or ""
    check_command("request-changes", found.note.status, Status.PLANNED, task_id)
    text = f"In `{at.strip()}`: {comment.strip()}" if at.strip() else comment.strip()
    _store(vault, config).rewrite(found.path, lambda current: with_review_comment(current, text))
    path = found.path
    if path.parent != vault.folder(Folder.NEEDS_ACTION):
        try:
            path = move_note(path, vault.folder(Folder.NEEDS_ACTION))
        except NoteGone:
            path = _moved_meanwhile(vault, config, task_id, "request-changes", found.path)
    log.info(
        "changes requested",
        action_type="review",
        actor=actor,
        target=vault.rel(path),
        task_id=task_id,
        parameters={"at": at or None, "chars": len(text)},
        result="back to Needs_Action: the agent runs again with the comments",
    )
    return Edited(path, task_id, found.note.status, Status.PLANNED)


def reject(vault: Vault, config: Config, ref: str, *, actor: str, now: datetime) -> Edited:
    found = find_task(vault, config, ref)
    return _edit(vault, config, "reject", found, Status.REJECTED, {}, Folder.REJECTED, actor)


def retry(vault: Vault, config: Config, ref: str, *, actor: str, now: datetime) -> Edited:
    """A failed or cancelled note back to Needs_Action as planned, attempts counted afresh."""
    found = find_task(vault, config, ref)
    cleared: dict[str, Any] = dict.fromkeys(
        ("next_attempt_at", "error", "exit_code", "session_id", "started_at", "completed_at")
    )
    cleared["attempts"] = 0
    return _edit(
        vault,
        config,
        "retry",
        found,
        Status.PLANNED,
        cleared,
        Folder.NEEDS_ACTION,
        actor,
        previous_error=found.note.meta.get("error"),
    )


def cancel(vault: Vault, config: Config, ref: str, *, actor: str, now: datetime) -> Edited:
    """Cancelled; a running task is stopped by the service, which then moves it to Done/."""
    found = find_task(vault, config, ref)
    running = found.note.status is Status.EXECUTING
    target = None if running else HOME[Status.CANCELLED]
    changes = {"completed_at": None if running else now, "next_attempt_at": None}
    return _edit(vault, config, "cancel", found, Status.CANCELLED, changes, target, actor)


def _moved_meanwhile(vault: Vault, config: Config, task_id: str, command: str, was: Path) -> Path:
    """Where the note went after our edit, before our move (the service's own move of it)."""
    try:
        return find_task(vault, config, task_id).path
    except (TaskNotFound, UsageError, NoteRefused) as err:
        raise UsageError(
            f"{command}: the note was edited, then moved or deleted before it could be moved "
            f"from {vault.rel(was)}; `ai-employee status` shows where {task_id} is"
        ) from err


def _edit(
    vault: Vault,
    config: Config,
    command: str,
    found: Found,
    new: Status,
    changes: dict[str, Any],
    target: Folder | None,
    actor: str,
    **logged: Any,
) -> Edited:
    note = found.note
    task_id = note.task_id or new_task_id()
    check_command(command, note.status, new, task_id)
    _store(vault, config).update(found.path, {**changes, "status": new, "task_id": task_id})
    path = found.path
    if target is not None and path.parent != vault.folder(target):
        try:
            path = move_note(path, vault.folder(target))
        except NoteGone:  # a running service took the new status first and moved it itself
            path = _moved_meanwhile(vault, config, task_id, command, found.path)
    log.info(
        f"task {command}",
        action_type=command,
        actor=actor,
        target=vault.rel(path),
        task_id=task_id,
        parameters={"from": note.status.value if note.status else None, "to": new.value},
        approval_status={"approve": "approved", "accept": "accepted"}.get(command),
        approved_by=actor if command in ("approve", "accept") else None,
        result="ok",
        **logged,
    )
    return Edited(path, task_id, note.status, new)
