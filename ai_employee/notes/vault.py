"""The vault's layout, its folders, `init`, and safe resolution of paths a note asks for."""

from __future__ import annotations

import functools
import os
import re
import shlex
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from ..base import fsops
from ..base.config import CONFIG_FILE_NAME, default_config_text
from ..base.errors import NoteRefused, VaultError


class Folder(StrEnum):
    """The vault's folders, by their role in the lifecycle."""

    NEEDS_ACTION = "Needs_Action"
    """New, planned and executing tasks (drop notes here)."""
    PLANS = "Plans"
    """PLAN_<note> (<task_id>).md files, linked both ways with the note."""
    RECURRING = "Recurring"
    """Series notes (`every:`): each occurrence becomes a task note in Needs_Action."""
    PENDING_APPROVAL = "Pending_Approval"
    """Tasks waiting for a person."""
    APPROVED = "Approved"
    """A person moves a note here to approve it."""
    REJECTED = "Rejected"
    """A person moves a note here to reject it."""
    DONE = "Done"
    """Finished tasks (done, cancelled)."""
    FAILED = "Failed"
    """Tasks that failed after their retries."""
    LOGS = "Logs"
    """Daily audit logs; tasks/<task_id>.jsonl transcripts."""
    INBOX = "Inbox"
    """Files that came through Inbox/Drop."""
    DROP = "Inbox/Drop"
    """Any other file dropped here becomes a file_drop task."""
    TEMPLATES = "Templates"
    """Obsidian templates."""


TRIGGER_FOLDERS: tuple[Folder, ...] = (
    Folder.NEEDS_ACTION,
    Folder.PENDING_APPROVAL,
    Folder.APPROVED,
    Folder.REJECTED,
)
"""Folders whose notes the service acts on (Inbox/Drop is watched too, for any file)."""

TASK_FOLDERS: tuple[Folder, ...] = (*TRIGGER_FOLDERS, Folder.DONE, Folder.FAILED)
"""Folders that hold task notes."""

MACHINERY_DIR = ".ai-employee"
"""Machinery only: lock, temp files, records of live agent processes."""

_UNSAFE_FILE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|#^\[\]]+')


def file_name_for(title: str) -> str:
    """A note file name from a title: readable, no path tricks, no Obsidian link characters."""
    name = " ".join(_UNSAFE_FILE_CHARS.sub(" ", title).split()).lstrip(".-").strip()
    return (name[:80].rstrip() or "Task") + ".md"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


@dataclass(frozen=True)
class Vault:
    """A vault on disk. Paths are absolute; nothing here reads notes."""

    root: Path

    def folder(self, folder: Folder) -> Path:
        return self.root / folder.value

    @property
    def machinery(self) -> Path:
        return self.root / MACHINERY_DIR

    @property
    def tmp(self) -> Path:
        """Temp files for atomic writes: same filesystem as the notes."""
        return self.machinery / "tmp"

    @property
    def runs(self) -> Path:
        """Records of live agent processes from versions before `run_journal` (read at start)."""
        return self.machinery / "runs"

    @property
    def run_journal(self) -> Path:
        """Records of live agent processes: a start line and an end line per run."""
        return self.machinery / "runs.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.machinery / "lock"

    @property
    def dashboard(self) -> Path:
        return self.root / "Dashboard.md"

    @property
    def handbook(self) -> Path:
        return self.root / "Company_Handbook.md"

    @property
    def logs(self) -> Path:
        return self.folder(Folder.LOGS)

    @property
    def transcripts(self) -> Path:
        return self.logs / "tasks"

    def require(self) -> None:
        """Raise a clear error when the vault is not there or not initialised."""
        init = f"ai-employee init --vault {shlex.quote(str(self.root))}"  # pasted as it is
        if not self.root.is_dir():
            raise VaultError(f"vault {str(self.root)!r} does not exist; create it with `{init}`")
        missing = [f.value for f in TASK_FOLDERS if not self.folder(f).is_dir()]
        if missing:
            raise VaultError(
                f"vault {str(self.root)!r} lacks {', '.join(missing)}; run `{init}` "
                "(it never overwrites a file)"
            )

    def rel(self, path: Path) -> str:
        """A path as a person reads it in the log: inside the vault, relative to it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def folder_of(self, path: Path) -> Folder | None:
        """The task folder a note path sits in directly, if any."""
        return _folders_of(self.root).get(path.parent)

    def notes_in(self, folder: Folder) -> Iterator[Path]:
        """The markdown notes directly in a folder (not dotfiles), in name order."""
        try:
            entries = sorted(os.scandir(self.folder(folder)), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.endswith(".md") and not is_ignored_name(entry.name):
                yield Path(entry.path)

    def count_notes(self, folder: Folder) -> int:
        """How many notes a folder holds, without reading or sorting them."""
        try:
            with os.scandir(self.folder(folder)) as entries:
                return sum(
                    1 for e in entries if e.name.endswith(".md") and not is_ignored_name(e.name)
                )
        except FileNotFoundError:
            return 0

    def sweep_tmp(self) -> int:
        """Remove temp files left by a crash (only ever called under the service lock)."""
        removed = 0
        if self.tmp.is_dir():
            for entry in os.scandir(self.tmp):
                if entry.name.endswith(".tmp"):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed


def is_ignored_name(name: str) -> bool:
    """Editor and sync droppings that are never notes (vim swap/backup, JetBrains, Syncthing...)."""
    return (
        name.startswith(".")
        or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", ".crswap"))
        or name == "4913"  # vim probes write permission with this name
        or name.startswith("___jb_")
    )


def inside(path: Path, root: Path) -> bool:
    """True when `path`, symlinks resolved, is `root` or below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def _folders_of(root: Path) -> dict[Path, Folder]:
    """Each folder's path under `root` (asked for on every event: a lookup, not a walk)."""
    return {root / f.value: f for f in Folder}


@functools.lru_cache(maxsize=64)
def _resolved(root: Path) -> Path:
    """A configured root (apps_dir, an extra root) with its symlinks resolved, once."""
    return root.resolve()


def _resolve_below(base: Path, parts: tuple[str, ...]) -> Path:
    """`base` (resolved) joined with plain names, following any of them that is a symlink.

    Only the names below the base are looked at (one lstat each, until one does not exist),
    so a note's work dir costs two or three lstats, not one per folder of its whole path.
    """
    current = base
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return current.joinpath(*parts[i + 1 :])
        if stat.S_ISLNK(st.st_mode):
            return current.resolve().joinpath(*parts[i + 1 :])
    return current


def check_name(key: str, value: object) -> str:
    """A note's `app` or `language`: one plain folder name, so it cannot leave the allowed roots."""
    text = str(value).strip() if value is not None else ""
    if not _SAFE_NAME.match(text) or text in (".", ".."):
        raise NoteRefused(
            f"{key}: {value!r} is not a plain folder name (letters, digits, '.', '_', '+', '-'; "
            "no '/', no '..'); the work dir must stay inside apps_dir"
        )
    return text


WORKTREES_DIR = ".worktrees"
"""Under apps_dir: the worktrees of tasks on a person's repository (`repo:`), one per task (a
name no app or language can have)."""


def workdir_for(
    apps_dir: Path,
    allowed_roots: tuple[Path, ...],
    task_id: str,
    language: object = None,
    app: object = None,
    repo: object = None,
) -> Path:
    """apps/<language>/<app>/ (or apps/tasks/<task_id>/; a task with `repo:` its worktree,
    apps/.worktrees/<task_id>/), checked to stay inside allowed roots."""
    if repo not in (None, ""):
        parts: tuple[str, ...] = (WORKTREES_DIR, check_name("task_id", task_id))
    elif app in (None, ""):
        parts = ("tasks", check_name("task_id", task_id))
    else:
        lang = check_name("language", language) if language not in (None, "") else "misc"
        parts = (lang, check_name("app", app))
    path = apps_dir.joinpath(*parts)
    real = _resolve_below(_resolved(apps_dir), parts)
    if not any(real.is_relative_to(_resolved(root)) for root in allowed_roots):
        raise NoteRefused(f"work dir {str(path)!r} resolves outside the allowed roots")
    return path


VAULT_FOLDERS: tuple[str, ...] = (
    *(f.value for f in Folder),
    "Logs/tasks",
)


def init_vault(root: Path, apps_dir: Path | None = None) -> list[Path]:
    """Create the layout; never overwrite a file. Returns what it created."""
    created: list[Path] = []
    if root.exists() and not root.is_dir():
        raise VaultError(f"{str(root)!r} exists and is not a folder")
    for rel in (*VAULT_FOLDERS, f"{MACHINERY_DIR}/tmp", f"{MACHINERY_DIR}/runs"):  # noqa: S108
        folder = root / rel
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(folder)
    tmp = root / MACHINERY_DIR / "tmp"
    files = {
        root / CONFIG_FILE_NAME: default_config_text(),
        root / "Company_Handbook.md": _template("Company_Handbook.md"),
        root / "Templates" / "Task.md": _template("Task.md"),
        root / "Dashboard.md": "# Dashboard\n\nThe service writes this page; it has not run yet.\n",
    }
    for path, text in files.items():
        try:
            fsops.create_exclusive(path, text.encode(), tmp)
        except FileExistsError:
            continue
        created.append(path)
    if apps_dir is not None and not apps_dir.is_dir():
        apps_dir.mkdir(parents=True, exist_ok=True)
        created.append(apps_dir)
    return created


def _template(name: str) -> str:
    return resources.files("ai_employee").joinpath("templates", name).read_text("utf-8")
