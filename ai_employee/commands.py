"""Commands that only edit the vault, so they work with or without the service running."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from . import fsops
from .config import Config
from .errors import NoteRefused, UsageError
from .lifecycle import Priority, Status
from .taskfile import new_task_id, render_value
from .vault import Folder, Vault, check_name

log = structlog.get_logger(__name__)

_UNSAFE_FILE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|#^\[\]]+')


@dataclass(frozen=True)
class Added:
    path: Path
    task_id: str


def file_name_for(title: str) -> str:
    """A note file name from a title: readable, no path tricks, no Obsidian link characters."""
    name = " ".join(_UNSAFE_FILE_CHARS.sub(" ", title).split()).lstrip(".-").strip()
    return (name[:80].rstrip() or "Task") + ".md"


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
    actor: str,
) -> Added:
    """Write a new task note into Needs_Action atomically; never overwrite one."""
    vault.require()
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
    task_id = new_task_id()
    keys: list[tuple[str, str | None]] = [
        ("title", title.strip()),
        ("type", task_type or config.default_type),
        ("priority", priority or Priority.NORMAL.value),
        ("language", language),
        ("app", app),
        ("task_id", task_id),
        ("status", Status.NEW.value),
    ]
    front = "".join(f"{k}: {render_value(v)}\n" for k, v in keys if v)
    text = f"---\n{front}---\n{body.rstrip()}\n" if body.strip() else f"---\n{front}---\n"
    target = fsops.write_temp(vault.tmp, text.encode("utf-8"))
    try:
        path = fsops.move_noreplace(target, vault.folder(Folder.NEEDS_ACTION), file_name_for(title))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    log.info(
        "task added",
        action_type="add",
        actor=actor,
        target=str(path.relative_to(vault.root)),
        task_id=task_id,
        parameters={"type": task_type or config.default_type, "priority": priority},
        result="ok",
    )
    return Added(path, task_id)
