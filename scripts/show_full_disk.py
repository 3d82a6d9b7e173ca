"""Show, step by step, a full disk during a task's plan, claim, commit and record: what the
note, the log and the page said, and how the work went on once space came back.

    .venv/bin/python scripts/show_full_disk.py     (as root, or with sudo -n: it mounts a tmpfs)

The same scenes are tests in tests/test_full_disk.py; this prints what a person would see.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ai_employee.notes.vault import Folder, Vault  # noqa: E402
from tests.helpers import wait_for  # noqa: E402
from tests.service_harness import status_of  # noqa: E402
from tests.test_full_disk import (  # noqa: E402
    CANNOT,
    Service,
    SmallDisk,
    doctor_says,
    made_vault,
    one_runs_one_waits,
    page_says,
    task,
)


def events(service: Service, since: int) -> list[str]:
    said = []
    for line in service.lines[since:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        words = entry["event"]
        if entry.get("error"):
            words += f" ({entry['error']})"
        if entry["event"] in ("the vault can be written again",):
            words += f" {entry.get('parameters')}"
        said.append(f"    log: {words}")
    return said


def show_note(path: Path) -> str:
    if not path.exists():
        return f"    note: {path.parent.name}/{path.name} is not there"
    status = status_of(path)
    if status in (None, "None"):
        status = "none (as the person wrote it)"
    return f"    note: {path.parent.name}/{path.name}, {path.stat().st_size} bytes, status {status}"


def doctor_line(vault: Vault, apps: Path) -> str:
    said = doctor_says(vault, apps).splitlines()
    lines = [line for line in said if "full disk" in line or "disk takes" in line]
    return "    doctor: " + (lines[0].strip() if lines else "(nothing about the disk)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="show-full-disk-") as tmp:
        base = Path(tmp)
        disk = SmallDisk(base / "disk")
        try:
            vault = made_vault(disk.root / "vault")
            apps, ledger, gate = disk.root / "apps", base / "ledger", base / "gate"
            ledger.touch()
            service = Service(vault, apps, ledger)
            try:
                scenes(vault, apps, disk, service, gate)
            finally:
                service.stop()
        finally:
            disk.unmount()


def scenes(vault: Vault, apps: Path, disk: SmallDisk, service: Service, gate: Path) -> None:
    inbox = vault.folder(Folder.NEEDS_ACTION)
    print("1. The disk fills before a dropped note is planned")
    staged = disk.root / "staged.md"
    staged.write_text(task("Planned", "ok"))
    disk.fill()
    mark = len(service.lines)
    staged.rename(inbox / "Planned.md")
    wait_for(lambda: service.said(CANNOT), 15, "the error")
    print(show_note(inbox / "Planned.md"))
    print("\n".join(events(service, mark)))
    print(f"    page: {page_says(vault, apps)}")
    print(doctor_line(vault, apps))
    mark, freed = len(service.lines), time.monotonic()
    disk.free()
    done = vault.folder(Folder.DONE) / "Planned.md"
    wait_for(lambda: status_of(done) == "done", 30, "done")
    print(f"  space back: done {time.monotonic() - freed:.2f} s later")
    print("\n".join(events(service, mark)))
    print(show_note(done))

    print("\n2. The disk fills as a run ends (its commit and record) and the next task's claim")
    first, second = one_runs_one_waits(vault, f"written-gate {gate}")
    wait_for(lambda: (apps / "py" / "first" / "result.txt").exists(), 15, "the work done")
    disk.fill()
    mark = len(service.lines)
    gate.touch()
    wait_for(lambda: service.said(CANNOT) >= 2, 15, "the error")
    time.sleep(2)  # the run's thread tries its end again meanwhile: nothing more is logged
    print(show_note(first))
    print(show_note(second))
    print("\n".join(events(service, mark)))
    print(f"    page: {page_says(vault, apps)}")
    mark, freed = len(service.lines), time.monotonic()
    disk.free()
    for name in ("First.md", "Second.md"):
        path = vault.folder(Folder.DONE) / name
        wait_for(lambda p=path: status_of(p) == "done", 30, name)
    print(f"  space back: both done {time.monotonic() - freed:.2f} s later")
    print("\n".join(events(service, mark)))
    for name in ("First.md", "Second.md"):
        print(show_note(vault.folder(Folder.DONE) / name))
    attempts = (vault.folder(Folder.DONE) / "First.md").read_text().split("attempts: ")[1]
    print(f"    First's attempts: {attempts.split(chr(10))[0]} (its refused commit was one)")


if __name__ == "__main__":
    main()
