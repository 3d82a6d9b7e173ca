"""A full disk and a read-only one, for real: a small tmpfs the vault (or apps_dir) lives on,
filled to the last byte or remounted read-only while the service plans, claims, commits and
records. No note is ever cut short or half-written (the old text stays), the error is said
once (not once per write), the page and `doctor` say it, Dashboard.md says it when it can be
written, and the work goes on by itself once space or write access is back: nothing lost,
nothing run twice at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ai_employee.base.config import load_config
from ai_employee.base.logs import DailyJsonlSink
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.web.app import create_app
from ai_employee.surfaces.web.security import Guard

from .helpers import wait_for
from .service_harness import (
    cli,
    note,
    service_process,
    status_of,
    stop_service,
    wait_status,
)

FAKE = Path(__file__).with_name("fake_agent.py")
SIZE = "16m"
CANNOT = '"cannot write to the vault"'
AGAIN = '"the vault can be written again"'


def _as_root(*argv: str) -> list[str]:
    """`mount` needs root: the test command runs as root (CI) or with `sudo -n`."""
    if os.geteuid() == 0:
        return list(argv)
    return ["sudo", "-n", *argv]


class SmallDisk:
    """A tmpfs of its own, mounted for one test, unmounted after."""

    def __init__(self, where: Path) -> None:
        self.root = where
        where.mkdir()
        mount = _as_root(
            "mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0777", "tmpfs", str(where)
        )
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (
            f"cannot mount a tmpfs ({done.stderr.strip()}): these tests need root or sudo -n"
        )
        self.filler = where / "filler"

    def fill(self) -> None:
        """Every byte taken (the filler grows until the kernel says ENOSPC; unbuffered, so
        nothing is left to flush at its close)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 65536)  # a short write, then ENOSPC
        except OSError as err:
            assert err.errno == 28, err  # ENOSPC
        finally:
            os.close(fd)
        assert os.statvfs(self.root).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink()

    def read_only(self) -> None:
        """Read-only from now on: a bind of the disk over itself, remounted read-only (the
        service's log file, open for writing, would make the tmpfs itself refuse a remount)."""
        root = str(self.root)
        subprocess.run(_as_root("mount", "--bind", root, root), check=True)
        remount = _as_root("mount", "-o", "remount,bind,ro", root)
        # Busy while a file is open for writing through the new bind: tried again until not.
        wait_for(lambda: subprocess.run(remount, capture_output=True).returncode == 0, 10)

    def writable(self) -> None:
        subprocess.run(_as_root("umount", str(self.root)), check=True)

    def unmount(self) -> None:
        for _ in range(2):  # the read-only bind, if a test left it, then the tmpfs
            subprocess.run(
                _as_root("umount", "-l", str(self.root)), check=False, capture_output=True
            )


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "disk")
    try:
        yield small
    finally:
        small.unmount()


class Service:
    """`ai-employee run` on the vault, its stderr (the JSON lines the journal gets) kept."""

    def __init__(self, vault: Vault, apps: Path, ledger: Path) -> None:
        env = {
            "AI_EMPLOYEE_AGENT": "command",
            "AI_EMPLOYEE_AGENT_COMMAND": f"{sys.executable} {FAKE} {{task_id}} {{workdir}} "
            "{prompt_file}",
            "AI_EMPLOYEE_APPS_DIR": str(apps),
            "AI_EMPLOYEE_MAX_PARALLEL": "1",
            "AI_EMPLOYEE_SWEEP_SECONDS": "1",
            "AI_EMPLOYEE_SETTLE_SECONDS": "0.1",
            "AI_EMPLOYEE_RETRY_INITIAL_SECONDS": "0",
            "AI_EMPLOYEE_RETRY_MAX_SECONDS": "0",
            "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
            "FAKE_LEDGER": str(ledger),
        }
        self.proc = service_process(vault, env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, event: str) -> int:
        return sum(event in line for line in list(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._reader.join(10)
        stop_service(self.proc)


def task(title: str, behave: str) -> str:
    return (
        f"---\ntitle: {title}\ntype: claude_app\nlanguage: py\n"
        f"app: {title.lower().replace(' ', '-')}\n---\nbehave: {behave}\n"
    )


def one_runs_one_waits(vault: Vault, behave: str) -> tuple[Path, Path]:
    """First.md running (its agent does `behave`), Second.md planned behind it (one slot)."""
    first = vault.folder(Folder.NEEDS_ACTION) / "First.md"
    first.write_text(task("First", behave))
    wait_for(lambda: status_of(first) == "executing", 15, "the first task to run")
    second = vault.folder(Folder.NEEDS_ACTION) / "Second.md"
    second.write_text(task("Second", "ok"))
    wait_for(lambda: status_of(second) == "planned", 15, "the second task to wait")
    return first, second


def made_vault(root: Path) -> Vault:
    done = cli(Vault(root), "init")
    assert done.returncode == 0, done.stderr
    return Vault(root)


def page_says(vault: Vault, apps: Path) -> list[str]:
    config = load_config(vault.root, env={"AI_EMPLOYEE_APPS_DIR": str(apps)})
    app = create_app(config, Guard("127.0.0.1", 8787, None))
    with TestClient(app, base_url="http://127.0.0.1:8787") as client:
        status = client.get("/status").json()
        board = client.get("/").text
    assert all(f"Cannot write: {words}" in board for words in status["disk"])
    return list(status["disk"])


def doctor_says(vault: Vault, apps: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ai_employee", "doctor", "--vault", str(vault.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            **os.environ,
            "AI_EMPLOYEE_APPS_DIR": str(apps),
            "AI_EMPLOYEE_AGENT": "command",
            "AI_EMPLOYEE_AGENT_COMMAND": "true",
        },
    )
    return done.stdout


def runs_in(ledger: Path) -> list[tuple[str, str]]:
    """(task_id, start|end) in order: two starts of one task with no end between = twice at once."""
    pairs = [(line.split()[0], line.split()[1]) for line in ledger.read_text().splitlines()]
    live: set[str] = set()
    for task_id, event in pairs:
        if event == "start":
            assert task_id not in live, f"{task_id} ran twice at once"
            live.add(task_id)
        else:
            live.discard(task_id)
    return pairs


def test_a_full_disk_while_a_note_waits_to_be_planned(disk: SmallDisk, tmp_path: Path) -> None:
    vault = made_vault(disk.root / "vault")
    apps, ledger = disk.root / "apps", tmp_path / "ledger"
    ledger.touch()
    service = Service(vault, apps, ledger)
    try:
        text = task("Plan me", "ok")
        staged = disk.root / "staged.md"
        staged.write_text(text)
        disk.fill()
        staged.rename(vault.folder(Folder.NEEDS_ACTION) / "Plan me.md")  # a sync tool's rename
        wait_for(lambda: service.said(CANNOT), 15, "the service to say it cannot write")
        path = vault.folder(Folder.NEEDS_ACTION) / "Plan me.md"
        assert path.read_text() == text, "the note is as the person wrote it"
        assert not list(vault.folder(Folder.PLANS).iterdir())
        says = page_says(vault, apps)
        assert len(says) == 1 and "full disk: 0 B free" in says[0], says
        assert "FAIL the vault" in doctor_says(vault, apps)
        status = cli(vault, "status")
        assert f"disk: the vault ({vault.root}) is on a full disk: 0 B free" in status.stdout
        assert "free space on that disk (work waits until then)" in status.stdout
        seen = service.said(CANNOT)
        disk.free()
        done = vault.folder(Folder.DONE) / "Plan me.md"
        wait_for(lambda: status_of(done) == "done", 20, "the task done once space is back")
        assert service.said(CANNOT) == seen == 1, "said once, not once per write"
        assert service.said(AGAIN) == 1
        assert page_says(vault, apps) == []
        assert "ok   the vault's disk takes writes" in doctor_says(vault, apps)
        assert "disk:" not in cli(vault, "status").stdout
        assert [e for _, e in runs_in(ledger)] == ["start", "end"]
    finally:
        service.stop()


def test_a_full_disk_at_the_claim_the_commit_and_the_record(
    disk: SmallDisk, tmp_path: Path
) -> None:
    """One task's agent has done its work when the disk fills: its round's commit and the
    record of its end are refused; the next task's claim is refused. Space back: both done."""
    vault = made_vault(disk.root / "vault")
    apps, ledger, gate = disk.root / "apps", tmp_path / "ledger", tmp_path / "gate"
    ledger.touch()
    service = Service(vault, apps, ledger)
    try:
        first, second = one_runs_one_waits(vault, f"written-gate {gate}")
        wait_for(lambda: (apps / "py" / "first" / "result.txt").exists(), 15, "the work done")
        before = {p: p.read_bytes() for p in (first, second)}
        disk.fill()
        gate.touch()  # the agent exits 0: commit, record, the next claim all meet a full disk
        wait_for(lambda: service.said(CANNOT), 15, "the service to say it cannot write")
        wait_for(lambda: len(runs_in(ledger)) == 2, 15, "the first agent to end")
        for path, text in before.items():
            assert path.read_bytes() == text, f"{path.name} changed on a full disk"
        assert status_of(first) == "executing" and status_of(second) == "planned"
        assert page_says(vault, apps), "the page says the disk is full"
        disk.free()
        for name in ("First.md", "Second.md"):
            wait_status(vault.folder(Folder.DONE) / name, "done", 30)
        assert service.said(CANNOT) == 1 and service.said(AGAIN) == 1
        done_first = note(vault.folder(Folder.DONE) / "First.md")
        assert done_first.attempts == 2, "the refused commit was a failed attempt, retried"
        starts = [t for t, e in runs_in(ledger) if e == "start"]
        assert sorted(starts.count(t) for t in set(starts)) == [1, 2]
        git_log = subprocess.run(
            ["git", "log", "--format=%s", "--", "result.txt"],
            cwd=apps / "py" / "first",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert git_log.strip(), "the first attempt's work is committed by the next"
    finally:
        service.stop()


def test_a_read_only_vault_mid_run_then_writable_again(disk: SmallDisk, tmp_path: Path) -> None:
    """A remount read-only (what the kernel does after I/O errors): the run's end and the
    next claim wait; the work dirs live elsewhere and are committed as usual."""
    vault = made_vault(disk.root / "vault")
    apps, ledger, gate = tmp_path / "apps", tmp_path / "ledger", tmp_path / "gate"
    ledger.touch()
    service = Service(vault, apps, ledger)
    try:
        first, second = one_runs_one_waits(vault, f"gate {gate}")
        disk.read_only()
        gate.touch()
        wait_for(lambda: service.said(CANNOT), 15, "the service to say it cannot write")
        assert "Read-only file system" in next(x for x in service.lines if CANNOT in x)
        says = page_says(vault, apps)
        assert len(says) == 1 and "read-only filesystem" in says[0], says
        assert "is on a read-only filesystem" in doctor_says(vault, apps)
        assert status_of(first) == "executing" and status_of(second) == "planned"
        disk.writable()
        for name in ("First.md", "Second.md"):
            wait_status(vault.folder(Folder.DONE) / name, "done", 30)
        assert service.said(CANNOT) == 1 and service.said(AGAIN) == 1
        starts = [t for t, e in runs_in(ledger) if e == "start"]
        assert len(starts) == len(set(starts)) == 2, "each ran once: the end waited, not the work"
        assert note(vault.folder(Folder.DONE) / "First.md").attempts == 1
    finally:
        service.stop()


def test_a_full_apps_disk_is_on_dashboard_md(disk: SmallDisk, tmp_path: Path) -> None:
    """The vault has room, the work dirs' disk is full: Dashboard.md (which can be written)
    says so at the next sweep, and stops saying it once space is back."""
    vault = made_vault(tmp_path / "vault")
    apps, ledger = disk.root / "apps", tmp_path / "ledger"
    apps.mkdir()
    ledger.touch()
    service = Service(vault, apps, ledger)
    try:
        disk.fill()
        said = f"Disk: the apps_dir ({apps}) is on a full disk: 0 B free"
        wait_for(lambda: said in vault.dashboard.read_text(), 15, "Dashboard.md to say it")
        assert f"FAIL the apps_dir ({apps}) is on a full disk" in doctor_says(vault, apps)
        disk.free()
        wait_for(lambda: said not in vault.dashboard.read_text(), 15, "Dashboard.md to clear")
        assert service.said(CANNOT) == 0, "the vault itself took every write"
    finally:
        service.stop()


def test_the_log_holds_whole_lines_on_a_full_disk(
    disk: SmallDisk, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line the disk takes only in part is cut off again (its first page fits in the log
    file's last page, the rest does not); the trouble is said once on stderr, and how many
    lines were missed once lines go in again."""
    sink = DailyJsonlSink(disk.root / "Logs")
    day = "2026-12-07T00:00:00Z"
    sink(None, "info", {"event": "before", "timestamp": day})
    log_file = disk.root / "Logs" / "2026-12-07.jsonl"
    whole = log_file.read_text()
    disk.fill()
    for n in range(2):
        sink(None, "info", {"event": "long", "detail": "x" * 20_000, "n": n, "timestamp": day})
    assert log_file.read_text() == whole, "the part that fit was cut off"
    disk.free()
    sink(None, "info", {"event": "after", "timestamp": day})
    sink.close()
    lines = log_file.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["before", "after"]
    err = capsys.readouterr().err
    assert err.count("cannot write the log") == 1, err
    assert "(2 line(s) went to stderr only)" in err
