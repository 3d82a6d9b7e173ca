"""A task on a person's repository (`repo:`): a git worktree of its own on branch
`ai-employee/<task_id>`, kept in `<apps_dir>/.worktrees/<task_id>/`, outside the person's
checkout. Their working tree, index, HEAD, stash, other branches and other worktrees are never
touched: the worktree starts from a commit (`base:`, else their HEAD), and what is written in
their repository is the task's branch (`git update-ref`, only where none exists: atomic, so a
branch of that name that is not this task's is an error, nothing made), the task's worktree's
own record (`git worktree add`, `lock`, `remove` of that one path; never `prune`), and the
objects of its commits. The branch's reflog says which task made it, so an attempt a crash cut
short finds the branch it made.

A worktree is made again for each attempt at the same path (claude resumes a session by its
folder) and removed when the attempt ends, once everything in it is committed (files git
ignores go with it); the branch stays. A worktree a crash left is reused (what the agent wrote
in it is committed by the next attempt); one a crash left half made (git's `locked
initializing`) or half removed (our `locked removing`) is removed and made again.

`merge_accepted` is what an accept does to the branch: nothing (`merge = "branch"`), or with
`ff` the base branch moved to the task's head when that is a fast-forward, never in a checkout
with local changes (there, `git merge --ff-only` as the person's own git would run it).

Threads: a TaskWorktree lives in its run's thread (executor.RunThread); `merge_accepted` runs
where a person accepts (the main loop's ACCEPT step, or the `accept` command). Other runs, the
person and the page may use the same repository at the same time: everything here touches only
this task's branch and worktree, or reads.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..base.config import Config
from ..notes.taskfile import TaskNote
from .workrepo import GitError, run_git

BRANCH_PREFIX = "ai-employee/"

REMOVING = "ai-employee: removing"
"""The lock reason of a worktree being removed (one found locked so was half removed)."""


def branch_of(task_id: str) -> str:
    return f"{BRANCH_PREFIX}{task_id}"


def person_repo(value: object, allowed_roots: tuple[Path, ...]) -> Path:
    """The repository a note's `repo:` names, checked: an absolute path (or `~/...`), inside
    the allowed roots once its symlinks are resolved, the top of a git checkout. GitError
    (permanent: the note must change) saying which and what to do."""
    if not isinstance(value, str) or not value.strip():
        raise GitError(f"repo must be a path to a git repository, not {value!r}", permanent=True)
    try:
        path = Path(value.strip()).expanduser()
        real = path.resolve()
    except (RuntimeError, OSError, ValueError) as err:  # ~nobody/, a loop, a NUL
        message = f"repo {value!r} is not a path this machine has: {err}"
        raise GitError(message, permanent=True) from err
    if not path.is_absolute():
        raise GitError(
            f"repo {value!r} is not an absolute path: write it from / (or ~/)", permanent=True
        )
    if not any(real.is_relative_to(root.resolve()) for root in allowed_roots):
        roots = ", ".join(str(r) for r in allowed_roots)
        raise GitError(
            f"repo {str(path)!r} is outside the allowed roots ({roots}): add its folder to "
            "extra_roots in .ai-employee.toml",
            permanent=True,
        )
    if not real.is_dir():
        raise GitError(f"repo {str(path)!r} is not a folder", permanent=True)
    done = run_git(real, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise GitError(
            f"repo {str(path)!r} is not a git repository (`git -C {real} status` says why)",
            permanent=True,
        )
    top = Path(done.stdout.strip()).resolve()
    if top != real:
        raise GitError(
            f"repo {str(path)!r} is inside the repository {str(top)!r}, not its top: name that",
            permanent=True,
        )
    return real


@dataclass(frozen=True)
class Opened:
    """A worktree ready for an attempt."""

    repo: Path
    path: Path
    branch: str
    base: str
    """The commit the branch started from (the task's base on its first attempt)."""
    base_branch: str | None
    """The branch `base:` or the person's HEAD named when the branch was made (None: a
    detached HEAD or a commit); what `merge = "ff"` moves."""
    reused: bool
    """A worktree a crash left was found and kept (its leftovers are committed next)."""


class TaskWorktree:
    """One task's worktree of a person's repository (see the module docstring). One thread."""

    def __init__(
        self,
        repo: object,
        allowed_roots: tuple[Path, ...],
        path: Path,
        task_id: str,
        base_name: object,
        recorded: dict[str, str | None],
    ) -> None:
        self.asked_repo = repo
        """The note's `repo:`, checked by `open` (person_repo)."""
        self.allowed_roots = allowed_roots
        self.repo = Path()
        self.path = path
        self.task_id = task_id
        self.branch = branch_of(task_id)
        self.base_name = base_name
        """The note's `base:` (None: the person's HEAD)."""
        self.recorded = recorded
        """What the note records of earlier attempts: `branch`, `base_branch`, `head_commit`."""

    def open(self) -> Opened:
        """Make (or find) the worktree for an attempt. GitError, nothing made, when the
        repository is not one the task may use, the base does not exist, the branch is
        another's or checked out elsewhere, or the worktree's place holds something else."""
        try:
            return self._open()
        except OSError as err:  # mkdir, rmdir, a full disk
            raise GitError(f"cannot make the worktree {self.path}: {err}") from err

    def _open(self) -> Opened:
        self.repo = person_repo(self.asked_repo, self.allowed_roots)
        recorded = self.recorded
        if self.path.resolve().is_relative_to(self.repo):
            raise GitError(
                f"the worktree {self.path} would be inside the repository's checkout "
                f"{self.repo}: set apps_dir to a folder outside it",
                permanent=True,
            )
        ref = f"refs/heads/{self.branch}"
        tip = self._commit_of(ref)
        made = self._made_from(ref) if tip is not None else None
        if tip is not None and made is None and recorded.get("branch") != self.branch:
            raise GitError(
                f"the branch {self.branch} already exists in {self.repo} and is not this "
                f"task's: rename it (git branch -m {self.branch} another-name), then retry",
                permanent=True,
            )
        elsewhere = _checked_out(self.repo, ref)
        if elsewhere is not None and elsewhere.resolve() != self.path.resolve():
            raise GitError(
                f"the branch {self.branch} is checked out at {elsewhere}: check out another "
                "branch there, then retry",
                permanent=True,
            )
        entry = self._place()
        if tip is None:
            base, base_branch = self._start(self.base_name, recorded)
            began = f"ai-employee: task {self.task_id} begins at {base}"
            if base_branch:
                began += f" of {base_branch}"
            self._git("update-ref", "--create-reflog", "-m", began, ref, base, "")
        elif made is not None:
            base, base_branch = made
        else:
            base, base_branch = tip, recorded.get("base_branch")
        reused = self._ready(entry)
        if not reused:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            force = ["--force"] if entry is not None else []  # our own stale record
            self._git("worktree", "add", "-q", *force, str(self.path), self.branch)
        return Opened(self.repo, self.path, self.branch, base, base_branch, reused)

    def close(self) -> str | None:
        """Remove the worktree once its attempt is over and everything in it is committed;
        the branch stays. None when removed (or not there); otherwise why it is kept (files
        not committed: the next attempt commits them, or a person looks). Never raises."""
        try:
            if not self.path.is_dir() or self.path.is_symlink():
                return None
            left = run_git(self.path, "status", "--porcelain", "--untracked-files=all").stdout
            if left.strip():
                names = ", ".join(line[3:] for line in left.splitlines()[:5])
                return f"the worktree {self.path} is kept: not committed: {names}"
            self._git("worktree", "lock", "--reason", REMOVING, str(self.path), check=False)
            done = self._git(
                "worktree", "remove", "--force", "--force", str(self.path), check=False
            )
            if done.returncode == 0:
                return None
            self._git("worktree", "unlock", str(self.path), check=False)
            why = (done.stderr.strip().splitlines() or ["no message"])[-1]
            return f"the worktree {self.path} is kept: {why}"
        except (GitError, OSError) as err:
            return f"the worktree {self.path} is kept: {err}"

    # --- the branch -------------------------------------------------------------------------

    def _start(self, base_name: object, recorded: dict[str, str | None]) -> tuple[str, str | None]:
        """Where a new branch starts: the note's head_commit when the branch was ours and a
        person deleted it; else `base:`; else the person's HEAD."""
        head = recorded.get("head_commit")
        if recorded.get("branch") == self.branch and head and self._commit_of(head):
            return head, recorded.get("base_branch")
        if base_name not in (None, ""):
            name = str(base_name).strip()
            if name.startswith("-"):
                raise GitError(f"base {name!r} is not a branch or a commit", permanent=True)
            on_branch = self._commit_of(f"refs/heads/{name}")  # a branch before a tag
            sha = on_branch or self._commit_of(name)
            if sha is None:
                raise GitError(
                    f"base {name!r} is not a branch or a commit of {self.repo} "
                    "(`git -C REPO branch` lists them)",
                    permanent=True,
                )
            return sha, name if on_branch else None
        sha = self._commit_of("HEAD")
        if sha is None:
            raise GitError(f"the repository {self.repo} has no commit yet", permanent=True)
        symbolic = self._git("symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
        return sha, symbolic.removeprefix("refs/heads/") if symbolic.startswith("refs/") else None

    def _made_from(self, ref: str) -> tuple[str, str | None] | None:
        """The branch's first reflog entry, when this task made it (`ai-employee: task <id>
        begins at <sha> [of <branch>]`): the commit and the branch it began at. None: not
        made by this task (or its reflog is gone: then only the note can say it is ours)."""
        log = self._git("reflog", "show", "--format=%gs", ref, "--", check=False).stdout
        entries = log.strip().splitlines()
        prefix = f"ai-employee: task {self.task_id} begins at "
        if not entries or not entries[-1].startswith(prefix):
            return None
        sha, _, base_branch = entries[-1].removeprefix(prefix).partition(" of ")
        return sha, base_branch or None

    # --- the worktree's place ---------------------------------------------------------------

    def _place(self) -> dict[str, str] | None:
        """git's record of a worktree at our path, if any; GitError (nothing touched) when
        the place holds something that is not ours."""
        entry = self._listed().get(self.path.resolve())
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise GitError(f"{self.path} is not a folder: move it away, then retry", permanent=True)
        if entry is None and self.path.exists() and any(self.path.iterdir()):
            raise GitError(
                f"{self.path} holds files and is not a worktree of {self.repo}: move it "
                "away, then retry",
                permanent=True,
            )
        return entry

    def _ready(self, entry: dict[str, str] | None) -> bool:
        """True when the worktree a crash left is there to reuse; False when the place is free
        for a new one (a half-made or half-removed one removed first)."""
        if entry is None:
            if self.path.exists():
                self.path.rmdir()  # empty (checked)
            return False
        locked = entry.get("locked", "")
        if locked.startswith(("initializing", REMOVING)):  # killed making or removing it
            self._git("worktree", "remove", "--force", "--force", str(self.path), check=False)
            if self.path.is_dir() and not self.path.is_symlink():
                shutil.rmtree(self.path)
            return False
        if not self.path.exists():
            return False  # its record is stale: `add --force` makes it again
        if entry.get("branch") != f"refs/heads/{self.branch}":
            raise GitError(
                f"the worktree {self.path} is not on {self.branch} "
                f"({entry.get('branch') or 'detached'}): the agent should not switch branches; "
                f"check it out again there, then retry",
                permanent=True,
            )
        return True

    def _listed(self) -> dict[Path, dict[str, str]]:
        """`git worktree list --porcelain -z`: each worktree's path and its attributes."""
        return {path: attrs for path, attrs in _worktrees(self.repo)}

    # --- git --------------------------------------------------------------------------------

    def _commit_of(self, rev: str) -> str | None:
        done = self._git(
            "rev-parse", "-q", "--verify", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        sha = done.stdout.strip()
        return sha if done.returncode == 0 and sha else None

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_git(self.repo, *args, check=check)


def merge_accepted(config: Config, note: TaskNote, task_type: str) -> str:
    """What becomes of an accepted repo task's branch, in words (the note's `merged`): left
    to merge (`merge = "branch"`), or its base branch fast-forwarded to it (`ff`). Never
    raises: what git could not do is said."""
    meta = note.meta
    branch, head = str(meta.get("branch") or ""), str(meta.get("head_commit") or "")
    base_branch = str(meta.get("base_branch") or "") or None
    if not branch or not head:
        return "nothing to merge: the task recorded no branch"
    try:
        repo = person_repo(meta.get("repo"), config.allowed_roots)
        if config.merge_for(task_type) == "ff":
            return fast_forward(repo, base_branch, branch, head)
    except GitError as err:
        return f"not merged: {err}"
    into = f" into {base_branch}" if base_branch else ""
    return f"ready to merge{into}: git -C {shlex.quote(str(repo))} merge {branch}"


def fast_forward(repo: Path, base_branch: str | None, branch: str, head: str) -> str:
    """`merge = "ff"` after an accept: `base_branch` moved to `head` when that is a
    fast-forward and where it is checked out has no local changes; what was done (or why
    not), in words. GitError when git cannot even be asked."""
    merge_by_hand = f"merge it yourself: git merge --ff-only {branch}"
    if not base_branch:
        return f"not merged: the task began from a commit, not a branch; {merge_by_hand}"
    ref = f"refs/heads/{base_branch}"
    old = run_git(repo, "rev-parse", "-q", "--verify", ref, check=False).stdout.strip()
    if not old:
        return f"not merged: {base_branch} is gone from {repo}"
    if old == head:
        return f"{base_branch} is already at {head[:12]}"
    ahead = run_git(repo, "merge-base", "--is-ancestor", old, head, check=False)
    if ahead.returncode != 0:
        return f"not merged: {base_branch} moved on since the task began; {merge_by_hand}"
    checkout = _checked_out(repo, ref)
    if checkout is None:  # the old value checked: a branch moved meanwhile is not overwritten
        run_git(repo, "update-ref", "-m", f"ai-employee: fast-forward to {branch}", ref, head, old)
        return f"fast-forwarded {base_branch} to {head[:12]}"
    dirty = run_git(  # (no optional locks: the person's index is not refreshed)
        checkout, "--no-optional-locks", "status", "--porcelain", "--untracked-files=normal"
    ).stdout
    if dirty.strip():
        return (
            f"not merged: {base_branch} is checked out at {checkout} with local changes; "
            f"there, {merge_by_hand}"
        )
    still = run_git(checkout, "symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
    if still != ref:  # the person switched branches a moment ago
        return f"not merged: {checkout} is no longer on {base_branch}; {merge_by_hand}"
    merged = run_git(checkout, "merge", "-q", "--ff-only", head, check=False, own_config=False)
    if merged.returncode != 0:
        why = (merged.stderr.strip().splitlines() or ["no message"])[-1]
        return f"not merged: {why}; {merge_by_hand}"
    return f"fast-forwarded {base_branch} (checked out at {checkout}) to {head[:12]}"


def _worktrees(repo: Path) -> list[tuple[Path, dict[str, str]]]:
    """`git worktree list --porcelain -z`: each worktree's path (resolved) and attributes
    (`HEAD`, `branch`, `locked` with its reason, `prunable`, `detached`, `bare`)."""
    text = run_git(repo, "worktree", "list", "--porcelain", "-z").stdout
    found = []
    for block in text.split("\0\0"):
        attrs = {}
        for line in block.split("\0"):
            name, _, value = line.partition(" ")
            if name:
                attrs[name] = value
        if "worktree" in attrs:
            found.append((Path(attrs["worktree"]).resolve(), attrs))
    return found


def _checked_out(repo: Path, ref: str) -> Path | None:
    """Where the branch `ref` is checked out (the person's checkout or a worktree), if anywhere."""
    for path, attrs in _worktrees(repo):
        if attrs.get("branch") == ref:
            return path
    return None
