"""Exactly once where real vaults live: real git, two real Syncthing instances, real vim.

Each scenario brings back, through the real tool, notes the service has moved on: a finished
note and a waiting one edited elsewhere, a conflict copy, an editor's older buffer. Each ends
with its row of the table: notes that came in, runs, copies held, edits folded into a waiting
task, and notes lost (a note of the scenario whose text is in no note of the vault: always 0).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.notes.taskfile import TaskNote
from ai_employee.notes.vault import TASK_FOLDERS, Folder, Vault

from .helpers import wait_for
from .service_harness import (
    copy_of,
    events,
    held_as,
    note,
    running_service,
    svc_config,
    wait_status,
)
from .syncthing_harness import syncthing_pair

BUILD = (
    "---\ntitle: Build the page\ntype: claude_app\n---\nA page that says hello.\n\nmark: {mark}\n"
)
PAY = "---\ntitle: Pay 170 EUR to A\ntype: payment\n---\nPay invoice 4711.\n\nmark: {mark}\n"
IGNORES = ".ai-employee\n"
"""What a vault's .gitignore and .stignore must hold (docs/SYNC.md)."""


def config(vault: Vault) -> Config:
    return svc_config(vault, agent_command="true", auto_execute_types="claude_app")


@dataclass
class Row:
    """One scenario's line of the table."""

    came_in: int
    ran: int
    held: int
    folded: int
    lost: int

    def __str__(self) -> str:
        return (
            f"in {self.came_in}, ran {self.ran}, held as copies {self.held}, "
            f"folded {self.folded}, lost {self.lost}"
        )


def row(vault: Vault, marks: list[str], came_in: int, report: str) -> Row:
    texts = "".join(
        p.read_text(errors="replace") for f in TASK_FOLDERS for p in vault.folder(f).glob("*.md")
    )
    result = Row(
        came_in=came_in,
        ran=len(events(vault, "run started")),
        held=len(events(vault, "copy held")),
        # An edit is folded in once its note is gone (a fold that finds the note changed
        # again, as a sync tool sets its mtime, leaves it to the next look, which ends it).
        folded=sum(e["parameters"]["removed"] for e in events(vault, "edit of a waiting task")),
        lost=sum(1 for mark in marks if f"mark: {mark}" not in texts),
    )
    print(f"\n{report}: {result}")
    return result


def waiting(vault: Vault) -> list[Path]:
    return sorted(vault.folder(Folder.PENDING_APPROVAL).glob("*.md"))


# --- git -------------------------------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=Tester", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )


@pytest.mark.parametrize("restart", [False, True], ids=["live", "restarted"])
def test_git_a_second_clone_edits_a_finished_and_a_waiting_note(
    vault: Vault, tmp_path: Path, restart: bool
) -> None:
    """The Obsidian Git way: the vault commits its changes; a laptop's clone that still had
    the notes in Needs_Action edits both and pushes; the vault pulls (with the service
    running, or stopped and started again after the pull)."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--bare", "--initial-branch=main", str(remote))
    root = vault.root
    (root / ".gitignore").write_text(IGNORES)
    (root / "Needs_Action" / "Build.md").write_text(BUILD.format(mark="build"))
    (root / "Needs_Action" / "Pay.md").write_text(PAY.format(mark="pay"))
    git(root, "init", "--initial-branch=main")
    git(root, "add", "-A")
    git(root, "commit", "-m", "two tasks")
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "origin", "main")
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", str(remote), str(laptop))

    def pull() -> None:
        git(root, "add", "-A")
        git(root, "commit", "-m", "the service's moves")  # Obsidian Git's auto-commit
        (laptop / "Needs_Action" / "Build.md").write_text(BUILD.format(mark="build-edited"))
        (laptop / "Needs_Action" / "Pay.md").write_text(PAY.format(mark="pay-edited"))
        git(laptop, "commit", "-am", "fixed on the laptop")
        git(laptop, "push", "origin", "main")
        pulled = git(root, "pull", "--no-rebase", "origin", "main", check=False)
        # git cannot tell the notes the service moved from the ones the laptop edited
        # (modify/delete): it leaves the laptop's versions in Needs_Action.
        assert "CONFLICT" in pulled.stdout, pulled.stdout + pulled.stderr

    with running_service(config(vault)):
        done = wait_status(root / "Done" / "Build.md", "done")
        pay = wait_status(root / "Pending_Approval" / "Pay.md", "pending_approval")
        if not restart:
            pull()
            settled(vault)
    if restart:
        pull()
        with running_service(config(vault)):
            settled(vault)
    copy = note(root / "Pending_Approval" / "Build.md")
    assert copy_of(copy) == done.task_id
    assert note(root / "Pending_Approval" / "Pay.md").task_id == pay.task_id
    mode = "restarted" if restart else "live"
    table = row(vault, ["build", "build-edited", "pay-edited"], 4, f"git ({mode})")
    assert (table.ran, table.held, table.folded, table.lost) == (1, 1, 1, 0)


def settled(vault: Vault) -> None:
    """The finished note's copy held, the waiting note's edit folded into it."""
    root = vault.root
    wait_for(
        lambda: len(waiting(vault)) == 2 and not list((root / "Needs_Action").glob("*.md")),
        what="the copy held and the edit folded",
    )
    wait_for(
        lambda: "pay-edited" in (root / "Pending_Approval" / "Pay.md").read_text(),
        what="the edit",
    )


# --- Syncthing --------------------------------------------------------------------------------


@pytest.fixture
def pair(vault: Vault, tmp_path: Path) -> Iterator[object]:
    peer = tmp_path / "peer"
    pair = syncthing_pair(tmp_path, vault.root, peer, IGNORES)
    pair.start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.mark.parametrize("restart", [False, True], ids=["live", "restarted"])
def test_syncthing_edits_from_a_peer_and_a_conflict_copy(
    vault: Vault, tmp_path: Path, pair: object, restart: bool
) -> None:
    """A laptop (the peer) edits the two notes while offline and comes back; later both
    sides edit the waiting note while apart. With the service running, or stopped while each
    comes back and started after."""
    from .syncthing_harness import Pair

    assert isinstance(pair, Pair)
    peer = pair.b.folder
    waiting_pay = vault.root / "Pending_Approval" / "Pay.md"
    pair.synced()  # the peer has the vault's folders
    # The person writes two tasks on the laptop; they reach the vault.
    (peer / "Needs_Action" / "Build.md").write_text(BUILD.format(mark="build"))
    (peer / "Needs_Action" / "Pay.md").write_text(PAY.format(mark="pay"))
    pair.synced()
    pair.b.stop()  # the laptop goes offline

    def edits_come_back() -> None:
        """Offline, the laptop still shows both in Needs_Action, and edits them; back online,
        Syncthing lets an edit win over a delete (the service's move)."""
        (peer / "Needs_Action" / "Build.md").write_text(BUILD.format(mark="build-edited"))
        (peer / "Needs_Action" / "Pay.md").write_text(PAY.format(mark="pay-edited"))
        pair.b.start()
        wait_for(
            lambda: (
                len(list((vault.root / "Needs_Action").glob("*.md"))) == 2
                or len(waiting(vault)) == 2
            ),
            60,
            "the edits back in the vault",
        )
        pair.synced()

    def both_edit_apart() -> None:
        """Syncthing keeps one version and makes a conflict copy of the other, beside it."""
        pair.synced()
        pair.b.stop()
        text = waiting_pay.read_text()
        here = text.replace("Pay invoice 4711.", "Pay invoice 4711 today.")
        waiting_pay.write_text(here)
        # The vault's Syncthing has seen this edit before the laptop is back (its watcher
        # waits a second: an edit it has not seen yet would just be overwritten).
        wait_for(lambda: pair.a.knows("Pending_Approval/Pay.md", here), 30, "the edit indexed")
        peer_pay = peer / "Pending_Approval" / "Pay.md"
        peer_pay.write_text(text.replace("Pay invoice 4711.", "Pay invoice 4711 on Monday."))
        pair.b.start()
        wait_for(conflicts, 60, "Syncthing's conflict copy in the vault")

    def conflicts() -> list[Path]:
        return [p for p in waiting(vault) if ".sync-conflict-" in p.name]

    def conflict_held() -> TaskNote:
        return note(
            wait_for(
                lambda: next((p for p in conflicts() if held_as(note(p))), None),
                30,
                "the conflict copy held",
            )
        )

    with running_service(config(vault)):
        done = wait_status(vault.root / "Done" / "Build.md", "done")
        pay = wait_status(waiting_pay, "pending_approval")
        if not restart:
            edits_come_back()
            settled(vault)
            both_edit_apart()
            held = conflict_held()
    if restart:
        edits_come_back()
        with running_service(config(vault)):
            settled(vault)
        both_edit_apart()
        with running_service(config(vault)):
            held = conflict_held()
    copy = note(vault.root / "Pending_Approval" / "Build.md")
    assert copy_of(copy) == done.task_id
    assert note(waiting_pay).task_id == pay.task_id
    assert copy_of(held) == pay.task_id and held.task_id != pay.task_id
    assert held_as(held).startswith(f"a sync tool's conflict copy of {pay.task_id} ")
    mode = "restarted" if restart else "live"
    table = row(vault, ["build", "build-edited", "pay-edited"], 5, f"Syncthing ({mode})")
    assert (table.ran, table.held, table.folded, table.lost) == (1, 2, 1, 0)


# --- vim --------------------------------------------------------------------------------------


@pytest.mark.parametrize("restart", [False, True], ids=["live", "restarted"])
def test_a_stale_vim_buffer_written_after_its_note_moved_is_held_not_run(
    vault: Vault, tmp_path: Path, restart: bool
) -> None:
    """vim opened the note before it ran; `:w` after the note went to Done/ writes it back."""
    path = vault.root / "Needs_Action" / "Build.md"
    path.write_text(BUILD.format(mark="build"))
    vim = subprocess.Popen(
        [shutil.which("vim") or "vim", "-N", "-u", "NONE", "-i", "NONE", "-n", "-es", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert vim.stdin is not None and vim.stdout is not None
    vim.stdin.write("1p\n")  # prints the buffer's first line: the note is loaded
    vim.stdin.flush()
    assert vim.stdout.readline() == "---\n"
    try:
        with running_service(config(vault)):
            done = wait_status(vault.root / "Done" / "Build.md", "done")
            if not restart:
                vim.stdin.write("w!\nq!\n")
                vim.stdin.flush()
                assert vim.wait(30) == 0
                held = wait_status(vault.root / "Pending_Approval" / "Build.md", "pending_approval")
        if restart:  # written while the service was stopped; seen by the next start
            vim.stdin.write("w!\nq!\n")
            vim.stdin.flush()
            assert vim.wait(30) == 0
            assert path.exists()
            with running_service(config(vault)):
                held = wait_status(vault.root / "Pending_Approval" / "Build.md", "pending_approval")
    finally:
        if vim.poll() is None:
            vim.kill()
            vim.wait()
        vim.stdin.close()
        vim.stdout.close()
    assert copy_of(held) == done.task_id
    assert held_as(held).startswith(f"the same text as {done.task_id}")
    table = row(vault, ["build"], 2, f"vim ({'restarted' if restart else 'live'})")
    assert (table.ran, table.held, table.lost) == (1, 1, 0)
