"""A task on a person's repository (`repo:`): it works in a git worktree of its own on branch
`ai-employee/<task_id>`, kept under apps/.worktrees/, and the person's checkout (files, index,
HEAD, stash, other branches) is byte for byte what it was, compared, not assumed. Reviewed by
default; accepted, its branch is left to merge or (`merge = "ff"`) fast-forwarded into; rejected,
the branch is kept. Real service, real git, real processes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import TaskNote, parse_note
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running.workrepo import GitError, WorkRepo
from ai_employee.running.worktree import TaskWorktree, fast_forward, person_repo
from ai_employee.surfaces import commands

from .helpers import wait_for
from .service_harness import running_service, service_process, stop_service, svc_config

AGENT = "sh -c 'echo \"$AI_EMPLOYEE_TASK_ID\" >> log.txt; echo wrote'"

PERSON = {
    "GIT_AUTHOR_NAME": "Pat",
    "GIT_AUTHOR_EMAIL": "pat@example.org",
    "GIT_COMMITTER_NAME": "Pat",
    "GIT_COMMITTER_EMAIL": "pat@example.org",
}


def git(where: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | PERSON
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def note_at(path: Path) -> TaskNote:
    return parse_note(path.read_text(), path.name)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """The folder of a person's repositories (an allowed root: extra_roots)."""
    folder = tmp_path / "code"
    folder.mkdir()
    return folder


@pytest.fixture
def shop(code: Path) -> Path:
    """A person's repository mid-work: `feature` checked out (main beside it), a tracked file
    edited, a change staged, an untracked file, and a stash."""
    repo = code / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Shop\n")
    (repo / "app.py").write_text("print('shop')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "feature.py").write_text("FEATURE = 1\n")
    git(repo, "add", "feature.py")
    git(repo, "commit", "-q", "-m", "feature")
    (repo / "app.py").write_text("print('shop, stashed')\n")
    git(repo, "stash", "-q")
    (repo / "app.py").write_text("print('shop, being edited')\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "notes.txt").write_text("mine, untracked\n")
    return repo


def snapshot(repo: Path) -> dict[str, object]:
    """What a person has in their checkout: every file's bytes (the index and HEAD among
    them), every ref but the tasks' branches, the stash, and what git status says. (New
    objects are the tasks' commits: git never changes an object it has.)"""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if path.is_file() and rel.parts[:2] not in (
            (".git", w) for w in ("worktrees", "logs", "objects")
        ):
            if rel.parts[:3] == (".git", "refs", "heads") and "ai-employee" in rel.parts:
                continue
            files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    refs = [
        line
        for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
        if not line.startswith("refs/heads/ai-employee/")
    ]
    status = git(repo, "--no-optional-locks", "status", "--porcelain", "--branch")
    return {"files": files, "refs": refs, "stash": git(repo, "stash", "list"), "status": status}


def same(a: dict[str, object], b: dict[str, object]) -> bool:
    """Snapshots equal; when not, the files that differ are printed (pytest shows them)."""
    if a != b:
        fa, fb = a["files"], b["files"]
        assert isinstance(fa, dict) and isinstance(fb, dict)
        print({k: (fa.get(k), fb.get(k)) for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)})
    return a == b


def without(files: object, name: str) -> dict[str, str]:
    assert isinstance(files, dict)
    return {k: v for k, v in files.items() if k != name}


def config_of(vault: Vault, code: Path, agent: str = AGENT, **overrides: object) -> Config:
    toml = vault.root / ".ai-employee.toml"
    roots = f"extra_roots = [{str(code)!r}]\n"
    if roots not in toml.read_text():
        toml.write_text(roots + toml.read_text())
    return svc_config(vault, agent_command=agent, **overrides)


def repo_task(vault: Vault, name: str, repo: Path | str, extra: str = "") -> Path:
    path = vault.folder(Folder.NEEDS_ACTION) / f"{name}.md"
    path.write_text(f"---\ntitle: {name}\nrepo: {repo}\n{extra}---\nAdd a line to log.txt.\n")
    return path


def in_review(path: Path) -> TaskNote:
    wait_for(lambda: path.exists() and note_at(path).status is Status.IN_REVIEW, 30, "review")
    return note_at(path)


def failed(vault: Vault, name: str) -> TaskNote:
    path = vault.folder(Folder.FAILED) / f"{name}.md"
    wait_for(path.exists, 30, f"{name} in Failed/")
    return note_at(path)


def test_a_repo_task_works_on_its_own_branch_and_leaves_the_persons_checkout_byte_identical(
    vault: Vault, code: Path, shop: Path
) -> None:
    before = snapshot(shop)
    feature = git(shop, "rev-parse", "feature")
    config = config_of(vault, code)
    with running_service(config):
        note = in_review(
            vault.folder(Folder.PENDING_APPROVAL)
            / repo_task(vault, "Log it", shop).name  # reviewed: the default for repo: tasks
        )
        task_id = str(note.task_id)
        branch = f"ai-employee/{task_id}"
        assert note.meta["branch"] == branch
        assert note.meta["base_branch"] == "feature", "the person's HEAD when it began"
        assert note.meta["base_commit"] == feature
        assert note.meta["changes"] == "1 file, +1 -0"
        assert git(shop, "show", f"{branch}:log.txt") == task_id
        assert git(shop, "show", f"{branch}:feature.py") == "FEATURE = 1", "from feature"
        assert git(shop, "rev-parse", f"{branch}^") == feature
        assert f"on the branch `{branch}` of `{shop}`, from `feature`" in note.body
        assert not (config.apps_dir / ".worktrees" / task_id).exists(), "removed at the end"
        assert git(shop, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert same(snapshot(shop), before), "their files, index, HEAD, stash and branches"
        commands.accept(vault, config, task_id, actor="me", now=datetime.now(UTC))
        done = vault.folder(Folder.DONE) / "Log it.md"
        wait_for(lambda: done.exists() and "merged" in note_at(done).meta, 30, "accepted")
        assert note_at(done).meta["merged"] == (
            f"ready to merge into feature: git -C {shop} merge {branch}"
        )
    assert same(snapshot(shop), before), "accepting leaves the branch to merge: nothing moved"
    assert git(shop, "rev-parse", branch) == note_at(done).meta["head_commit"]


def test_two_tasks_on_one_repository_run_side_by_side_each_in_its_worktree(
    vault: Vault, code: Path, shop: Path, tmp_path: Path
) -> None:
    """Each agent waits until both are running (a barrier, up to 20 s): both finish only if
    they ran at once."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    agent = (
        'sh -c \'echo "$AI_EMPLOYEE_TASK_ID" > mine.txt; touch '
        f"{barrier}/$AI_EMPLOYEE_TASK_ID; i=0; while [ $(ls {barrier} | wc -l) -lt 2 ]; do "
        "i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done; pwd'"
    )
    before = snapshot(shop)
    config = config_of(vault, code, agent, max_parallel=2)
    with running_service(config):
        first = repo_task(vault, "One", shop)
        second = repo_task(vault, "Two", shop)
        one = in_review(vault.folder(Folder.PENDING_APPROVAL) / first.name)
        two = in_review(vault.folder(Folder.PENDING_APPROVAL) / second.name)
    for note in (one, two):
        assert git(shop, "show", f"ai-employee/{note.task_id}:mine.txt") == note.task_id
        assert f"{config.apps_dir / '.worktrees' / str(note.task_id)}" in note.body
    assert same(snapshot(shop), before)


def test_merge_ff_fast_forwards_the_base_branch_when_it_is_not_checked_out(
    vault: Vault, code: Path, shop: Path
) -> None:
    before = snapshot(shop)
    config = config_of(vault, code, merge="ff")
    with running_service(config):
        path = repo_task(vault, "Onto main", shop, "base: main\n")
        note = in_review(vault.folder(Folder.PENDING_APPROVAL) / path.name)
        assert note.meta["base_branch"] == "main"
        commands.accept(vault, config, str(note.task_id), actor="me", now=datetime.now(UTC))
        done = vault.folder(Folder.DONE) / path.name
        wait_for(lambda: done.exists() and "merged" in note_at(done).meta, 30, "accepted")
    head = str(note_at(done).meta["head_commit"])
    assert note_at(done).meta["merged"] == f"fast-forwarded main to {head[:12]}"
    assert git(shop, "rev-parse", "main") == head
    after = snapshot(shop)
    moved = ".git/refs/heads/main"
    assert without(after["files"], moved) == without(before["files"], moved)
    assert after["stash"] == before["stash"]
    assert after["status"] == before["status"], "feature is checked out: untouched"


def test_fast_forward_never_touches_a_checkout_with_local_changes(shop: Path) -> None:
    """feature is checked out with changes: not merged, said why; clean, it is merged there
    (its files updated); a branch that moved on since is not fast-forwarded."""
    feature = git(shop, "rev-parse", "feature")
    git(shop, "branch", "ai-employee/t1", "feature")
    work = shop.parent / "t1"
    git(shop, "worktree", "add", "-q", str(work), "ai-employee/t1")
    (work / "new.txt").write_text("from the task\n")
    git(work, "add", "new.txt")
    git(work, "commit", "-q", "-m", "the task's work")
    head = git(work, "rev-parse", "HEAD")
    before = snapshot(shop)
    said = fast_forward(shop, "feature", "ai-employee/t1", head)
    assert said.startswith(f"not merged: feature is checked out at {shop} with local changes")
    assert same(snapshot(shop), before) and git(shop, "rev-parse", "feature") == feature
    git(shop, "stash", "-q", "--include-untracked")  # the person puts their work away
    said = fast_forward(shop, "feature", "ai-employee/t1", head)
    assert said == f"fast-forwarded feature (checked out at {shop}) to {head[:12]}"
    assert (shop / "new.txt").read_text() == "from the task\n"
    git(shop, "checkout", "-q", "main")
    (shop / "other.txt").write_text("x\n")
    git(shop, "add", "other.txt")
    git(shop, "commit", "-q", "-m", "main moves on")
    said = fast_forward(shop, "main", "ai-employee/t1", head)
    assert said.startswith("not merged: main moved on since the task began")
    assert fast_forward(shop, None, "ai-employee/t1", head).startswith(
        "not merged: the task began from a commit, not a branch"
    )


@pytest.mark.parametrize(
    ("repo", "extra", "error"),
    [
        ("{shop}", "base: nowhere\n", "base 'nowhere' is not a branch or a commit of"),
        ("{code}/plain", "", "is not a git repository"),
        ("{outside}", "", "is outside the allowed roots"),
        ("code/shop", "", "is not an absolute path"),
        ("{shop}/sub", "", "is inside the repository"),
    ],
    ids=["no such base", "not a repository", "outside the roots", "relative", "not its top"],
)
def test_a_repo_task_that_cannot_start_fails_saying_why_and_touches_nothing(
    vault: Vault, code: Path, shop: Path, tmp_path: Path, repo: str, extra: str, error: str
) -> None:
    (code / "plain").mkdir()
    (shop / "sub").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    git(outside, "init", "-q")
    before = snapshot(shop)
    config = config_of(vault, code)
    with running_service(config):
        named = repo.format(shop=shop, code=code, outside=outside)
        repo_task(vault, "Bad", named, extra)
        note = failed(vault, "Bad")
    assert error in str(note.meta["error"]), note.meta["error"]
    assert note.meta["attempts"] == 1, "permanent: another attempt would fail the same way"
    assert "branch" not in note.meta
    assert not git(shop, "branch", "--list", "ai-employee/*")
    assert not (config.apps_dir / ".worktrees").exists() or not any(
        (config.apps_dir / ".worktrees").iterdir()
    )
    (shop / "sub").rmdir()
    assert same(snapshot(shop), before)


def test_a_branch_name_already_taken_is_an_error_and_the_branch_is_left_alone(
    vault: Vault, code: Path, shop: Path
) -> None:
    git(shop, "branch", "ai-employee/takenid", "main")
    taken = git(shop, "rev-parse", "ai-employee/takenid")
    config = config_of(vault, code)
    with running_service(config):
        path = vault.folder(Folder.NEEDS_ACTION) / "Taken.md"
        path.write_text(f"---\ntitle: Taken\ntask_id: takenid\nrepo: {shop}\n---\nx\n")
        note = failed(vault, "Taken")
    assert "the branch ai-employee/takenid already exists" in str(note.meta["error"])
    assert git(shop, "rev-parse", "ai-employee/takenid") == taken


def test_rejecting_a_repo_task_keeps_its_branch_and_resets_nothing(
    vault: Vault, code: Path, shop: Path
) -> None:
    before = snapshot(shop)
    config = config_of(vault, code)
    with running_service(config):
        path = repo_task(vault, "Nope", shop)
        note = in_review(vault.folder(Folder.PENDING_APPROVAL) / path.name)
        commands.reject(vault, config, str(note.task_id), actor="me", now=datetime.now(UTC))
        rejected = vault.folder(Folder.REJECTED) / path.name
        wait_for(lambda: "put_back" in note_at(rejected).meta, 30, "said")
    branch = f"ai-employee/{note.task_id}"
    assert note_at(rejected).meta["put_back"] == (
        f"left as it is: your repository is not reset; the branch {branch} is kept"
    )
    assert git(shop, "rev-parse", branch) == note.meta["head_commit"]
    assert same(snapshot(shop), before)


def test_changes_asked_for_run_again_in_the_same_worktree_path_on_the_same_branch(
    vault: Vault, code: Path, shop: Path
) -> None:
    """claude resumes a session by its folder: the worktree is made again where it was."""
    agent = "sh -c 'pwd >> log.txt; echo \"$AI_EMPLOYEE_TASK_ID\" >> log.txt'"
    config = config_of(vault, code, agent)
    with running_service(config):
        path = repo_task(vault, "Again", shop)
        first = in_review(vault.folder(Folder.PENDING_APPROVAL) / path.name)
        commands.request_changes(
            vault, config, str(first.task_id), "one more line", actor="me", now=datetime.now(UTC)
        )
        waiting = vault.folder(Folder.PENDING_APPROVAL) / path.name
        wait_for(
            lambda: (
                waiting.exists()
                and note_at(waiting).status is Status.IN_REVIEW
                and note_at(waiting).meta["head_commit"] != first.meta["head_commit"]
            ),
            30,
            "the second round back in review",
        )
        second = note_at(waiting)
    branch = f"ai-employee/{first.task_id}"
    where = str(config.apps_dir / ".worktrees" / str(first.task_id))
    log = git(shop, "show", f"{branch}:log.txt").splitlines()
    assert log == [where, str(first.task_id), where, str(first.task_id)]
    assert second.meta["base_commit"] == first.meta["base_commit"]
    assert second.meta["changes"] == "1 file, +4 -0"
    assert git(shop, "rev-list", "--count", f"{second.meta['base_commit']}..{branch}") == "2"


# --- crashes and odd states, at the worktree's level ------------------------------------------


def worktree_of(shop: Path, apps: Path, task_id: str, **recorded: str) -> TaskWorktree:
    return TaskWorktree(
        str(shop), (apps, shop.parent), apps / ".worktrees" / task_id, task_id, None,
        {"branch": None, "base_branch": None, "head_commit": None, **recorded},
    )  # fmt: skip


def test_a_worktree_git_was_killed_making_is_removed_and_made_again(
    tmp_path: Path, shop: Path
) -> None:
    """`git worktree add` SIGKILLed mid-checkout leaves a worktree `locked initializing`
    with part of its files: the next attempt removes it and makes it whole. The checkout is
    held in the middle by a smudge filter that waits for a gate, so the kill is never late."""
    checking_out = hold_checkouts(shop, tmp_path)
    apps = tmp_path / "apps"
    place = apps / ".worktrees" / "killed1"
    git(shop, "branch", "ai-employee/killed1", "feature")
    place.parent.mkdir(parents=True)
    killed = subprocess.Popen(
        ["git", "-C", str(shop), "worktree", "add", "-q", str(place), "ai-employee/killed1"],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(checking_out.exists, 10, "the checkout under way")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert "locked initializing" in git(shop, "worktree", "list", "--porcelain")
    (tmp_path / "gate").touch()  # a checkout from now on goes through
    opened = worktree_of(shop, apps, "killed1", branch="ai-employee/killed1").open()
    assert opened.reused is False, "half made: removed and made again"
    assert (place / "slow.txt").read_text() == "held\n"
    assert git(place, "status", "--porcelain") == ""
    assert "locked" not in git(shop, "worktree", "list", "--porcelain")


def hold_checkouts(repo: Path, tmp_path: Path) -> Path:
    """From now on a checkout of `slow.txt` (committed on feature) waits in its smudge filter
    until `tmp_path/gate` exists; returns the file that says one is waiting."""
    marker, gate = tmp_path / "checking-out", tmp_path / "gate"
    (repo / ".gitattributes").write_text("slow.txt filter=slow\n")
    (repo / "slow.txt").write_text("held\n")
    git(repo, "add", ".gitattributes", "slow.txt")
    git(repo, "commit", "-q", "-m", "a file whose checkout can be held")
    git(repo, "config", "filter.slow.clean", "cat")
    git(
        repo, "config", "filter.slow.smudge",
        f"sh -c 'touch {marker}; while [ ! -e {gate} ]; do sleep 0.02; done; cat'",
    )  # fmt: skip
    return marker


def test_a_worktree_a_crash_left_is_reused_and_its_leftovers_are_kept(
    tmp_path: Path, shop: Path
) -> None:
    apps = tmp_path / "apps"
    opened = worktree_of(shop, apps, "crash1").open()
    (opened.path / "half.txt").write_text("the agent's work, not committed\n")  # then SIGKILL
    again = worktree_of(shop, apps, "crash1").open()
    assert again.reused is True and again.base == opened.base
    assert (again.path / "half.txt").read_text() == "the agent's work, not committed\n"
    assert again.base_branch == "feature", "the reflog remembers where it began"


def test_the_branch_is_known_as_this_tasks_by_its_reflog_or_by_its_note(
    tmp_path: Path, shop: Path
) -> None:
    apps = tmp_path / "apps"
    first = worktree_of(shop, apps, "mine1").open()
    again = worktree_of(shop, apps, "mine1").open()  # no note yet: its reflog says whose
    assert again.reused is True and again.base == first.base
    git(shop, "branch", "ai-employee/other1", "main")  # a person's own branch of that name
    with pytest.raises(GitError, match=r"already exists in .* and is not this task's"):
        worktree_of(shop, apps, "other1").open()
    assert not (apps / ".worktrees" / "other1").exists(), "nothing made"
    recorded = worktree_of(shop, apps, "other1", branch="ai-employee/other1").open()
    assert recorded.reused is False, "a branch the note records is the task's"


def test_a_branch_a_person_checked_out_elsewhere_is_said_and_nothing_is_made(
    tmp_path: Path, shop: Path
) -> None:
    apps = tmp_path / "apps"
    worktree = worktree_of(shop, apps, "tried1")
    worktree.open()
    worktree.close()
    trying = shop.parent / "trying"
    git(shop, "worktree", "add", "-q", str(trying), "ai-employee/tried1")  # a person tries it
    with pytest.raises(GitError, match=f"is checked out at {trying}: check out another branch"):
        worktree_of(shop, apps, "tried1").open()
    assert not (apps / ".worktrees" / "tried1").exists()


def test_person_repo_accepts_a_symlink_inside_the_roots_and_refuses_one_out(
    tmp_path: Path, shop: Path
) -> None:
    link = shop.parent / "shop-link"
    link.symlink_to(shop)
    assert person_repo(str(link), (shop.parent,)) == shop
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(elsewhere, "init", "-q")
    out = shop.parent / "out-link"
    out.symlink_to(elsewhere)
    with pytest.raises(GitError, match="outside the allowed roots"):
        person_repo(str(out), (shop.parent,))
    with pytest.raises(GitError, match="must be a path"):
        person_repo(["a"], (shop.parent,))


# --- the service SIGKILLed, then started again ----------------------------------------------


def service_env(agent: str) -> dict[str, str]:
    return {
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": agent,
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.2",
        "AI_EMPLOYEE_RETRY_INITIAL_SECONDS": "0",
        "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
    }


def killed(proc: subprocess.Popen[str]) -> None:
    """The service's whole process group (it, and any git it runs) SIGKILLed."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def test_sigkill_during_a_round_then_a_restart_commits_what_the_round_wrote_once(
    vault: Vault, code: Path, shop: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    agent = f"sh -c 'echo part >> work.txt; [ -e {gate} ] || sleep 60; echo done >> work.txt'"
    config_of(vault, code, agent)  # extra_roots in the vault's file
    before = snapshot(shop)
    first = service_process(vault, service_env(agent), own_group=True)
    try:
        path = repo_task(vault, "Cut", shop)
        wait_for(lambda: path.exists() and "executing" in path.read_text(), 30, "running")
        where = vault.root.parent / "apps" / ".worktrees"
        wait_for(lambda: list(where.glob("*/work.txt")), 30, "the round's first write")
    finally:
        killed(first)
    gate.touch()
    second = service_process(vault, service_env(agent))
    try:
        note = in_review(vault.folder(Folder.PENDING_APPROVAL) / "Cut.md")
    finally:
        stop_service(second)
    branch = f"ai-employee/{note.task_id}"
    log = git(shop, "log", "--format=%s|%b", f"{note.meta['base_commit']}..{branch}")
    assert [line for line in log.splitlines() if line.strip()] == [
        f"Cut|Task {note.task_id}, attempt 2, round 1.",
        f"Cut|The work dir as found when an earlier round was cut short (task {note.task_id}).",
    ]
    assert git(shop, "show", f"{branch}:work.txt").splitlines() == ["part", "part", "done"]
    assert note.meta["changes"] == "1 file, +3 -0", "both commits are the task's"
    assert note.meta["base_commit"] == git(shop, "rev-parse", "feature")
    assert same(snapshot(shop), before)


def test_sigkill_while_the_worktree_is_made_then_a_restart_makes_it_whole(
    vault: Vault, code: Path, shop: Path, tmp_path: Path
) -> None:
    checking_out = hold_checkouts(shop, tmp_path)
    config_of(vault, code)
    before = snapshot(shop)
    first = service_process(vault, service_env(AGENT), own_group=True)
    try:
        path = repo_task(vault, "Half", shop)
        wait_for(checking_out.exists, 30, "git making the worktree, mid-checkout")
    finally:
        killed(first)  # the service and its git
    task_id = parse_note(path.read_text(), path.name).task_id
    assert "locked initializing" in git(shop, "worktree", "list", "--porcelain")
    (tmp_path / "gate").touch()
    second = service_process(vault, service_env(AGENT))
    try:
        note = in_review(vault.folder(Folder.PENDING_APPROVAL) / "Half.md")
    finally:
        stop_service(second)
    branch = f"ai-employee/{task_id}"
    assert note.task_id == task_id and note.meta["attempts"] == 2
    assert git(shop, "show", f"{branch}:log.txt") == task_id
    assert git(shop, "show", f"{branch}:slow.txt") == "held"
    assert git(shop, "rev-list", "--count", f"{note.meta['base_commit']}..{branch}") == "1"
    assert git(shop, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert same(snapshot(shop), before)


# --- what a review found: the person's other worktrees, branches and odd places -------------


def test_a_persons_other_worktree_whose_folder_is_away_keeps_its_record(
    tmp_path: Path, shop: Path
) -> None:
    """No `git worktree prune`: a worktree of the person's on a drive that is not mounted
    now must still be theirs when it comes back."""
    usb = shop.parent / "usb"
    git(shop, "worktree", "add", "-q", "-b", "experiment", str(usb))
    usb.rename(shop.parent / "usb-unplugged")
    apps = tmp_path / "apps"
    worktree = worktree_of(shop, apps, "away1")
    worktree.open()
    assert worktree.close() is None
    (shop.parent / "usb-unplugged").rename(usb)
    assert f"worktree {usb}" in git(shop, "worktree", "list", "--porcelain")
    assert git(usb, "rev-parse", "--abbrev-ref", "HEAD") == "experiment"


def test_an_agent_that_switches_branches_gets_no_commit_and_the_other_branch_stays(
    tmp_path: Path, shop: Path
) -> None:
    git(shop, "branch", "develop", "main")
    develop = git(shop, "rev-parse", "develop")
    apps = tmp_path / "apps"
    opened = worktree_of(shop, apps, "switch1").open()
    repo = WorkRepo(opened.path, "t", "switch1", 1 << 20, branch=opened.branch)
    repo.begin(opened.base)
    git(opened.path, "checkout", "-q", "develop")  # the agent, in its worktree
    (opened.path / "oops.txt").write_text("x\n")
    with pytest.raises(GitError, match="is on develop, not ai-employee/switch1: the agent"):
        repo.commit_round(1, 1)
    assert git(shop, "rev-parse", "develop") == develop
    assert git(shop, "rev-parse", opened.branch) == opened.base
    assert "not committed: oops.txt" in str(worktree_of(shop, apps, "switch1").close())


def test_a_worktree_half_removed_when_the_service_was_killed_is_made_again_whole(
    tmp_path: Path, shop: Path
) -> None:
    apps = tmp_path / "apps"
    opened = worktree_of(shop, apps, "gone1").open()
    git(shop, "worktree", "lock", "--reason", "ai-employee: removing", str(opened.path))
    (opened.path / "README.md").unlink()  # git had begun to delete its files
    (opened.path / "app.py").unlink()
    again = worktree_of(shop, apps, "gone1").open()
    assert again.reused is False
    assert (again.path / "README.md").exists() and (again.path / "app.py").exists()
    assert git(again.path, "status", "--porcelain") == ""
    assert "locked" not in git(shop, "worktree", "list", "--porcelain")


def test_a_worktree_the_last_attempt_left_without_a_base_on_record_takes_the_branchs(
    tmp_path: Path, shop: Path
) -> None:
    """The service died before the note or the transcript said the base: the leftovers are
    still the task's change, measured from where its branch began."""
    apps = tmp_path / "apps"
    first = worktree_of(shop, apps, "nobase1").open()
    (first.path / "half.txt").write_text("the agent's\n")
    again = worktree_of(shop, apps, "nobase1").open()
    repo = WorkRepo(again.path, "t", "nobase1", 1 << 20, branch=again.branch)
    assert repo.begin(again.base) == first.base
    assert repo.changes(first.base).summary == "1 file, +1 -0"


@pytest.mark.parametrize(
    ("place", "error"),
    [("file", "is not a folder: move it away"), ("symlink", "is not a folder: move it away")],
)
def test_something_else_at_the_worktrees_place_is_an_error_and_no_branch_is_made(
    tmp_path: Path, shop: Path, place: str, error: str
) -> None:
    apps = tmp_path / "apps"
    where = apps / ".worktrees" / "odd1"
    where.parent.mkdir(parents=True)
    if place == "file":
        where.write_text("mine\n")
    else:
        where.symlink_to(tmp_path)
    with pytest.raises(GitError, match=error) as raised:
        worktree_of(shop, apps, "odd1").open()
    assert raised.value.permanent
    assert not git(shop, "branch", "--list", "ai-employee/*")


@pytest.mark.parametrize(
    ("repo", "base", "error"),
    [
        ("~nosuchuser-here/shop", None, "is not a path this machine has"),
        ("{shop}", "ma\0in", "null byte"),
    ],
    ids=["no such user", "a NUL in base"],
)
def test_odd_values_are_errors_that_say_so_not_crashes(
    tmp_path: Path, shop: Path, repo: str, base: str | None, error: str
) -> None:
    nothing: dict[str, str | None] = {"branch": None, "base_branch": None, "head_commit": None}
    worktree = TaskWorktree(
        repo.format(shop=shop), (tmp_path,), tmp_path / "apps" / ".worktrees" / "odd2",
        "odd2", base, nothing,
    )  # fmt: skip
    with pytest.raises(GitError, match=error) as raised:
        worktree.open()
    assert raised.value.permanent


def test_base_names_a_branch_before_a_tag_of_the_same_name(tmp_path: Path, shop: Path) -> None:
    git(shop, "tag", "main", "feature")  # a tag named like the branch, elsewhere
    main = git(shop, "rev-parse", "refs/heads/main")
    opened = TaskWorktree(
        str(shop), (tmp_path,), tmp_path / "apps" / ".worktrees" / "tag1", "tag1", "main",
        {"branch": None, "base_branch": None, "head_commit": None},
    ).open()  # fmt: skip
    assert (opened.base, opened.base_branch) == (main, "main")


def test_a_repo_tasks_check_runs_in_its_worktree_and_a_failed_round_goes_on_there(
    vault: Vault, code: Path, shop: Path
) -> None:
    """verify on top of a worktree: the first round's check fails (one line), the second
    round in the same worktree makes it pass; both rounds are commits on the task's branch."""
    config = config_of(vault, code)
    with running_service(config):
        path = repo_task(vault, "Checked", shop, "verify: sh -c 'test $(wc -l < log.txt) -ge 2'\n")
        note = in_review(vault.folder(Folder.PENDING_APPROVAL) / path.name)
    branch = f"ai-employee/{note.task_id}"
    assert note.meta["rounds"] == 2
    assert git(shop, "show", f"{branch}:log.txt").splitlines() == [note.task_id] * 2
    assert git(shop, "rev-list", "--count", f"{note.meta['base_commit']}..{branch}") == "2"


def test_a_detached_head_is_no_obstacle_and_has_no_branch_to_fast_forward(
    tmp_path: Path, shop: Path
) -> None:
    git(shop, "stash", "-q", "--include-untracked")
    git(shop, "checkout", "-q", "--detach", "main")
    before = snapshot(shop)
    opened = worktree_of(shop, tmp_path / "apps", "detach1").open()
    assert opened.base == git(shop, "rev-parse", "main") and opened.base_branch is None
    assert fast_forward(shop, opened.base_branch, opened.branch, opened.base).startswith(
        "not merged: the task began from a commit, not a branch"
    )
    assert same(snapshot(shop), before)
