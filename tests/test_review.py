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


# --- request changes ----------------------------------------------------------------------


def test_comments_are_the_persons_section_only_appended_and_sent_once() -> None:
    from ai_employee.notes.review import comments_in, sent_mark, unsent, without_review
    from ai_employee.notes.taskfile import with_review_comment

    text = "---\ntitle: t\nstatus: in_review\n---\nBuild it.\n\n## Result\n\n**success**\n"
    once = with_review_comment(text, "More tests.")
    assert once == (
        "---\ntitle: t\nstatus: in_review\n---\nBuild it.\n\n## Review\n\nMore tests.\n\n"
        "## Result\n\n**success**\n"
    )
    twice = with_review_comment(once, "And docs.")
    assert twice.startswith(once.split("\n\n## Result")[0]), "only appended"
    note = parse_note(twice, "t.md")
    assert note.review_comments == "More tests.\n\nAnd docs."
    assert note.body_asked == "Build it.\n\n" and without_review(note.body) != note.body
    assert note.asked == parse_note(text, "t.md").asked, "comments do not change the task"
    sent = sent_mark(comments_in(parse_note(once, "t.md").body))
    assert unsent(note.review_comments, sent) == "And docs."
    assert unsent(note.review_comments, sent_mark(note.review_comments)) == ""
    edited = note.review_comments.replace("More", "Fewer")
    assert unsent(edited, sent) == edited, "edited above what was sent: all of it again"
    crlf = with_review_comment("---\r\ntitle: t\r\n---\r\nx\r\n", "a\nb")
    assert "\r\n## Review\r\n\r\na\r\nb\r\n" in crlf and "\n\n" not in crlf.replace("\r\n", "")


def _prompt_agent(record: Path) -> str:
    """A command agent that keeps each prompt it is given, and changes the app each round."""
    return (
        f'sh -c \'cat "$0" >> {record}; echo ---- >> {record}; '
        'echo "$AI_EMPLOYEE_TASK_ID" >> log.txt; echo round done\' {prompt_file}'
    )


def test_request_changes_runs_the_task_again_told_the_comment_then_it_is_reviewed_again(
    vault: Vault, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    config = svc_config(vault, agent_command=_prompt_agent(prompts))
    work = config.apps_dir / "txt" / "shared"
    with running_service(config):
        waiting = task(vault, "Reviewed")
        first = in_review(waiting)
        edited = commands.request_changes(
            vault, config, "Reviewed.md", "Add a second line.", actor="me",
            now=datetime.now(UTC), at="log.txt:1",
        )  # fmt: skip
        assert edited.path == vault.folder(Folder.NEEDS_ACTION) / "Reviewed.md"
        wait_for(lambda: prompts.read_text().count("----") == 2, 30, "a second run")
        again = in_review(waiting)
    told = prompts.read_text().split("----")[1]
    assert "A person reviewed your changes and asks for more" in told
    assert "In `log.txt:1`: Add a second line." in told
    assert "# Task: Reviewed" in told, "the command agent gets the whole task again"
    assert again.meta["head_commit"] != first.meta["head_commit"]
    assert again.meta["base_commit"] == first.meta["base_commit"], "one task, one base"
    assert again.meta["changes"] == "1 file, +2 -0"
    assert again.meta["review_sent"], "what the agent was told is recorded"
    assert git(work, "rev-list", "--count", f"{first.meta['head_commit']}..HEAD") == "1"
    assert "## Review\n\nIn `log.txt:1`: Add a second line.\n" in waiting.read_text()


def test_from_obsidian_a_review_section_and_a_move_back_send_the_work_back_once(
    vault: Vault, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    config = svc_config(vault, agent_command=_prompt_agent(prompts))
    with running_service(config):
        waiting = task(vault, "Obsidian")
        in_review(waiting)
        text = waiting.read_text().replace(
            "## Result", "## Review\n\nShorter, please.\n\n## Result"
        )
        waiting.write_text(text)  # a person writes in Obsidian, then moves the note
        waiting.rename(vault.folder(Folder.NEEDS_ACTION) / "Obsidian.md")
        wait_for(lambda: prompts.read_text().count("----") == 2, 30, "a second run")
        in_review(waiting)
        # Moved back again without a new comment: nothing runs; it waits for the review.
        waiting.rename(vault.folder(Folder.NEEDS_ACTION) / "Obsidian.md")
        wait_for(waiting.exists, 30, "back in Pending_Approval/")
        assert note_at(waiting).status is Status.IN_REVIEW
    assert prompts.read_text().count("----") == 2
    assert "Shorter, please." in prompts.read_text().split("----")[1]
