"""A task's work dir as a git repository: made one when it is not, a commit after each round,
and what changed since the task began.

Every apps/ work dir is a repository of its own: one that has none gets `git init`, an ignore
list for dependency and build folders (in `.git/info/exclude`, not a file in the app) and a first
commit of whatever was there. A repository that merely encloses the work dir (a clone of this
project, a vault kept in git) is never committed into: the work dir gets its own. After each
round the round's changes are committed (author and committer `ai-employee`, no hooks, no
signing); commits the agent made itself are kept and counted; a round that changed nothing makes
no commit; files over `max_commit_file_bytes` are left out and named.

A round a crash cut short left its changes uncommitted: the next attempt commits them first,
once, and a stale `index.lock` of a killed git is removed (nothing else runs git in the work dir
between rounds). Everything is the git command line. Runs in the run's own thread
(executor.RunThread), which owns the work dir while its task runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_SECONDS = 300.0
"""A git command that takes longer is stopped (a work dir of millions of files)."""

IDENTITY = {
    "GIT_AUTHOR_NAME": "ai-employee",
    "GIT_AUTHOR_EMAIL": "ai-employee@localhost",
    "GIT_COMMITTER_NAME": "ai-employee",
    "GIT_COMMITTER_EMAIL": "ai-employee@localhost",
}
"""Who the service's commits are by (a person's own identity is never borrowed)."""

QUIET_CONFIG = (
    "-c", "commit.gpgsign=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.autocrlf=false",
    "-c", "init.defaultBranch=main",
    "-c", "advice.detachedHead=false",
    "-c", "core.untrackedCache=true",
)  # fmt: skip
"""The person's git configuration stands, but for what would stop or change our commits."""

SAFE_DIFF = ("--no-ext-diff", "--no-textconv", "--no-renames")
"""A diff git draws itself, file by file: no external diff or textconv program that a
repository's configuration names runs (a page being viewed, a run ending)."""

INIT_STAGING = ".ai-employee-git-init"
"""Where a work dir's repository is made before it becomes its `.git` (WorkRepo._init)."""

IGNORED = (
    f"{INIT_STAGING}/",
    "node_modules/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "target/",
    "dist/",
    "build/",
    ".gradle/",
    ".next/",
    ".cache/",
    ".DS_Store",
)
"""Dependency and build folders left out of a new work dir's repository (and where it was
made, should a cut-short one stay: INIT_STAGING)."""


class GitError(Exception):
    """git could not do what a round needs: the message says what and what to do."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        """Another attempt would fail the same way (git is not installed)."""


@dataclass(frozen=True)
class Change:
    """One file a task changed (`added`/`deleted` lines are None for a binary file)."""

    path: str
    added: int | None
    deleted: int | None


@dataclass(frozen=True)
class Changes:
    """What a task changed in its work dir, from its base commit to its head."""

    base: str
    head: str
    files: tuple[Change, ...] = ()
    left_out: tuple[str, ...] = ()
    """Files over max_commit_file_bytes, not committed."""
    commits: int = 0
    """Commits since the base (the service's rounds and the agent's own)."""
    agent_commits: int = 0
    """Of those, the ones the agent made itself."""
    branch: str | None = None
    """A task on a person's repository: the branch its commits are on (worktree.py)."""
    base_branch: str | None = None
    """... and the branch it began from (None: a commit, or a detached HEAD)."""
    repo: str | None = None
    """... and that repository."""

    @property
    def summary(self) -> str:
        """`3 files, +40 -2` (the note's `changes`)."""
        added = sum(c.added or 0 for c in self.files)
        deleted = sum(c.deleted or 0 for c in self.files)
        count = len(self.files)
        return f"{count} file{'' if count == 1 else 's'}, +{added} -{deleted}"


@dataclass(frozen=True)
class Committed:
    """One round's commit: its sha (None: the round changed nothing), what it left out, and
    how many commits the agent made itself during the round."""

    sha: str | None
    left_out: tuple[str, ...] = ()
    agent_commits: int = 0


class WorkRepo:
    """One task's work dir as a repository (see the module docstring). One thread."""

    def __init__(
        self,
        workdir: Path,
        title: str,
        task_id: str,
        max_file_bytes: int,
        git: str = "git",
        branch: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.title = title
        self.task_id = task_id
        self.max_file_bytes = max_file_bytes
        self.git = git
        self.branch = branch
        """The branch every commit must go on (a task's worktree: worktree.py); None: the
        work dir's HEAD, whatever it is."""
        self._head: str | None = None
        """HEAD after our last commit (commits past it in the next round are the agent's)."""
        self._agent_commits = 0
        self._round_commits = 0
        self._began_at: str | None = None
        """HEAD once `begin` readied the work dir (the base, on a task's first attempt)."""
        self._left_out: dict[str, None] = {}
        self._index_lock = workdir / ".git" / "index.lock"

    # --- the attempt's start ----------------------------------------------------------------

    def begin(self, base: str | None) -> str:
        """Ready the work dir for an attempt; returns the task's base commit. `base`: the one
        its note records from an earlier attempt (then what is found uncommitted is what a
        round cut short left, and is committed as that round's); without one, what is found is
        how the work dir was before the task, and the base is a commit of it."""
        if shutil.which(self.git) is None:
            raise GitError(
                f"git is not installed ({self.git!r} is not on PATH): every task's work dir is "
                "a git repository; install git (apt install git, brew install git), then retry",
                permanent=True,
            )
        shutil.rmtree(self.workdir / INIT_STAGING, ignore_errors=True)  # a cut-short init's
        if not (self.workdir / ".git").exists():  # none of its own (one may enclose it)
            self._init()
        self._index_lock = git_dir(self.workdir) / "index.lock"
        self._remove_stale_lock()
        found = "before this task" if base is None else "when an earlier round was cut short"
        message = f"{self.title}\n\nThe work dir as found {found} (task {self.task_id})."
        scan = self._scan()
        committed = self._commit(message, scan, allow_empty=scan.head is None)
        self._head = committed.sha or scan.head
        if self._head is None:  # cannot be: a first commit is made above
            raise GitError(f"git in {self.workdir} has no commit after committing")
        self._began_at = self._head
        if base is not None and self._is_commit(base):
            return base
        return self._head

    def _init(self) -> None:
        """`git init`, made whole before it is put in place: in a folder of ours inside the
        work dir, then renamed to `.git`. A disk that fills in the middle leaves that folder
        (removed by the next attempt), never a half-made `.git` that git no longer takes for
        a repository (it then looks above the work dir, and every later attempt fails)."""
        staging = self.workdir / INIT_STAGING
        staging.mkdir()
        run_git(staging, "init", "-q", git=self.git)
        # Ours: its index split, so a commit of one file rewrites only what changed (of a
        # work dir of 10,000 files, -12 ms a round: bench/commits.py).
        run_git(staging, "config", "core.splitIndex", "true", git=self.git)
        (staging / ".git" / "info").mkdir(parents=True, exist_ok=True)
        (staging / ".git" / "info" / "exclude").write_text(
            "# ai-employee: dependency and build folders stay out of the task's commits\n"
            + "\n".join(IGNORED)
            + "\n"
        )
        os.rename(staging / ".git", self.workdir / ".git")
        staging.rmdir()

    # --- after each round -------------------------------------------------------------------

    def commit_round(self, attempt: int, number: int) -> Committed:
        """Commit what the round changed (the agent's own commits kept and counted)."""
        self._remove_stale_lock()
        scan = self._scan()
        head = scan.head or self._rev("HEAD")  # (none: a broken repository, said by git)
        agent = self._count(self._head, head) if self._head and self._head != head else 0
        self._agent_commits += agent
        message = f"{self.title}\n\nTask {self.task_id}, attempt {attempt}, round {number}."
        committed = self._commit(message, scan)
        self._head = committed.sha or head
        self._round_commits += committed.sha is not None
        return Committed(committed.sha, committed.left_out, agent)

    # --- what changed -----------------------------------------------------------------------

    def changes(self, base: str) -> Changes:
        """What the task changed, from `base` to HEAD."""
        head = self._head or self._rev("HEAD")
        files = []
        numstat = self._run("diff", *SAFE_DIFF, "--numstat", "-z", base, head).stdout
        for record in numstat.split("\0"):
            if not record:
                continue
            added, deleted, path = record.split("\t", 2)
            files.append(
                Change(
                    path,
                    int(added) if added.isdigit() else None,
                    int(deleted) if deleted.isdigit() else None,
                )
            )
        return Changes(
            base,
            head,
            tuple(files),
            tuple(self._left_out),
            (  # counted as they were made, when this attempt began at the base
                self._round_commits + self._agent_commits
                if base == self._began_at
                else self._count(base, head)
            ),
            self._agent_commits,
        )

    # --- a person rejected the work ---------------------------------------------------------

    def put_back(self, base: str, head: str, ref: str) -> str:
        """The work dir as it was at `base`, the task's commits (to `head`) kept under `ref`,
        when nothing happened there since the task; what was done, in words."""
        if not self._is_commit(base) or not self._is_commit(head):
            return "left as it is: its commits are not in the work dir's repository"
        scan = self._scan()
        current = scan.head
        if current != head:
            return (
                f"left as it is: the work dir moved on since the task ({(current or '-')[:12]} "
                f"is not its {head[:12]}); its changes are `git diff {base[:12]} {head[:12]}`"
            )
        if scan.changed:
            return "left as it is: it has changes not committed since the task"
        self._run("update-ref", "-m", f"ai-employee: rejected {self.task_id}", ref, head)
        self._run("reset", "-q", "--hard", base)
        return f"put back to {base[:12]}; the task's commits are kept at {ref}"

    # --- git --------------------------------------------------------------------------------

    def _commit(self, message: str, scan: Scan, *, allow_empty: bool = False) -> Committed:
        """Stage what changed but files over the size limit (the paths `scan` names: no
        second look at the work dir), and commit it on the scan's head (plumbing: no third);
        None when nothing changed."""
        if self.branch is not None and scan.branch != self.branch:
            raise GitError(
                f"the worktree {self.workdir} is on {scan.branch or 'a detached HEAD'}, not "
                f"{self.branch}: the agent switched branches; nothing was committed, its work "
                "is left there",
                permanent=True,
            )
        self._left_out.update(dict.fromkeys(scan.big))
        wanted = [path for path in scan.changed if path not in scan.big]
        if wanted:
            self._run(
                "--literal-pathspecs", "add", "-A", "--pathspec-from-file=-",
                "--pathspec-file-nul", stdin="\0".join(wanted),
            )  # fmt: skip
        elif not allow_empty and (not scan.changed or not self._staged()):
            return Committed(None, scan.big)  # (only big files: the agent may have staged some)
        tree = self._run("write-tree").stdout.strip()
        parents = ["-p", scan.head] if scan.head else []
        sha = self._run("commit-tree", tree, *parents, "-m", message).stdout.strip()
        ref = f"refs/heads/{self.branch}" if self.branch else "HEAD"
        old = scan.head or ""  # what the scan saw: a ref moved meanwhile is not overwritten
        self._run("update-ref", "-m", f"ai-employee: {self.task_id}", ref, sha, old)
        return Committed(sha, scan.big)

    def _scan(self) -> Scan:
        """One `git status`: HEAD, the paths that changed (new, modified, deleted, both sides
        of a rename), and those over max_commit_file_bytes (never committed)."""
        listed = self._run(
            "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all"
        ).stdout
        head, branch, changed = parse_status(listed)
        big = []
        for path in changed:
            try:
                size = (self.workdir / path).lstat().st_size
            except OSError:
                continue
            if size > self.max_file_bytes:
                big.append(path)
        return Scan(head, branch, tuple(changed), tuple(big))

    def _staged(self) -> bool:
        return self._run("diff", "--cached", "--quiet", check=False).returncode != 0

    def _remove_stale_lock(self) -> None:
        """A git killed mid-command (a crash, a stopped agent) leaves `index.lock`; nothing
        runs git here between rounds, so it is stale."""
        self._index_lock.unlink(missing_ok=True)

    def _is_commit(self, rev: str) -> bool:
        done = self._run("cat-file", "-e", f"{rev}^{{commit}}", check=False)
        return done.returncode == 0

    def _rev(self, rev: str) -> str:
        return self._run("rev-parse", "--verify", rev).stdout.strip()

    def _count(self, since: str, until: str) -> int:
        return int(self._run("rev-list", "--count", f"{since}..{until}").stdout.strip() or 0)

    def _run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_git(self.workdir, *args, check=check, stdin=stdin, git=self.git)


@dataclass(frozen=True)
class Scan:
    """What one `git status` said of the work dir."""

    head: str | None
    """HEAD's commit (None: no commit yet)."""
    branch: str | None
    """The branch checked out (None: a detached HEAD)."""
    changed: tuple[str, ...]
    big: tuple[str, ...]
    """Of `changed`, the files over max_commit_file_bytes."""


def parse_status(text: str) -> tuple[str | None, str | None, list[str]]:
    """`git status --porcelain=v2 -z --branch`: HEAD's commit, its branch, and every path that
    changed (a rename's or a copy's both sides). A submodule whose own files changed but whose
    commit did not is left out: the work dir cannot commit that."""
    head: str | None = None
    branch: str | None = None
    changed: list[str] = []
    records = iter(text.split("\0"))
    for record in records:
        kind = record[:2]
        if record.startswith("# branch.oid "):
            oid = record.removeprefix("# branch.oid ")
            head = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            name = record.removeprefix("# branch.head ")
            branch = None if name == "(detached)" else name
        elif kind == "1 ":
            fields = record.split(" ", 8)
            if _committable(fields[2]):
                changed.append(fields[8])
        elif kind == "2 ":
            fields = record.split(" ", 9)
            moved_from = next(records, "")
            if _committable(fields[2]):
                changed += [fields[9], moved_from]
        elif kind == "u ":
            changed.append(record.split(" ", 10)[10])
        elif kind == "? ":
            changed.append(record[2:])
    return head, branch, [path for path in changed if path]


def _committable(sub: str) -> bool:
    """A status entry's submodule field: `N...` (not a submodule), or `S<c><m><u>`: only a
    submodule whose commit changed (`c` = C) has something the work dir can commit."""
    return not sub.startswith("S") or sub[1:2] == "C"


def git_dir(workdir: Path) -> Path:
    """The work dir's own git dir: `.git`, or where a worktree's `.git` file points."""
    dot = workdir / ".git"
    if dot.is_file():
        text = dot.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            path = Path(text.removeprefix("gitdir:").strip())
            return path if path.is_absolute() else workdir / path
    return dot


def run_git(
    workdir: Path,
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    git: str = "git",
    own_config: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`git -C workdir ARGS` as the service runs git: its identity, no hooks, no signing
    (`own_config`; False: as the person's git would run, for what is done in their own
    checkout), no prompt, a timeout; GitError with git's last line when it fails (and
    `check`), and for an argument git cannot be given (a NUL: a note's bad value)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | IDENTITY
    env["GIT_TERMINAL_PROMPT"] = "0"
    config = QUIET_CONFIG if own_config else ()
    try:
        done = subprocess.run(
            [git, *config, "-C", str(workdir), *args],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env=env,
            input=stdin if stdin is not None else "",
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as err:
        raise GitError(
            f"git is not installed: {err}; install git, then retry", permanent=True
        ) from err
    except ValueError as err:  # "embedded null byte"
        raise GitError(f"git {args[0]}: {err} in what it was given", permanent=True) from err
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GitError(f"git {args[0]} in {workdir} failed: {err}") from err
    if check and done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GitError(f"git {args[0]} in {workdir} failed: {why}")
    return done
