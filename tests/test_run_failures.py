"""Runs that meet failures of our own (a full disk, a bug, a folder that cannot be made) and
stale copies at the worst moments: every run still ends, once, and nothing spins or hangs.

Found by a review of the run coordinator; each test failed on the code it was found in.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from ai_employee.base import fsops
from ai_employee.daemon.messages import Message
from ai_employee.notes.taskfile import edit_note_text
from ai_employee.notes.vault import Folder, Vault
from ai_employee.running import agentproc, end_record, executor
from ai_employee.running.coordinator import RunHandle
from ai_employee.running.run_messages import Claimed
from ai_employee.running.runrecords import RunJournal
from ai_employee.running.scheduler import RunRequest

from .helpers import wait_for
from .service_harness import drop, events, note, running_service, wait_status
from .test_running import agent_config, ledger_events, starts, task

__all__ = ["ledger"]  # the fixture, used by name
from .test_running import ledger


def _agents_of(vault: Vault, task_id: str) -> list[int]:
    """Live processes started for this task (found by the environment an agent gets)."""
    want = {f"AI_EMPLOYEE_VAULT={vault.root}".encode(), f"AI_EMPLOYEE_TASK_ID={task_id}".encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= environ:
                found.append(int(entry.name))
    return found


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_run_whose_prompt_and_transcript_cannot_be_written_still_ends(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "write_prompt", _disk_full)
    monkeypatch.setattr(agentproc.Transcript, "write", _disk_full)
    with running_service(agent_config(vault, ledger, max_attempts=1)) as service:
        drop(vault, tmp_path, "full.md", task("full"))
        failed = wait_status(vault.folder(Folder.FAILED) / "full.md", "failed", 20)
        wait_for(lambda: not service.runs.running, what="the run no longer running")
    assert failed.meta["error"].startswith("cannot write the prompt file")
    assert starts(ledger) == {}, "no agent started"


def test_an_error_after_the_agent_started_stops_it_and_is_a_transient_failure(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run journal cannot be written once the agent runs: the agent is stopped (never left
    unsupervised), and the attempt is ours to retry, not "cannot start the agent"."""
    monkeypatch.setattr(RunJournal, "started", _disk_full)
    with running_service(agent_config(vault, ledger, max_attempts=1)) as service:
        drop(vault, tmp_path, "journal.md", task("journal", behave="sleep 60"))
        failed = wait_status(vault.folder(Folder.FAILED) / "journal.md", "failed", 20)
        wait_for(lambda: not service.runs.running, what="the run no longer running")
    assert failed.meta["error"].startswith("internal error: [Errno 28] No space left on device")
    # Stopped before or after it wrote its ledger: either way it is not left running.
    assert [event for _, event, _, _ in ledger_events(ledger)] in ([], ["start", "end"])
    assert not _agents_of(vault, failed.task_id)


def test_a_work_dir_that_cannot_be_made_is_a_counted_attempt_not_a_spin(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    (vault.root.parent / "apps" / "py").mkdir()
    (vault.root.parent / "apps" / "py" / "nodir").write_text("a file where the work dir goes\n")
    with running_service(agent_config(vault, ledger, max_attempts=2)):
        drop(vault, tmp_path, "nodir.md", task("nodir", app="nodir"))
        failed = wait_status(vault.folder(Folder.FAILED) / "nodir.md", "failed", 20)
    assert failed.meta["attempts"] == 2
    assert failed.meta["error"].startswith("cannot make the work dir ")
    assert not events(vault, "cannot claim the task")
    assert len(events(vault, "queued")) == 2, "two attempts, each queued once"


def test_a_stale_copy_saved_as_the_run_records_its_end_is_recorded_once(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor writes its pre-claim buffer back just as the run records: the end is written
    onto it (with the claim), the run is recorded once and never started again."""
    real_record = end_record.record_end

    def stale_copy_first(ctx: Any, path: Path, *args: Any) -> Any:
        planned = edit_note_text(
            path.read_text(), {"status": "planned", "started_at": None, "attempts": None}
        )
        (tmp_path / "buffer.md").write_text(planned)
        (tmp_path / "buffer.md").rename(path)
        return real_record(ctx, path, *args)

    monkeypatch.setattr(end_record, "record_end", stale_copy_first)
    with running_service(agent_config(vault, ledger)) as service:
        drop(vault, tmp_path, "stale.md", task("stale"))
        done = wait_status(vault.folder(Folder.DONE) / "stale.md", "done", 20)
        wait_for(lambda: not service.runs.running, what="the run recorded")
        assert service.runs.tally.succeeded == 1
    assert done.meta["attempts"] == 1 and done.meta["started_at"]
    assert starts(ledger) == {done.task_id: 1}
    assert not events(vault, "cannot record the run")


def test_a_stale_copy_seen_before_the_claim_is_known_gets_the_claim_back(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """The run's Claimed is held back until the main loop has seen a stale copy of the note:
    nothing is restored while the claim is unknown, and once Claimed is taken it is."""
    gate, seen_claim, release = tmp_path / "gate", threading.Event(), threading.Event()
    with running_service(agent_config(vault, ledger)) as service:
        real_starter = service.runs.starter

        def starter(run_id: int, request: RunRequest, path: Path) -> RunHandle:
            run = real_starter(run_id, request, path)
            assert isinstance(run, executor.RunThread)
            real_post = run.ctx.post

            def post(message: Message) -> None:
                if isinstance(message, Claimed):
                    seen_claim.set()
                    release.wait(30)
                real_post(message)

            run.ctx = dataclasses.replace(run.ctx, post=post)
            return run

        service.runs.starter = starter
        path = drop(vault, tmp_path, "early.md", task("early", behave=f"gate {gate}"))
        assert seen_claim.wait(30), "the claim is on the note, its Claimed not yet posted"
        running = note(path)
        assert running.meta["status"] == "executing"
        stale = edit_note_text(
            path.read_text(), {"status": "planned", "started_at": None, "attempts": None}
        )
        (tmp_path / "buffer.md").write_text(stale)
        (tmp_path / "buffer.md").rename(path)
        wait_for(lambda: path not in service.index.entries, what="the stale copy looked at")
        assert note(path).meta["status"] == "planned", "nothing restored while unknown"
        release.set()
        wait_for(lambda: events(vault, "claim restored"), what="the claim restored")
        assert note(path).meta["status"] == "executing" and note(path).meta["attempts"] == 1
        gate.touch()
        wait_status(vault.folder(Folder.DONE) / "early.md", "done", 20)
    assert starts(ledger) == {running.task_id: 1}


def test_a_move_the_loop_finishes_counts_on_the_dashboard_at_once(vault: Vault) -> None:
    with running_service(agent_config(vault, Path("/dev/null"))):
        (vault.folder(Folder.NEEDS_ACTION) / "half.md").write_text(
            "---\ntitle: half\ntask_id: h1\nstatus: done\n---\nmoved by a crash, half way\n"
        )
        wait_for(lambda: (vault.folder(Folder.DONE) / "half.md").exists(), what="the move")
        # long before the next sweep (60 s) would count it
        wait_for(lambda: "| Done | 1 note |" in vault.dashboard.read_text(), what="Done/ counted")


def test_fifos_in_place_of_the_files_the_service_reads_never_hang_it(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    # A FIFO opened for reading blocks until a writer comes: the handbook, a template, a plan,
    # Dashboard.md and the machinery's JSON files are read with O_NONBLOCK and refused unless
    # they are regular files, so the start, the main loop and the runs go on.
    task_id = "fifo1234"
    fifos = [
        vault.handbook,
        vault.folder(Folder.TEMPLATES) / "Other.md",
        vault.folder(Folder.PLANS) / f"PLAN_Fifo ({task_id}).md",
        vault.dashboard,
        vault.machinery / "told.json",
        vault.machinery / "usage_limit.json",
    ]
    for fifo in fifos:
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)
    text = task("Fifo").replace(
        "---\n", f'---\ntask_id: {task_id}\nstatus: planned\nplan: "[[PLAN_Fifo ({task_id})]]"\n', 1
    )
    (vault.folder(Folder.NEEDS_ACTION) / "Fifo.md").write_text(text)  # there before the start
    with running_service(agent_config(vault, ledger)):
        done = wait_status(vault.folder(Folder.DONE) / "Fifo.md", "done", 30)
    assert done.task_id == task_id and starts(ledger)[task_id] == 1
    plan = vault.folder(Folder.PLANS) / f"PLAN_Fifo ({task_id}).md"
    assert plan.is_file(), "the plan that was a FIFO was written again"


def test_a_persons_save_right_after_the_move_to_done_keeps_the_end_and_their_text(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person saves the note the moment it lands in Done/ (their editor had it open): the
    run's end is not decided again on their save (it holds our end already: it was read back
    as a person's `done`, recorded as cancelled, and our `## Result` written over their line),
    and their line stays."""
    real_move = fsops.move_noreplace
    added = "A person's line, saved as the note landed.\n"

    def move_then_save(src: Path, folder: Path, name: str | None = None) -> Path:
        moved = real_move(src, folder, name)
        if folder.name == "Done" and moved.suffix == ".md":
            staged = tmp_path / "editor-save.md"
            staged.write_text(moved.read_text() + added)
            staged.rename(moved)
        return moved

    monkeypatch.setattr(fsops, "move_noreplace", move_then_save)
    with running_service(agent_config(vault, ledger)):
        drop(vault, tmp_path, "saved.md", task("saved"))
        done = wait_status(vault.folder(Folder.DONE) / "saved.md", "done", 20)
    text = (vault.folder(Folder.DONE) / "saved.md").read_text()
    assert text.endswith(added), "the person's save is kept"
    assert "\n**success**" in text and "cancelled" not in text
    assert starts(ledger) == {done.task_id: 1}
