"""Notes on disk: edits that never lose a person's save, safe reads, moves that never overwrite."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from ai_employee.base import fsops
from ai_employee.base.errors import NoteRefused
from ai_employee.notes.notefile import (
    NoteGone,
    move_note,
    read_note,
    read_snapshot,
    rewrite_and_move,
    rewrite_note,
    update_note,
)
from ai_employee.notes.taskfile import edit_note_text, parse_note
from ai_employee.notes.vault import Folder, Vault

from .helpers import wait_for


def _update(vault: Vault, path: Path, changes: dict[str, object | None], **kw: object) -> bool:
    placed = update_note(
        path, changes, tmp_dir=vault.tmp, vault_root=vault.root, max_bytes=1 << 20, **kw
    )
    return placed is not None


def test_an_edit_names_the_file_it_placed_so_our_own_write_is_recognised(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "mine.md"
    note.write_text("---\ntitle: Mine\n---\nbody\n")
    before = os.lstat(note)
    placed = update_note(
        note, {"status": "planned"}, tmp_dir=vault.tmp, vault_root=vault.root, max_bytes=1 << 20
    )
    assert placed is not None
    after = os.lstat(note)
    assert placed.signature == (after.st_ino, after.st_size, after.st_mtime_ns)
    assert placed.inode != before.st_ino
    # A move keeps it (the service moves notes it just wrote); a person's save changes it.
    moved = vault.folder(Folder.DONE) / "mine.md"
    note.rename(moved)
    st = os.lstat(moved)
    assert placed.signature == (st.st_ino, st.st_size, st.st_mtime_ns)
    with moved.open("a") as handle:
        handle.write("a person's line\n")
    st = os.lstat(moved)
    assert placed.signature != (st.st_ino, st.st_size, st.st_mtime_ns)


def _record_and_move(vault: Vault, path: Path, to: Any) -> tuple[object, Path | None]:
    return rewrite_and_move(
        path,
        lambda text: edit_note_text(text, {"status": "done"}),
        to,
        tmp_dir=vault.tmp,
        vault_root=vault.root,
        max_bytes=1 << 20,
    )


def test_an_edit_and_its_move_are_one_step_and_a_person_moving_it_first_wins(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of a run: the note is edited, then moved to the folder the edit decided, and
    each folder is synced once it holds its final state."""
    done, todo = vault.folder(Folder.DONE), vault.folder(Folder.NEEDS_ACTION)
    synced: list[tuple[str, bool]] = []
    real_sync = fsops.fsync_dir

    def sync(folder: Path) -> None:
        synced.append((folder.name, (folder / "a.md").exists()))
        real_sync(folder)

    monkeypatch.setattr(fsops, "fsync_dir", sync)
    (todo / "a.md").write_text("---\ntitle: A\nstatus: executing\n---\nmine\n")
    placed, where = _record_and_move(vault, todo / "a.md", lambda: done)
    assert where == done / "a.md" and placed is not None and not (todo / "a.md").exists()
    assert parse_note(where.read_text(), "a.md").meta["status"] == "done"
    assert where.read_text().endswith("mine\n") and not list(vault.tmp.iterdir())
    assert sorted(synced) == [("Done", True), ("Needs_Action", False)]  # after the move

    synced.clear()
    (todo / "b.md").write_text("---\ntitle: B\nstatus: executing\n---\n")
    _, where = _record_and_move(vault, todo / "b.md", lambda: None)  # stays (a retry)
    assert where == todo / "b.md" and "status: done" in where.read_text()
    assert [name for name, _ in synced] == ["Needs_Action"]

    (todo / "c.md").write_text("---\ntitle: C\nstatus: executing\n---\n")
    elsewhere = vault.folder(Folder.APPROVED) / "c.md"

    def moved_by_a_person() -> Path:
        (todo / "c.md").rename(elsewhere)  # between our edit and our move
        return done

    _, where = _record_and_move(vault, todo / "c.md", moved_by_a_person)
    assert where is None and "status: done" in elsewhere.read_text()
    assert not (done / "c.md").exists()


@pytest.mark.parametrize("how", ["by rename", "in place"])
def test_a_save_between_our_edit_and_our_move_gets_our_end_written_again(
    vault: Vault, how: str
) -> None:
    """An editor writing its stale buffer back just as a run ends: the save lands after our
    edit and before our move, so the move takes the person's version (without our end) into a
    folder nobody watches. It must get our end written onto it there, keeping their bytes."""
    done, todo = vault.folder(Folder.DONE), vault.folder(Folder.NEEDS_ACTION)
    note = todo / "a.md"
    stale = "---\ntitle: A\nstatus: executing\n---\nmine, edited\n"
    note.write_text("---\ntitle: A\nstatus: executing\n---\nmine\n")
    seen: list[str] = []

    def transform(text: str) -> str:
        seen.append(text)
        return edit_note_text(text, {"status": "done"})

    def saved_by_a_person() -> Path:
        if len(seen) > 1:  # they saved once
            return done
        if how == "by rename":
            (todo / ".a.md.swp").write_text(stale)
            os.replace(todo / ".a.md.swp", note)
        else:
            with note.open("w") as handle:  # same file, new content
                handle.write(stale)
        return done

    _, where = rewrite_and_move(
        note,
        transform,
        saved_by_a_person,
        tmp_dir=vault.tmp,
        vault_root=vault.root,
        max_bytes=1 << 20,
    )
    assert where == done / "a.md" and not note.exists()
    assert where.read_text() == "---\ntitle: A\nstatus: done\n---\nmine, edited\n"
    assert seen[-1] == stale  # decided again on their version
    assert not list(vault.tmp.iterdir())


def test_update_keeps_mode_and_leaves_no_temp_files(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "a.md"
    note.write_text("---\ntitle: A\n---\nbody\n")
    note.chmod(0o640)
    assert _update(vault, note, {"status": "planned"})
    assert note.read_text() == "---\ntitle: A\nstatus: planned\n---\nbody\n"
    assert oct(note.stat().st_mode & 0o777) == "0o640"
    assert list(vault.tmp.iterdir()) == []
    assert not _update(vault, note, {"status": "planned"}), "no change, no write"


def test_a_note_saved_between_our_read_and_write_is_merged_not_lost(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "a.md"
    note.write_text("---\ntitle: A\n---\nfirst\n")
    calls = []

    def transform(text: str) -> str:
        calls.append(text)
        if len(calls) == 1:  # a person saves (atomic rename) right after our read
            other = note.with_name(".a.md.tmp")
            other.write_text("---\ntitle: A\nmine: kept\n---\nsecond\n")
            os.replace(other, note)
        return edit_note_text(text, {"status": "planned"})

    rewrite_note(note, transform, tmp_dir=vault.tmp, vault_root=vault.root, max_bytes=1 << 20)
    assert note.read_text() == "---\ntitle: A\nmine: kept\nstatus: planned\n---\nsecond\n"
    assert len(calls) == 2
    assert list(vault.tmp.iterdir()) == []


def test_an_in_place_save_while_we_hold_the_note_is_merged(vault: Vault) -> None:
    """VS Code style (truncate and rewrite in place) saving while we edit: it waits for our
    lease, we notice it waiting, put its file back, and apply our keys on its save."""
    note = vault.folder(Folder.NEEDS_ACTION) / "a.md"
    note.write_text("---\ntitle: A\n---\nfirst\n")
    calls = []

    def person_saves() -> None:
        with note.open("r+") as handle:
            handle.truncate(0)
            handle.write("---\ntitle: B\n---\nrewritten\n")

    saver = threading.Thread(target=person_saves)

    def transform(text: str) -> str:
        calls.append(text)
        if len(calls) == 1:
            saver.start()
            wait_for(lambda: "BREAKING" in Path("/proc/locks").read_text(), what="a lease break")
        return edit_note_text(text, {"attempts": 1})

    rewrite_note(note, transform, tmp_dir=vault.tmp, vault_root=vault.root, max_bytes=1 << 20)
    saver.join(timeout=10)
    assert note.read_text() == "---\ntitle: B\nattempts: 1\n---\nrewritten\n"
    assert len(calls) == 2
    assert list(vault.tmp.iterdir()) == []


def test_a_note_deleted_before_our_write_is_not_recreated(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "a.md"
    note.write_text("---\ntitle: A\n---\n")

    def transform(text: str) -> str:
        note.unlink()
        return edit_note_text(text, {"status": "planned"})

    with pytest.raises(NoteGone):
        rewrite_note(note, transform, tmp_dir=vault.tmp, vault_root=vault.root, max_bytes=1 << 20)
    assert not note.exists()
    assert list(vault.tmp.iterdir()) == []


def person_rewrites(path: str, count: int, progress: Any, go: Any) -> None:
    """A person's editor in another process: read, change its own key and line, save; 1,000 times.

    Even saves rewrite the file in place (VS Code, git); odd ones save to a temp file and rename
    it over the note (vim, Obsidian's atomic save, Syncthing).
    """
    note = Path(path)
    go.wait()
    for i in range(count):
        text = note.read_text()
        text = re.sub(r"(?m)^counter: -?\d+$", f"counter: {i}", text)
        text = re.sub(r"(?m)^person version -?\d+$", f"person version {i}", text)
        if i % 2 == 0:
            with note.open("r+") as handle:
                handle.truncate(0)
                handle.write(text)
        else:
            tmp = note.with_name(f".{note.name}.{i}.swp")
            tmp.write_text(text)
            os.replace(tmp, note)
        progress.value = i


def test_a_second_process_rewriting_1000_times_never_loses_a_write(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "busy.md"
    note.write_text("---\ntitle: Busy  # mine\ncounter: -1\n---\nperson version -1\n")
    ctx = multiprocessing.get_context("spawn")
    progress, go = ctx.Value("i", -1), ctx.Event()
    writer = ctx.Process(target=person_rewrites, args=(str(note), 1000, progress, go))
    writer.start()
    go.set()
    ours, undone = 0, []
    while writer.is_alive() or ours < 50:
        ours += 1
        completed_before = progress.value
        _update(vault, note, {"attempts": ours, "status": "executing"})
        text = read_snapshot(note, vault.root, 1 << 20).data.decode()
        counter = parse_note(text, "busy.md").meta["counter"]
        if counter < completed_before:
            undone.append((completed_before, counter))
    writer.join(timeout=60)
    assert writer.exitcode == 0
    assert undone == [], "our edit replaced a person's newer save"
    # A person's save made from a buffer read before our edit drops our keys; the service heals
    # that on the next event by applying its keys again. Here, once more by hand:
    _update(vault, note, {"attempts": ours, "status": "executing"})
    text = note.read_text()
    assert text == (
        f"---\ntitle: Busy  # mine\ncounter: 999\nstatus: executing\nattempts: {ours}\n---\n"
        "person version 999\n"
    )
    assert ours >= 50
    assert [p.name for p in vault.tmp.iterdir()] == []


def test_concurrent_updates_from_two_threads_keep_both_keys(vault: Vault) -> None:
    note = vault.folder(Folder.NEEDS_ACTION) / "a.md"
    note.write_text("---\ntitle: A\n---\n")

    def bump(key: str) -> None:
        for i in range(200):
            _update(vault, note, {key: i})

    threads = [threading.Thread(target=bump, args=(k,)) for k in ("attempts", "exit_code")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    meta = parse_note(note.read_text(), "a.md").meta
    assert meta["attempts"] == 199 and meta["exit_code"] == 199


def test_move_never_overwrites(vault: Vault) -> None:
    done = vault.folder(Folder.DONE)
    (done / "task.md").write_text("older task\n")
    first = vault.folder(Folder.NEEDS_ACTION) / "task.md"
    first.write_text("newer task\n")
    moved = move_note(first, done)
    assert moved.name == "task (2).md"
    assert (done / "task.md").read_text() == "older task\n"
    assert moved.read_text() == "newer task\n"
    with pytest.raises(NoteGone):
        move_note(first, done)


def test_a_move_into_a_deleted_folder_makes_it_again_and_a_gone_note_stays_gone(
    vault: Vault,
) -> None:
    done = vault.folder(Folder.DONE)
    shutil.rmtree(done)
    note = vault.folder(Folder.NEEDS_ACTION) / "task.md"
    note.write_text("the task\n")
    moved = move_note(note, done)
    assert moved == done / "task.md" and moved.read_text() == "the task\n"
    shutil.rmtree(done)
    with pytest.raises(NoteGone):  # nothing to move: the folder is not made for nothing
        move_note(note, done)
    assert not done.exists()


def test_refused_reads_leave_the_file_untouched(vault: Vault, tmp_path: Path) -> None:
    folder = vault.folder(Folder.NEEDS_ACTION)
    outside = tmp_path / "secret.md"
    outside.write_text("---\ntitle: secret\n---\n")
    (folder / "link-out.md").symlink_to(outside)
    inside_target = folder / "real.md"
    inside_target.write_text("---\ntitle: real\n---\n")
    (folder / "link-in.md").symlink_to(inside_target)
    os.mkfifo(folder / "pipe.md")
    (folder / "huge.md").write_bytes(b"x" * 2048)
    cases = {
        "link-out.md": "outside the vault; not followed",
        "link-in.md": "notes must be regular files",
        "pipe.md": "not a regular file (a FIFO, socket or device)",
        "huge.md": "over max_note_bytes (1,024)",
    }
    for name, reason in cases.items():
        with pytest.raises(NoteRefused) as caught:
            read_note(folder / name, vault.root, 1024)
        assert reason in caught.value.reason, name
        assert caught.value.path == str(folder / name)
    assert outside.read_text() == "---\ntitle: secret\n---\n"


def test_temp_files_are_swept(vault: Vault) -> None:
    fsops.write_temp(vault.tmp, b"left by a crash")
    assert vault.sweep_tmp() == 1
    assert list(vault.tmp.iterdir()) == []


def test_a_save_made_while_we_put_a_persons_version_back_is_never_deleted(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person saves (by rename) before our swap, and again before each of our swaps back: the
    newest save must end up in the note, with our keys on it, and no version may be deleted
    unseen (an earlier version of the swap back deleted the save made before its second swap)."""
    from ai_employee.base import fsops

    note = vault.folder(Folder.NEEDS_ACTION) / "saves.md"
    note.write_text("---\ntitle: S\n---\nversion 1\n")
    real_exchange = fsops.exchange
    calls = 0

    def person_saves_then_exchange(a: Path, b: Path) -> bool:
        nonlocal calls
        calls += 1
        if calls <= 3:  # before our swap and before the next two swaps back
            tmp = note.with_name(f".saves.md.{calls}.swp")
            tmp.write_text(f"---\ntitle: S\n---\nversion {calls + 1}\n")
            os.replace(tmp, note)
        return real_exchange(a, b)

    monkeypatch.setattr(fsops, "exchange", person_saves_then_exchange)
    assert _update(vault, note, {"status": "planned"})
    assert note.read_text() == "---\ntitle: S\nstatus: planned\n---\nversion 4\n"
    assert calls >= 4
    assert list(vault.tmp.iterdir()) == []
    assert sorted(p.name for p in note.parent.iterdir()) == ["saves.md"]


def test_touch_makes_a_missing_file_and_folder_but_never_truncates(tmp_path: Path) -> None:
    transcript = tmp_path / "Logs" / "tasks" / "t1.jsonl"
    fsops.touch(transcript)
    assert transcript.read_bytes() == b""
    transcript.write_text('{"kind": "start"}\n')
    fsops.touch(transcript)  # a second plan of the same task (a retry) keeps what is there
    assert transcript.read_text() == '{"kind": "start"}\n'


def test_read_fd_reads_to_the_end_when_the_filesystem_hands_out_short_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(bytes(range(256)) * 4)
    real_pread = os.pread
    monkeypatch.setattr(fsops.os, "pread", lambda fd, n, off: real_pread(fd, min(n, 10), off))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fsops.read_fd(fd, 1024) == bytes(range(256)) * 4
    finally:
        os.close(fd)


@pytest.mark.parametrize("why", ["not a local filesystem", "a writer got in after our check"])
def test_the_swapped_out_file_is_read_back_unless_the_lease_can_vouch_for_it(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """Trusting the lease (same inode, no break) is only for local filesystems and only while no
    writer has the file open; otherwise the displaced file is read and compared, as before."""
    import ai_employee.notes.notefile as notefile

    note = vault.folder(Folder.NEEDS_ACTION) / "n.md"
    note.write_text("---\ntitle: n\n---\nbody\n")
    read_back = []
    real = notefile.read_displaced
    monkeypatch.setattr(notefile, "read_displaced", lambda *a: read_back.append(1) or real(*a))
    fd = os.open(note, os.O_RDONLY)
    try:
        local = fsops.leases_trusted(fd, os.fstat(fd).st_dev)
    finally:
        os.close(fd)
    _update(vault, note, {"attempts": 1})
    # On a local disk with nobody writing the lease vouches for it; elsewhere it is read back.
    assert read_back == ([] if local else [1])
    read_back.clear()
    if why == "not a local filesystem":
        monkeypatch.setattr(fsops, "leases_trusted", lambda fd, dev: False)
    else:
        monkeypatch.setattr(fsops, "no_writers_now", lambda fd: False)
    _update(vault, note, {"attempts": 2})
    assert read_back == [1]
    assert "attempts: 2" in note.read_text()


def test_no_writers_now_sees_an_open_writer(tmp_path: Path) -> None:
    path = tmp_path / "n.md"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        writer = os.open(path, os.O_WRONLY)
        assert fsops.no_writers_now(fd) is False
        os.close(writer)
        assert fsops.no_writers_now(fd) is True
    finally:
        os.close(fd)


def test_leases_are_trusted_on_local_disks_only(tmp_path: Path) -> None:
    fd = os.open("/proc/self", os.O_RDONLY)
    try:
        assert fsops.leases_trusted(fd, os.fstat(fd).st_dev) is False  # procfs: not a disk
    finally:
        os.close(fd)
