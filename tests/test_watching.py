"""The service against real inotify: every way a note can arrive, and what must not happen."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver, EventEmitter

from ai_employee.notes.vault import Folder, Vault
from ai_employee.watching.watcher import Hint, Kind

from .helpers import wait_for
from .service_harness import (
    drop,
    events,
    note,
    running_service,
    service_process,
    svc_config,
    wait_planned,
    wait_status,
)

TASK = "---\ntitle: {title}\ntype: claude_app\n---\nBuild it.\n\n- [ ] first\n- [ ] second\n"


def test_drop_by_rename_is_planned_with_a_plan_linked_both_ways(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(svc_config(vault)):
        path = drop(vault, tmp_path, "Bakery.md", TASK.format(title="Bakery"))
        planned = wait_planned(path)
    plan = vault.folder(Folder.PLANS) / f"PLAN_Bakery ({planned.task_id}).md"
    assert planned.meta["plan"] == f"[[PLAN_Bakery ({planned.task_id})]]"
    assert "Task: [[Bakery]]" in plan.read_text()
    assert "1. first\n2. second" in plan.read_text()
    assert planned.task_id and planned.meta["planned_at"]


def test_notes_present_before_start_are_planned_at_start(vault: Vault) -> None:
    paths = []
    for i in range(5):
        path = vault.folder(Folder.NEEDS_ACTION) / f"early {i}.md"
        path.write_text(TASK.format(title=f"early {i}"))
        paths.append(path)
    with running_service(svc_config(vault)):
        for path in paths:
            wait_planned(path)


def test_in_place_write_in_chunks_is_read_only_after_close_and_quiet(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(svc_config(vault, settle_seconds=0.3)) as service:
        path = vault.folder(Folder.NEEDS_ACTION) / "chunks.md"
        with path.open("w") as handle:
            handle.write("---\ntitle: Chunks\n")  # an unclosed fence: refused if read now
            handle.flush()
            wait_for(lambda: path in service.settling, what="the service to see the write")
            handle.write("type: claude_app\n---\nBody in a second chunk.\n")
        planned = wait_planned(path)
    assert planned.body == "Body in a second chunk.\n"
    assert events(vault, "note refused") == []


def test_vim_style_save_of_a_planned_note_is_not_planned_again(
    vault: Vault, tmp_path: Path
) -> None:
    with running_service(svc_config(vault)) as service:
        path = drop(vault, tmp_path, "vim.md", TASK.format(title="Vim"))
        planned = wait_planned(path)
        looks = service.stats.looks
        text = path.read_text()
        backup = path.with_name("vim.md~")
        os.rename(path, backup)  # vim: backup by rename, write a new file, delete the backup
        with path.open("w") as handle:
            handle.write(text)
        backup.unlink()
        wait_for(lambda: service.stats.looks > looks, what="the service to look again")
        wait_for(lambda: not service.settling, what="settling to finish")
    assert note(path).meta["planned_at"] == planned.meta["planned_at"]
    assert len(events(vault, "planned", planned.task_id)) == 1


def test_a_body_edited_before_the_run_is_planned_again(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault, auto_execute_types="none")):
        path = drop(vault, tmp_path, "edit.md", TASK.format(title="Edit"))
        moved = vault.folder(Folder.PENDING_APPROVAL) / "edit.md"
        first = wait_status(moved, "pending_approval")
        workdir = vault.root.parent / "apps" / "tasks" / str(first.task_id)
        assert not workdir.exists(), "no work dir for a task that waits for a person"
        text = moved.read_text().replace("- [ ] second", "- [ ] second\n- [ ] third")
        moved.write_text(text)  # the person edits the note, then approves it by moving it
        moved.rename(vault.folder(Folder.APPROVED) / "edit.md")
        wait_for(lambda: len(events(vault, "planned", first.task_id)) == 2, what="a new plan")
    plan = (vault.folder(Folder.PLANS) / f"PLAN_edit ({first.task_id}).md").read_text()
    assert "3. third" in plan
    approved = note(path)  # back in Needs_Action, approved by the person's move
    assert approved.meta["approved_by"] and approved.meta["status"] in ("planned", "executing")
    assert events(vault, "copy of a task note") == []


def test_empty_untitled_then_rename_and_type(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault)) as service:
        untitled = vault.folder(Folder.NEEDS_ACTION) / "Untitled.md"
        untitled.touch()  # Obsidian's "New note"
        wait_for(lambda: untitled in service.index.entries, what="the empty note looked at")
        assert untitled.read_bytes() == b"", "an empty note is waited on, never written"
        real = untitled.with_name("Shop page.md")
        untitled.rename(real)  # the person types a title
        with real.open("w") as handle:  # ... and the text (autosave writes in place)
            handle.write(TASK.format(title="Shop page"))
        wait_planned(real)
    assert not untitled.exists()


def test_syncthing_temp_file_renamed_over_the_note(vault: Vault) -> None:
    with running_service(svc_config(vault)):
        folder = vault.folder(Folder.NEEDS_ACTION)
        temp = folder / ".syncthing.synced.md.tmp"
        temp.write_text(TASK.format(title="Synced"))
        target = folder / "synced.md"
        os.rename(temp, target)
        wait_planned(target)


def test_duplicate_and_reordered_events_plan_once(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault)) as service:
        path = drop(vault, tmp_path, "dup.md", TASK.format(title="Dup"))
        for kind in [Kind.ARRIVED, Kind.WRITTEN, Kind.GONE, Kind.ARRIVED, Kind.ARRIVED]:
            service.inbox.put(Hint(path, kind))
        planned = wait_planned(path)
        for kind in [Kind.WRITTEN, Kind.ARRIVED, Kind.GONE, Kind.ARRIVED]:
            service.inbox.put(Hint(path, kind))
        looks = service.stats.looks
        wait_for(lambda: service.stats.looks >= looks + 1, what="the extra events handled")
        wait_for(lambda: not service.settling, what="settling to finish")
    assert len(events(vault, "planned", planned.task_id)) == 1
    assert len(events(vault, "queued", planned.task_id)) == 1


def test_inbox_drop_becomes_a_file_drop_task(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault)):
        staged = tmp_path / "invoice.pdf"
        staged.write_bytes(b"%PDF-1.4 not really")
        staged.rename(vault.folder(Folder.DROP) / "invoice.pdf")
        task = vault.folder(Folder.PENDING_APPROVAL) / "Dropped invoice.md"
        held = wait_status(task, "pending_approval")
    assert (vault.folder(Folder.INBOX) / "invoice.pdf").read_bytes() == b"%PDF-1.4 not really"
    assert held.meta["type"] == "file_drop"
    assert "[[Inbox/invoice.pdf]]" in held.body
    assert (
        list(vault.folder(Folder.DROP).iterdir()) == [vault.folder(Folder.DROP) / ".gitkeep"]
        or list(vault.folder(Folder.DROP).iterdir()) == []
    )


def test_refused_note_is_listed_and_the_service_keeps_going(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault)) as service:
        bad = drop(vault, tmp_path, "bad.md", "---\ntitle: [oops\n---\n")
        good = drop(vault, tmp_path, "good.md", TASK.format(title="Good"))
        wait_planned(good)
        wait_for(lambda: bad in service.index.refused, what="the refusal")
        wait_for(lambda: "bad.md" in vault.dashboard.read_text(), what="the dashboard")
    assert bad.read_text() == "---\ntitle: [oops\n---\n"
    (entry,) = events(vault, "note refused")
    assert entry["error"].startswith("frontmatter is not valid YAML at line 3")
    assert "Needs attention" in vault.dashboard.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering the kernel's inotify queue needs root")
def test_an_event_queue_overflow_is_noticed_and_rescanned(vault: Vault, tmp_path: Path) -> None:
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    original = knob.read_text()
    knob.write_text("1\n")  # the limit is taken when the watch is created
    try:
        with running_service(svc_config(vault)) as service:
            knob.write_text(original)
            staging = tmp_path / "burst"
            staging.mkdir()
            for i in range(500):
                (staging / f"n{i}.md").write_text(TASK.format(title=f"n{i}"))
            target = vault.folder(Folder.NEEDS_ACTION)
            # Another process renames them in as fast as it can: the queue of one event overflows.
            mover = (
                "import os, sys\n"
                "src, dst = sys.argv[1], sys.argv[2]\n"
                "for name in sorted(os.listdir(src)):\n"
                "    os.rename(os.path.join(src, name), os.path.join(dst, name))\n"
            )
            subprocess.run(
                [sys.executable, "-c", mover, str(staging), str(target)], check=True, timeout=60
            )
            paths = [target / f"n{i}.md" for i in range(500)]
            wait_for(lambda: all(_was_planned(p) for p in paths), 60, "all planned")
            assert service.stats.overflows >= 1 and service.stats.rescans >= 1
    finally:
        knob.write_text(original)
    assert events(vault, "rescan after event-queue overflow")


def _was_planned(path: Path) -> bool:
    try:
        return bool(note(path).meta.get("planned_at"))
    except (FileNotFoundError, ValueError):
        return False


def _cli_env(vault: Vault) -> dict[str, str]:
    return {
        **os.environ,
        "AI_EMPLOYEE_VAULT": str(vault.root),
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": "sleep 60",
        "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
    }


def test_a_second_service_on_the_same_vault_is_refused(vault: Vault) -> None:
    first = service_process(vault, _cli_env(vault))
    try:
        second = subprocess.run(
            [sys.executable, "-m", "ai_employee", "run", "--vault", str(vault.root)],
            env=_cli_env(vault),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 6
        assert f"already runs on {vault.root} (pid {first.pid} since" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        assert first.stderr is not None
        first.stderr.close()


def test_sigterm_stops_the_service_cleanly(vault: Vault, tmp_path: Path) -> None:
    proc = service_process(vault, _cli_env(vault))
    path = drop(vault, tmp_path, "before stop.md", TASK.format(title="before stop"))
    wait_planned(path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert proc.stderr is not None
    rest = proc.stderr.read()
    proc.stderr.close()
    assert '"service stopped"' in rest
    assert not (vault.machinery / "tmp").exists() or list((vault.machinery / "tmp").iterdir()) == []


def test_saves_in_place_wait_for_quiet_before_the_note_is_read(
    vault: Vault, tmp_path: Path
) -> None:
    """Obsidian saves while a person types: each save is complete but the task is not; only a
    note quiet for settle_seconds is read (a rename, by contrast, is read at once)."""
    with running_service(svc_config(vault, settle_seconds=1.0)) as service:
        path = drop(vault, tmp_path, "typing.md", "---\nstatus: draft\n---\nBuild a sh")
        wait_for(lambda: path in service.index.entries, what="the draft looked at")
        path.write_text("---\ntype: claude_app\n---\nBuild a shop page with a cart.\n")
        wait_for(lambda: path in service.settling, what="the save to be settling")
        assert "planned_at" not in note(path).meta, "read before it was quiet"
        planned = wait_planned(path)
    assert planned.body == "Build a shop page with a cart.\n"


def test_polling_observer_for_network_folders(vault: Vault, tmp_path: Path) -> None:
    with running_service(svc_config(vault, polling=True)):
        path = drop(vault, tmp_path, "Polled.md", TASK.format(title="Polled"))
        wait_planned(path)
        in_place = vault.folder(Folder.NEEDS_ACTION) / "Written.md"
        in_place.write_text(TASK.format(title="Written"))
        wait_planned(in_place)


@pytest.mark.parametrize(
    ("rel", "acted_on"),
    [
        ("Needs_Action/task.md", True),
        ("Approved/task.md", True),
        ("Inbox/Drop/photo.jpg", True),
        ("Needs_Action/task.txt", False),
        ("Needs_Action/.task.md.swp", False),
        ("Needs_Action/task.md~", False),
        ("Needs_Action/4913", False),
        ("Needs_Action/___jb_tmp___", False),
        ("Needs_Action/.syncthing.task.md.tmp", False),
        (".obsidian/workspace.md", False),
        (".trash/Needs_Action/x.md", False),
        (".ai-employee/tmp/.w-1.tmp", False),
        ("Done/task.md", False),
        ("Plans/PLAN_task.md", False),
        ("Needs_Action/sub/task.md", False),
    ],
)
def test_the_path_filter(vault: Vault, rel: str, acted_on: bool) -> None:
    from ai_employee.watching.watcher import relevant

    assert relevant(vault.root, vault.root / rel) is acted_on


def test_a_replaced_watched_folder_is_watched_again(vault: Vault, tmp_path: Path) -> None:
    """Only the folders we act on are watched, one watch each: when a sync tool or a person
    replaces Needs_Action/ (or Inbox/Drop/), the new folder is watched and its notes planned."""
    with running_service(svc_config(vault)) as service:
        needs_action = vault.folder(Folder.NEEDS_ACTION)
        needs_action.rename(tmp_path / "old Needs_Action")
        replacement = tmp_path / "new Needs_Action"
        replacement.mkdir()
        (replacement / "came with it.md").write_text(TASK.format(title="came with it"))
        replacement.rename(needs_action)
        wait_planned(needs_action / "came with it.md")
        # The new folder's own events are seen: a note renamed in afterwards is planned too.
        later = drop(vault, tmp_path, "later.md", TASK.format(title="later"))
        wait_planned(later)
        assert service.watcher is not None and needs_action in service.watcher.watched
        drop_folder = vault.folder(Folder.DROP)
        drop_folder.rmdir()
        drop_folder.mkdir()
        (tmp_path / "report.csv").write_text("a,b\n1,2\n")
        (tmp_path / "report.csv").rename(drop_folder / "report.csv")
        wait_for(lambda: (vault.folder(Folder.INBOX) / "report.csv").exists(), what="drop taken")
    assert events(vault, "folders watched again")


def test_a_folder_renamed_onto_a_watched_name_is_watched_under_that_name(
    vault: Vault, tmp_path: Path
) -> None:
    """A watch follows an inode: Rejected/ renamed onto Needs_Action/ brings its watch along.
    Giving up the watch of the vanished Rejected/ must not remove the one Needs_Action/ now
    uses, or notes dropped there later would never be seen."""
    with running_service(svc_config(vault)):
        needs_action = vault.folder(Folder.NEEDS_ACTION)
        shutil.rmtree(needs_action)
        vault.folder(Folder.REJECTED).rename(needs_action)
        wait_for(lambda: events(vault, "folders watched again"), what="watched again")
        later = drop(vault, tmp_path, "later.md", TASK.format(title="later"))
        wait_planned(later)


def test_the_service_writes_no_events_for_itself_outside_the_watched_folders(
    vault: Vault, tmp_path: Path
) -> None:
    """Logs/, Plans/ and .ai-employee/ are not watched: a planned note costs a few events, all
    in Needs_Action/ (the arrival, and our own swaps of the note)."""
    seen: list[Hint] = []
    with running_service(svc_config(vault)) as service:
        original = service.settling.take

        def spy(hint: Hint, now: float) -> bool:
            seen.append(hint)
            return original(hint, now)

        service.settling.take = spy  # type: ignore[method-assign]
        path = drop(vault, tmp_path, "quiet.md", TASK.format(title="quiet"))
        wait_planned(path)
        wait_for(lambda: len(seen) >= 3, what="the swap's events")
    folders = {hint.path.parent for hint in seen}
    assert folders == {vault.folder(Folder.NEEDS_ACTION)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_on_linux_events_come_straight_from_inotify_not_through_observer_threads(
    vault: Vault,
) -> None:
    with running_service(svc_config(vault)) as service:
        assert service.watcher is not None
        assert service.watcher.source == "InotifySource"
        # watchdog's observer would add an emitter thread per watch and a dispatcher thread.
        observers = [t for t in threading.enumerate() if isinstance(t, EventEmitter | BaseObserver)]
        assert observers == []
        path = vault.folder(Folder.NEEDS_ACTION) / "straight.md"
        path.write_text(TASK.format(title="straight"))
        wait_for(lambda: _was_planned(path), 10, "planned through the inotify reader")
