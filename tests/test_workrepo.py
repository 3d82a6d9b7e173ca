"""A task's work dir as a git repository (running/workrepo.py), with the real git: made one when
it is not, each round a commit, what changed since the task's base."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_employee.notes.vault import Vault
from ai_employee.running.workrepo import GitError, WorkRepo, git_dir, parse_status


def git(where: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def repo(workdir: Path, max_bytes: int = 1024) -> WorkRepo:
    workdir.mkdir(parents=True, exist_ok=True)
    return WorkRepo(workdir, "Landing page", "task0001", max_bytes)


def test_a_new_work_dir_becomes_a_repository_of_its_own_with_a_first_commit(
    tmp_path: Path,
) -> None:
    work = tmp_path / "apps" / "html" / "landing"
    work.mkdir(parents=True)
    (work / "index.html").write_text("<p>old</p>\n")
    (work / "node_modules").mkdir()
    (work / "node_modules" / "dep.js").write_text("x\n")
    base = repo(work).begin(None)
    assert git(work, "rev-parse", "HEAD") == base
    assert (
        git(work, "log", "--format=%an <%ae>|%s")
        == "ai-employee <ai-employee@localhost>|Landing page"
    )
    assert git(work, "ls-files") == "index.html", "dependency folders stay out"
    assert "node_modules/" in (work / ".git" / "info" / "exclude").read_text()
    assert not (work / ".gitignore").exists(), "no file of ours in the app"


def test_each_round_is_a_commit_and_a_round_that_changed_nothing_makes_none(
    tmp_path: Path,
) -> None:
    work = tmp_path / "w"
    r = repo(work)
    base = r.begin(None)
    (work / "app.py").write_text("print('hi')\nprint('there')\n")
    first = r.commit_round(attempt=1, number=1)
    assert first.sha is not None and first.sha == git(work, "rev-parse", "HEAD")
    assert "Task task0001, attempt 1, round 1." in git(work, "log", "-1", "--format=%B")
    assert r.commit_round(attempt=1, number=2).sha is None
    (work / "app.py").write_text("print('hi')\n")
    (work / "logo.png").write_bytes(b"\x89PNG\x00\x01\x02")
    r.commit_round(attempt=1, number=3)
    changes = r.changes(base)
    assert changes.summary == "2 files, +1 -0"
    assert [(c.path, c.added, c.deleted) for c in changes.files] == [
        ("app.py", 1, 0),
        ("logo.png", None, None),
    ]
    assert changes.commits == 2 and changes.agent_commits == 0


def test_the_agents_own_commits_are_kept_and_counted(tmp_path: Path) -> None:
    work = tmp_path / "w"
    r = repo(work)
    base = r.begin(None)
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "-c", "user.name=agent", "-c", "user.email=a@b", "commit", "-qm", "the agent's")
    (work / "b.txt").write_text("b\n")
    committed = r.commit_round(attempt=1, number=1)
    assert committed.agent_commits == 1
    assert git(work, "log", "--format=%an", f"{base}..HEAD").splitlines() == [
        "ai-employee",
        "agent",
    ]
    changes = r.changes(base)
    assert changes.commits == 2 and changes.agent_commits == 1
    assert changes.summary == "2 files, +2 -0"


def test_a_file_over_the_size_limit_is_left_out_and_named(tmp_path: Path) -> None:
    work = tmp_path / "w"
    r = repo(work, max_bytes=100)
    base = r.begin(None)
    (work / "small.txt").write_text("ok\n")
    (work / "big file.bin").write_bytes(b"x" * 101)
    committed = r.commit_round(attempt=1, number=1)
    assert committed.left_out == ("big file.bin",)
    assert git(work, "ls-files") == "small.txt"
    changes = r.changes(base)
    assert changes.left_out == ("big file.bin",) and changes.summary == "1 file, +1 -0"
    assert (work / "big file.bin").stat().st_size == 101, "left where it is"


def test_a_repository_that_merely_encloses_the_work_dir_is_never_committed_into(
    tmp_path: Path,
) -> None:
    outer = tmp_path / "project"
    outer.mkdir()
    git(outer, "init", "-q")
    (outer / "README").write_text("the person's\n")
    git(outer, "add", "README")
    git(outer, "-c", "user.name=p", "-c", "user.email=p@p", "commit", "-qm", "theirs")
    before = git(outer, "rev-parse", "HEAD")
    work = outer / "apps" / "py" / "app"
    r = repo(work)
    r.begin(None)
    (work / "x.py").write_text("x = 1\n")
    r.commit_round(attempt=1, number=1)
    assert (work / ".git").is_dir(), "a repository of its own"
    assert git(outer, "rev-parse", "HEAD") == before
    assert git(outer, "log", "--format=%s") == "theirs"
    assert git(work, "rev-parse", "--show-toplevel") == str(work)


def test_an_attempt_after_a_crash_commits_what_the_cut_round_left_once_and_keeps_the_base(
    tmp_path: Path,
) -> None:
    work = tmp_path / "w"
    first = repo(work)
    base = first.begin(None)
    (work / "half.py").write_text("def f():\n")  # the round was killed before its commit
    (work / ".git" / "index.lock").write_text("")  # and a git the agent ran, with it
    again = repo(work)
    assert again.begin(base) == base, "the task's base, as its note records it"
    assert not (work / ".git" / "index.lock").exists()
    log = git(work, "log", "--format=%s|%b", f"{base}..HEAD")
    assert log.count("found when an earlier round was cut short") == 1
    assert again.commit_round(attempt=2, number=1).sha is None, "committed once"
    assert again.changes(base).summary == "1 file, +1 -0"


def test_a_work_dir_with_a_persons_edits_before_the_task_takes_them_as_its_base(
    tmp_path: Path,
) -> None:
    work = tmp_path / "w"
    earlier = repo(work)
    earlier.begin(None)
    (work / "theirs.txt").write_text("a person's edit between tasks\n")
    base = repo(work).begin(None)  # a new task: no base on its note
    assert git(work, "show", "--name-only", "--format=", base) == "theirs.txt"
    assert repo(work).changes(base).files == (), "not the task's change"


def test_git_missing_is_a_permanent_failure_that_says_the_fix(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(GitError) as raised:
        WorkRepo(work, "t", "task0001", 1024, git="git-not-installed-here").begin(None)
    assert raised.value.permanent
    assert "install git" in str(raised.value)


def test_three_tasks_on_one_app_make_three_commits_each_note_saying_what_it_changed(
    vault: Vault, tmp_path: Path
) -> None:
    from ai_employee.notes.taskfile import parse_note
    from ai_employee.notes.vault import Folder

    from .helpers import wait_for
    from .service_harness import running_service, svc_config

    agent = "sh -c 'echo \"$AI_EMPLOYEE_TASK_ID\" >> log.txt; echo wrote'"
    config = svc_config(vault, agent_command=agent)
    work = config.apps_dir / "txt" / "shared"
    notes = []
    with running_service(config):
        for n in (1, 2, 3):
            (vault.folder(Folder.NEEDS_ACTION) / f"Task {n}.md").write_text(
                f"---\ntitle: Task {n}\nlanguage: txt\napp: shared\n---\nAdd a line.\n"
            )
            done = vault.folder(Folder.DONE) / f"Task {n}.md"
            wait_for(done.exists, 30, f"task {n} done")
            notes.append(parse_note(done.read_text(), done.name))
    subjects = git(work, "log", "--format=%s%n%b", "--reverse").split("\n\n")
    rounds = [s for s in subjects if "round 1." in s]
    assert len(rounds) == 3, subjects
    for n, note in enumerate(notes, start=1):
        assert note.meta["changes"] == "1 file, +1 -0", note.meta
        diff = git(work, "diff", note.meta["base_commit"], note.meta["head_commit"])
        assert f"+{note.task_id}" in diff and diff.count("\n+") == 2  # the header and its line
        assert "- `log.txt` +1 -0" in note.body
        assert f"Task {n}" in git(work, "log", "-1", "--format=%s", note.meta["head_commit"])
    assert notes[1].meta["base_commit"] == notes[0].meta["head_commit"]
    assert notes[2].meta["base_commit"] == notes[1].meta["head_commit"]


def test_parse_status_reads_head_and_every_changed_path_of_porcelain_v2() -> None:
    sha = "a" * 40
    text = "\0".join(
        [
            f"# branch.oid {sha}",
            "# branch.head main",
            f"1 .M N... 100644 100644 100644 {sha} {sha} src/app.py",
            f"2 R. N... 100644 100644 100644 {sha} {sha} R100 new name.txt",
            "old name.txt",
            f"u UU N... 100644 100644 100644 100644 {sha} {sha} {sha} both.txt",
            "? untracked dir/file with spaces.md",
            "",
        ]
    )
    assert parse_status(text) == (
        sha,
        "main",
        [
            "src/app.py",
            "new name.txt",
            "old name.txt",
            "both.txt",
            "untracked dir/file with spaces.md",
        ],
    )
    assert parse_status("# branch.oid (initial)\0# branch.head main\0? a\0") == (
        None,
        "main",
        ["a"],
    )
    dirty_submodule = f"1 .M S.M. 160000 160000 160000 {sha} {sha} lib/vendored"
    moved_submodule = f"1 .M SC.. 160000 160000 160000 {sha} {sha} lib/pinned"
    assert parse_status(
        f"# branch.oid {sha}\0# branch.head (detached)\0{dirty_submodule}\0{moved_submodule}\0"
    ) == (sha, None, ["lib/pinned"]), "only a submodule's new commit can be committed"


def test_a_worktrees_stale_index_lock_is_found_in_its_own_git_dir(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    repo = WorkRepo(main, "t", "t1", 1 << 20)
    repo.begin(None)
    subprocess.run(
        ["git", "-C", str(main), "worktree", "add", "-q", "-b", "b", str(tmp_path / "wt")],
        check=True,
    )
    lock = git_dir(tmp_path / "wt") / "index.lock"
    assert lock.parent == main / ".git" / "worktrees" / "wt"
    lock.write_text("")  # a git killed mid-command
    (tmp_path / "wt" / "new.txt").write_text("x\n")
    worktree = WorkRepo(tmp_path / "wt", "t", "t2", 1 << 20)
    worktree.begin(None)
    assert not lock.exists()
    assert worktree.commit_round(1, 1).sha is None, "new.txt was committed as found"


def test_a_repository_the_service_makes_has_a_split_index_and_one_it_finds_is_left_as_is(
    tmp_path: Path,
) -> None:
    made = repo(tmp_path / "made")
    made.begin(None)
    assert git(tmp_path / "made", "config", "core.splitIndex") == "true"
    assert list((tmp_path / "made" / ".git").glob("sharedindex.*")), "the index is split"
    found = tmp_path / "found"
    found.mkdir()
    git(found, "init", "-q")
    repo(found).begin(None)
    done = subprocess.run(["git", "-C", str(found), "config", "core.splitIndex"], check=False)
    assert done.returncode == 1, "a person's own repository's config is not changed"
