"""A task's changes as its page shows them: the commits of its rounds and their diff, file by
file, read with git from the work dir and coloured with Pygments (which escapes: a file that
holds `<script>` is shown as text). A long file's diff is folded (its first lines, the rest in
the raw diff); a binary file is named. Reading only; nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from ...running.workrepo import SAFE_DIFF, GitError, run_git

SHA = re.compile(r"[0-9a-f]{7,64}")
"""A commit id as the note and the transcript record it (never an option or a ref name)."""

MAX_DIFF_CHARS = 4_000_000
"""A diff longer than this is shown cut (the raw diff has it all)."""

LINES_SHOWN = 400
"""A file's diff is folded after this many lines."""

_FORMATTER = HtmlFormatter(nowrap=True)


@dataclass(frozen=True)
class FileDiff:
    """One file's change."""

    path: str
    added: int | None
    deleted: int | None
    """None for both: a binary file."""
    html: Markup
    """Its diff, coloured and escaped (empty for a binary file)."""
    lines: int
    folded: bool
    """Only its first LINES_SHOWN lines are in `html`."""

    @property
    def binary(self) -> bool:
        return self.added is None


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    body: str


@dataclass(frozen=True)
class TaskDiff:
    """What a task changed from `base` to `head`, and the commits in between."""

    base: str
    head: str
    files: tuple[FileDiff, ...] = ()
    commits: tuple[Commit, ...] = ()
    cut: bool = False
    """The diff was longer than MAX_DIFF_CHARS: what is shown stops there."""

    @property
    def added(self) -> int:
        return sum(f.added or 0 for f in self.files)

    @property
    def deleted(self) -> int:
        return sum(f.deleted or 0 for f in self.files)


def is_sha(text: object) -> bool:
    return isinstance(text, str) and SHA.fullmatch(text) is not None


def read_diff(workdir: Path, base: str, head: str) -> TaskDiff:
    """The task's diff from `base` to `head` (both checked to be commit ids); GitError when
    git cannot read them."""
    if not (is_sha(base) and is_sha(head)):
        raise GitError(f"not commit ids: {base!r}, {head!r}")
    numstat = run_git(workdir, "diff", *SAFE_DIFF, "--numstat", "-z", base, head).stdout
    counts = _numstat(numstat)
    patch = run_git(
        workdir, "-c", "core.quotePath=false", "diff", *SAFE_DIFF, "--no-color", base, head
    ).stdout
    cut = len(patch) > MAX_DIFF_CHARS
    per_file = _split(patch[:MAX_DIFF_CHARS])
    files = []
    for path, (added, deleted) in counts.items():
        text = per_file.get(path, "")
        lines = text.splitlines()
        folded = len(lines) > LINES_SHOWN
        shown = "\n".join(lines[:LINES_SHOWN]) + "\n" if lines and added is not None else ""
        html = Markup(highlight(shown, DiffLexer(), _FORMATTER)) if shown else Markup("")  # noqa: S704 - Pygments escapes
        files.append(FileDiff(path, added, deleted, html, len(lines), folded))
    return TaskDiff(base, head, tuple(files), _commits(workdir, base, head), cut)


def read_commit(workdir: Path, sha: str, commits: tuple[Commit, ...]) -> TaskDiff:
    """One commit's diff (against its first parent), the task's commits beside it."""
    parent = run_git(workdir, "rev-parse", "--verify", f"{sha}^").stdout.strip()
    one = read_diff(workdir, parent, sha)
    return TaskDiff(one.base, one.head, one.files, commits, one.cut)


def raw_diff(workdir: Path, base: str, head: str) -> str:
    """The whole diff as text (the page serves it as text/plain)."""
    if not (is_sha(base) and is_sha(head)):
        raise GitError(f"not commit ids: {base!r}, {head!r}")
    return run_git(workdir, "diff", *SAFE_DIFF, "--no-color", base, head).stdout


def head_of(workdir: Path) -> str | None:
    """The work dir's HEAD (None: no repository, or no commit yet)."""
    try:
        done = run_git(workdir, "rev-parse", "-q", "--verify", "HEAD", check=False)
    except GitError:
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and is_sha(sha) else None


def _numstat(text: str) -> dict[str, tuple[int | None, int | None]]:
    counts: dict[str, tuple[int | None, int | None]] = {}
    for record in text.split("\0"):
        if record:
            added, deleted, path = record.split("\t", 2)
            counts[path] = (
                int(added) if added.isdigit() else None,
                int(deleted) if deleted.isdigit() else None,
            )
    return counts


def _split(patch: str) -> dict[str, str]:
    """A patch's text per file (keyed by its path after the change, or before a deletion)."""
    files: dict[str, str] = {}
    current: list[str] = []
    path = ""
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            if path:
                files[path] = "\n".join(current)
            current, path = [line], ""
            continue
        current.append(line)
        if (line.startswith("+++ ") and line != "+++ /dev/null") or (
            line.startswith("--- ") and line != "--- /dev/null" and not path
        ):
            path = _unquote(line[4:])[2:]
    if path:
        files[path] = "\n".join(current)
    return files


def _unquote(name: str) -> str:
    """git quotes a path with unusual characters ("a/\\303\\251.txt"): as the numstat names it."""
    if not (name.startswith('"') and name.endswith('"')):
        return name
    raw = name[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def _commits(workdir: Path, base: str, head: str) -> tuple[Commit, ...]:
    log = run_git(workdir, "log", "--reverse", "--format=%H%x1f%s%x1f%b%x1e", f"{base}..{head}")
    commits = []
    for entry in log.stdout.split("\x1e"):
        parts = entry.strip("\n").split("\x1f")
        if len(parts) == 3 and is_sha(parts[0]):
            commits.append(Commit(parts[0], parts[1], parts[2].strip()))
    return tuple(commits)
