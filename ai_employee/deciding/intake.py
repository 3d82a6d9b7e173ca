"""Inbox/Drop: any file dropped there becomes a `file_drop` task.

The file moves to Inbox/ (kept as it is) and a task note naming it is written into
Needs_Action, atomically, with its task_id; the main loop then looks at that note like any
other. An empty file is waited on (a placeholder, or still being written).
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from ..base import fsops
from ..notes.notefile import NoteGone, move_note
from ..notes.taskfile import new_task_id, render_value
from ..notes.vault import Folder, Vault

log = structlog.get_logger(__name__)


def take_drop(vault: Vault, path: Path, st: os.stat_result) -> Path | None:
    """Turn a dropped file into a task note; returns the note (None: nothing to take yet)."""
    if st.st_size == 0:
        return None
    try:
        kept = move_note(path, vault.folder(Folder.INBOX))
    except NoteGone:
        return None
    task_id = new_task_id()
    title = f"Dropped file {kept.name}"
    text = (
        f"---\ntitle: {render_value(title)}\ntype: file_drop\ntask_id: {task_id}\n"
        "status: new\n---\n"
        f"A file was dropped: [[Inbox/{kept.name}]] ({st.st_size:,} bytes).\n\n"
        "Say what it is and what to do with it.\n"
    )
    staged = fsops.write_temp(vault.tmp, text.encode("utf-8"))
    note = fsops.move_noreplace(
        staged, vault.folder(Folder.NEEDS_ACTION), f"Dropped {kept.stem}.md"
    )
    log.info(
        "file dropped",
        action_type="file_drop",
        target=vault.rel(note),
        task_id=task_id,
        parameters={"file": vault.rel(kept)},
        result="task created",
    )
    return note


def drop_candidates(vault: Vault) -> list[Path]:
    """The files waiting in Inbox/Drop (not hidden, not an editor's temp file), by name."""
    drop = vault.folder(Folder.DROP)
    try:
        with os.scandir(drop) as entries:
            names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []
    return [
        drop / name
        for name in names
        if not name.startswith(".") and not name.endswith(("~", ".tmp", ".swp"))
    ]
