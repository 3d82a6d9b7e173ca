"""approve, reject, retry, cancel and logs: vault edits that touch only our keys."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.base.errors import InvalidTransition, TaskNotFound
from ai_employee.notes.lifecycle import Status
from ai_employee.notes.taskfile import parse_note
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces import commands

from .helpers import changed_lines, owned_block_lines, wait_for
from .test_cli_basics import run_cli

NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)

# A person's note with comments, odd key order, a flow list, CRLF line endings.
PERSONAL = (
    "---\r\n"
    "# my own comment\r\n"
    "priority: high   # urgent!\r\n"
    "status: {status}\r\n"
    "tags: [ops, 'deploy #2']\r\n"
    'title: "Deploy: the # thing"\r\n'
    "type: git_push\r\n"
    "task_id: k3x9p2ma\r\n"
    "{extra}"
    "---\r\n"
    "Push the release.\r\n"
    "---\r\n"
    "- [ ] tag it\r\n"
)


def _note(vault: Vault, folder: Folder, status: str, extra: str = "") -> Path:
    path = vault.folder(folder) / "Deploy.md"
    path.write_bytes(PERSONAL.format(status=status, extra=extra).encode())
    return path


def _only_owned_changed(before: str, after: str) -> None:
    removed, added = changed_lines(before, after)
    assert all(line in owned_block_lines(before) for line in removed), removed
    assert all(line in owned_block_lines(after) for line in added), added
    assert after.count("\r\n") == after.count("\n"), "CRLF kept"


@pytest.mark.parametrize(
    ("command", "folder", "status", "extra", "new", "lands_in"),
    [
        (
            "approve",
            Folder.PENDING_APPROVAL,
            "pending_approval",
            'plan: "[[PLAN_Deploy]]"\r\n',
            Status.PLANNED,
            Folder.NEEDS_ACTION,
        ),
        ("approve", Folder.NEEDS_ACTION, "new", "", Status.APPROVED, Folder.NEEDS_ACTION),
        (
            "reject",
            Folder.PENDING_APPROVAL,
            "pending_approval",
            "",
            Status.REJECTED,
            Folder.REJECTED,
        ),
        (
            "retry",
            Folder.FAILED,
            "failed",
            "attempts: 3\r\nerror: agent exited 1  # why\r\n"
            "next_attempt_at: 2026-11-24T20:00:00+00:00\r\n",
            Status.PLANNED,
            Folder.NEEDS_ACTION,
        ),
        ("retry", Folder.DONE, "cancelled", "", Status.PLANNED, Folder.NEEDS_ACTION),
        ("cancel", Folder.NEEDS_ACTION, "planned", "", Status.CANCELLED, Folder.DONE),
        (
            "cancel",
            Folder.NEEDS_ACTION,
            "executing",
            "attempts: 1\r\n",
            Status.CANCELLED,
            Folder.NEEDS_ACTION,
        ),
    ],
)
def test_commands_edit_only_our_keys_and_move(
    vault: Vault,
    config: Config,
    command: str,
    folder: Folder,
    status: str,
    extra: str,
    new: Status,
    lands_in: Folder,
) -> None:
    path = _note(vault, folder, status, extra)
    before = path.read_bytes().decode()
    edited = getattr(commands, command)(vault, config, "k3x9p2ma", actor="alice", now=NOW)
    assert edited.new is new and edited.path.parent == vault.folder(lands_in)
    after = edited.path.read_bytes().decode()
    _only_owned_changed(before, after)
    meta = parse_note(after, "Deploy.md").meta
    assert meta["status"] == new.value
    if command == "approve":
        assert meta["approved_by"] == "alice" and meta["approved_at"] == NOW
    if command == "retry":
        assert meta["attempts"] == 0 and "error" not in meta and "next_attempt_at" not in meta


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        ("retry", "planned", "cannot go from planned to planned for 'k3x9p2ma' (retry takes"),
        ("reject", "done", "cannot go from done to rejected for 'k3x9p2ma' (reject takes"),
        ("cancel", "failed", "cannot go from failed to cancelled"),
        ("approve", "executing", "cannot go from executing to approved"),
        ("approve", "draft", "cannot go from draft to approved"),
    ],
)
def test_commands_refuse_what_the_table_does_not_allow(
    vault: Vault, config: Config, command: str, status: str, message: str
) -> None:
    path = _note(vault, Folder.NEEDS_ACTION, status)
    before = path.read_bytes()
    with pytest.raises(InvalidTransition) as caught:
        getattr(commands, command)(vault, config, "Deploy", actor="alice", now=NOW)
    assert message in str(caught.value)
    assert path.read_bytes() == before


def test_find_by_task_id_file_name_and_path(vault: Vault, config: Config) -> None:
    path = _note(vault, Folder.PENDING_APPROVAL, "pending_approval")
    for ref in ["k3x9p2ma", "Deploy", "Deploy.md", str(path), "Pending_Approval/Deploy.md"]:
        assert commands.find_task(vault, config, ref).path == path, ref
    with pytest.raises(TaskNotFound, match="no task 'nope'"):
        commands.find_task(vault, config, "nope")


def test_cli_commands_print_one_line_and_log_the_person(tmp_path: Path, vault: Vault) -> None:
    _note(vault, Folder.PENDING_APPROVAL, "pending_approval")
    env = {"AI_EMPLOYEE_VAULT": str(vault.root)}
    ok = run_cli("approve", "k3x9p2ma", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "k3x9p2ma: pending_approval -> approved  (Needs_Action/Deploy.md)\n"
    bad = run_cli("retry", "k3x9p2ma", env=env)
    assert bad.returncode == 5
    assert bad.stderr.startswith("ai-employee: error: cannot go from approved to planned")
    assert bad.stderr.count("\n") == 1
    shown = run_cli("logs", "--task", "k3x9p2ma", env=env)
    assert "task approve [k3x9p2ma] Needs_Action/Deploy.md -> ok" in shown.stdout
    raw = [json.loads(line) for line in run_cli("logs", "--json", env=env).stdout.splitlines()]
    assert raw[-1]["action_type"] == "approve" and raw[-1]["approved_by"] == raw[-1]["actor"]


def test_logs_follow_shows_new_entries_as_they_come(vault: Vault) -> None:
    env = {"AI_EMPLOYEE_VAULT": str(vault.root)}
    run_cli("add", "first", env=env)
    follower = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "logs", "--follow", "--vault", str(vault.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")))
    reader.start()
    try:
        wait_for(lambda: any("first" in line for line in lines), what="the existing entry")
        run_cli("add", "second", env=env)
        wait_for(lambda: any("second" in line for line in lines), what="the new entry")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        reader.join(timeout=10)
        follower.stdout.close()


def test_a_command_whose_move_the_running_service_made_first_says_where_the_note_is(
    vault: Vault, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A running service sees `status: rejected` in Pending_Approval/ and moves the note to
    # Rejected/ itself, between the command's edit and its own move: the real rename, then the
    # command's move finds the note gone.
    path = _note(vault, Folder.PENDING_APPROVAL, "pending_approval")
    real_move = commands.move_note

    def service_moved_it_first(source: Path, folder: Path) -> Path:
        real_move(source, vault.folder(Folder.REJECTED))
        return real_move(source, folder)  # raises NoteGone, as the race does

    monkeypatch.setattr(commands, "move_note", service_moved_it_first)
    edited = commands.reject(vault, config, "k3x9p2ma", actor="alice", now=NOW)
    assert edited.path == vault.folder(Folder.REJECTED) / "Deploy.md" and not path.exists()
    assert parse_note(edited.path.read_text(), "Deploy.md").status is Status.REJECTED
