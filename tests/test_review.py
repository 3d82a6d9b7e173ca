"""Review, a gate a person chooses (`review:`): the run that would be done waits in
Pending_Approval/ as `in_review`; accepted, it is done; rejected, its work dir is put back as it
was before the task with the task's commits kept under a ref the note names. Real service, real
git, real processes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from ai_employee.base.config import Config
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import TaskNote, parse_note
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces import commands

from .helpers import wait_for
from .service_harness import running_service, svc_config

AGENT = "sh -c 'echo \"$AI_EMPLOYEE_TASK_ID\" >> log.txt; echo wrote'"


def git(where: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def note_at(path: Path) -> TaskNote:
    return parse_note(path.read_text(), path.name)


def task(vault: Vault, name: str, review: str = "true", app: str = "shared") -> Path:
    path = vault.folder(Folder.NEEDS_ACTION) / f"{name}.md"
    path.write_text(
        f"---\ntitle: {name}\nlanguage: txt\napp: {app}\nreview: {review}\n---\nAdd a line.\n"
    )
    return vault.folder(Folder.PENDING_APPROVAL) / f"{name}.md"


def in_review(path: Path) -> TaskNote:
    wait_for(lambda: path.exists() and note_at(path).status is Status.IN_REVIEW, 30, "review")
    return note_at(path)


def config_of(vault: Vault, **overrides: object) -> Config:
    return svc_config(vault, agent_command=AGENT, **overrides)


def test_work_under_review_waits_for_a_person_and_a_move_to_approved_accepts_it(
    vault: Vault,
) -> None:
    with running_service(config_of(vault)):
        waiting = task(vault, "Reviewed")
        note = in_review(waiting)
        assert note.meta["changes"] == "1 file, +1 -0"
        assert "Waits for your review: accept it" in note.body
        assert "- `log.txt` +1 -0" in note.body
        waiting.rename(vault.folder(Folder.APPROVED) / "Reviewed.md")  # a person accepts
        done = vault.folder(Folder.DONE) / "Reviewed.md"
        wait_for(done.exists, 30, "the accepted task in Done/")
        assert note_at(done).status is Status.DONE
    log = (vault.logs).glob("*.jsonl")
    assert any('"event": "accepted"' in p.read_text() for p in log)


def test_the_cli_accepts_and_a_task_without_review_is_done_at_once(vault: Vault) -> None:
    config = config_of(vault)
    with running_service(config):
        waiting = task(vault, "Gated")
        note = in_review(waiting)
        edited = commands.accept(vault, config, "Gated.md", actor="me", now=datetime.now(UTC))
        assert edited.new is Status.DONE and edited.path.parent == vault.folder(Folder.DONE)
        task(vault, "Plain", review="false")
        wait_for((vault.folder(Folder.DONE) / "Plain.md").exists, 30, "no review: done")
    assert note.task_id


def test_a_type_can_ask_for_review(vault: Vault) -> None:
    (vault.root / ".ai-employee.toml").write_text("[types.reviewed]\nreview = true\n")
    config = config_of(vault, auto_execute_types="reviewed")
    with running_service(config):
        path = vault.folder(Folder.NEEDS_ACTION) / "Typed.md"
        path.write_text("---\ntitle: Typed\ntype: reviewed\nlanguage: txt\napp: t\n---\nx\n")
        in_review(vault.folder(Folder.PENDING_APPROVAL) / "Typed.md")
        other = vault.folder(Folder.NEEDS_ACTION) / "Opted out.md"
        other.write_text(
            "---\ntitle: Opted out\ntype: reviewed\nreview: false\nlanguage: txt\napp: u\n---\nx\n"
        )
        wait_for((vault.folder(Folder.DONE) / "Opted out.md").exists, 30, "the note's no wins")


def test_rejecting_work_under_review_puts_the_app_back_and_keeps_the_commits(
    vault: Vault,
) -> None:
    config = config_of(vault)
    work = config.apps_dir / "txt" / "shared"
    with running_service(config):
        task(vault, "First", review="false")
        wait_for((vault.folder(Folder.DONE) / "First.md").exists, 30, "the first task done")
        second_lines = (work / "log.txt").read_text()
        before = git(work, "rev-parse", "HEAD")
        third = in_review(task(vault, "Third"))
        assert (work / "log.txt").read_text() != second_lines
        commands.reject(vault, config, "Third.md", actor="me", now=datetime.now(UTC))
        rejected = vault.folder(Folder.REJECTED) / "Third.md"
        wait_for(lambda: "put_back" in note_at(rejected).meta, 30, "the work put back")
        said = str(note_at(rejected).meta["put_back"])
    ref = f"refs/ai-employee/rejected/{third.task_id}"
    assert said == f"put back to {before[:12]}; the task's commits are kept at {ref}"
    assert git(work, "rev-parse", "HEAD") == before
    assert (work / "log.txt").read_text() == second_lines, "as the task before left it"
    assert git(work, "rev-parse", ref) == third.meta["head_commit"], "still reachable"
    assert git(work, "status", "--porcelain") == ""


def test_rejected_work_is_left_as_it_is_when_the_app_moved_on_since(vault: Vault) -> None:
    config = config_of(vault)
    work = config.apps_dir / "txt" / "shared"
    with running_service(config):
        waiting = task(vault, "Reviewed")
        reviewed = in_review(waiting)
        task(vault, "Later", review="false")  # another task works on the app meanwhile
        wait_for((vault.folder(Folder.DONE) / "Later.md").exists, 30, "the later task")
        head = git(work, "rev-parse", "HEAD")
        waiting.rename(vault.folder(Folder.REJECTED) / "Reviewed.md")  # a person's rejection
        rejected = vault.folder(Folder.REJECTED) / "Reviewed.md"
        wait_for(lambda: "put_back" in note_at(rejected).meta, 30, "the decision")
        said = str(note_at(rejected).meta["put_back"])
    assert said.startswith("left as it is: the work dir moved on since the task")
    assert git(work, "rev-parse", "HEAD") == head, "nothing touched"
    assert reviewed.meta["head_commit"] in said or "git diff" in said
