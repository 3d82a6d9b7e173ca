"""`sandbox = "bwrap"`: the command agent and a task's check in bubblewrap (Debian's package,
which the test command installs): they write their work dir and a private /tmp only, and with
`sandbox_network = false` reach no network, not even loopback."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_employee.base.config import load_config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.doctor import run_checks

from .claude_harness import APP, bash, claude_config, text
from .fake_anthropic import FakeAnthropic
from .service_harness import drop, running_service, svc_config, wait_status

AGENT = Path(__file__).with_name("sandboxed_agent.py")


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def task(title: str, verify: str = "") -> str:
    check = f"verify: {json.dumps(verify)}\n" if verify else ""
    where = f"language: py\napp: {title.lower()}\n"
    return f"---\ntitle: {title}\ntype: claude_app\n{where}{check}---\nGo.\n"


def test_the_agent_writes_only_its_work_dir(vault: Vault, tmp_path: Path, listener: int) -> None:
    outside = vault.root / "escaped.txt"  # the vault: readable in the sandbox, never writable
    command = f"{sys.executable} {AGENT} {{workdir}} {outside} {listener}"
    with running_service(svc_config(vault, agent_command=command, sandbox="bwrap")):
        drop(vault, tmp_path, "Box.md", task("Box"))
        done = wait_status(vault.folder(Folder.DONE) / "Box.md", "done", 30)
    workdir = vault.root.parent / "apps" / "py" / "box"
    assert (workdir / "inside.txt").read_text() == "written inside\n"
    tried = json.loads((workdir / "tried.json").read_text())
    assert tried == {"outside": "Read-only file system", "network": "connected"}, tried
    assert not outside.exists()
    assert done.meta["changes"].startswith("2 files"), "its work was committed as any other"


def test_without_network_not_even_loopback(vault: Vault, tmp_path: Path, listener: int) -> None:
    command = f"{sys.executable} {AGENT} {{workdir}} {tmp_path / 'x'} {listener}"
    config = svc_config(vault, agent_command=command, sandbox="bwrap", sandbox_network="false")
    with running_service(config):
        drop(vault, tmp_path, "Offline.md", task("Offline"))
        wait_status(vault.folder(Folder.DONE) / "Offline.md", "done", 30)
    tried = json.loads((vault.root.parent / "apps" / "py" / "offline" / "tried.json").read_text())
    assert tried["network"] != "connected", tried


def test_a_check_that_writes_outside_its_work_dir_fails(vault: Vault, tmp_path: Path) -> None:
    outside = vault.root / "check-was-here.txt"
    check = f"{sys.executable} -c \"open('{outside}', 'w').write('x')\""
    config = svc_config(vault, agent_command="true", sandbox="bwrap", max_rounds=1)
    with running_service(config):
        drop(vault, tmp_path, "Check.md", task("Check", verify=check))
        failed = wait_status(vault.folder(Folder.FAILED) / "Check.md", "failed", 60)
    assert not outside.exists(), "the check wrote outside its work dir"
    assert "Read-only file system" in failed.body


def test_doctor_checks_bwrap(vault: Vault) -> None:
    env = {"AI_EMPLOYEE_SANDBOX": "bwrap", "AI_EMPLOYEE_AGENT": "command",
           "AI_EMPLOYEE_AGENT_COMMAND": "true"}  # fmt: skip
    checks = run_checks(load_config(vault.root, env=env), login_probe=False)
    [bwrap] = [c for c in checks if c.what.startswith("bwrap")]
    assert bwrap.level == "ok" and "makes a sandbox" in bwrap.what


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_claudes_bash_tool_runs_in_claudes_own_sandbox(
    vault: Vault, tmp_path: Path, claude_bin: Path, claude_env: FakeAnthropic, sandbox: str
) -> None:
    """With `sandbox = "bwrap"`, claude runs get Claude Code's own sandbox settings: its Bash
    tool writes the work dir, not beside it (the same script without: both files written)."""
    outside = tmp_path / "outside.txt"
    claude_env.enqueue(
        bash(f"echo inside > inside.txt; echo outside > {outside}; true"), text("wrote both")
    )
    config = claude_config(vault, claude_bin, allowed_tools="Bash", sandbox=sandbox)
    with running_service(config):  # type: ignore[arg-type]
        drop(vault, tmp_path, "Box.md", APP.format(title="Box", app="box", body="Write."))
        wait_status(vault.folder(Folder.DONE) / "Box.md", "done", 60)
    workdir = vault.root.parent / "apps" / "html" / "box"
    assert (workdir / "inside.txt").read_text() == "inside\n"
    assert outside.exists() == (sandbox == "none")
    results = json.dumps(claude_env.main_requests()[-1]["body"]["messages"][-1])
    print(results[:2000])
    if sandbox == "bwrap":
        assert "Read-only file system" in results or "Operation not permitted" in results


def test_a_claude_run_with_no_sandbox_to_be_had_fails_saying_so(
    vault: Vault,
    tmp_path: Path,
    claude_bin: Path,
    claude_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude's sandbox needs socat on Linux: without it the CLI refuses to start (the
    settings say `failIfUnavailable`), and the task fails saying so; nothing runs outside."""
    programs = tmp_path / "bin"
    programs.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for program in Path(folder).glob("*") if Path(folder).is_dir() else ():
            target = programs / program.name
            if program.name != "socat" and not target.exists():
                target.symlink_to(program)
    monkeypatch.setenv("PATH", str(programs))
    claude_env.enqueue(bash("echo ran > ran.txt"), text("ran"))
    config = claude_config(vault, claude_bin, allowed_tools="Bash", sandbox="bwrap", max_attempts=1)
    with running_service(config):  # type: ignore[arg-type]
        drop(vault, tmp_path, "Box.md", APP.format(title="Box", app="box", body="Write."))
        failed = wait_status(vault.folder(Folder.FAILED) / "Box.md", "failed", 60)
    print(failed.meta["error"])
    assert "sandbox" in str(failed.meta["error"]).lower()
    assert not (vault.root.parent / "apps" / "html" / "box" / "ran.txt").exists()
