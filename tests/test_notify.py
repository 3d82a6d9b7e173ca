"""Notification hooks, run by the real service with real processes: what each fires on, what a
hook is given, and that a hook's failure is one warning and nothing more."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from ai_employee.base.config import Config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.telling.notify import QUEUE_LIMIT, STOP_DRAIN_SECONDS, Event, Hooks, Notice

from .helpers import wait_for
from .service_harness import drop, events, note, running_service, svc_config, wait_status

HOOK = """\
import json, os, sys
ledger, tag, *rest = sys.argv[1:]
env = {k: v for k, v in os.environ.items()
       if k.startswith("AI_EMPLOYEE_") or k in ("CLAUDECODE", "NOTIFY_TOKEN")}
line = json.dumps({"tag": tag, "argv": rest, "env": env, "cwd": os.getcwd()})
with open(ledger, "a") as out:
    out.write(line + "\\n")
"""

TASK = "---\ntitle: {title}\ntype: {type}\n---\nDo the thing.\n"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "hooks.jsonl"


def hook(tmp_path: Path, ledger: Path, tag: str) -> str:
    """A hook command line that appends its argv and environment to the ledger."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    parts = [sys.executable, str(script), str(ledger), tag]
    return shlex.join(parts) + " {task_id} {task_file} {workdir} {prompt_file}"


def told(ledger: Path, tag: str | None = None) -> list[dict[str, Any]]:
    try:
        lines = ledger.read_text().splitlines()
    except FileNotFoundError:
        return []
    found = [json.loads(line) for line in lines]
    return [f for f in found if tag is None or f["tag"] == tag]


def hooked(vault: Vault, tmp_path: Path, ledger: Path, *events_: str, **more: Any) -> Config:
    keys = {f"on_{e}": hook(tmp_path, ledger, e) for e in events_}
    return svc_config(vault, agent_command="true", max_attempts=1, **keys, **more)


def task(title: str, task_type: str = "claude_app") -> str:
    return TASK.format(title=title, type=task_type)


def test_done_fires_on_done_with_the_task_and_the_contract_environment(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(hooked(vault, tmp_path, ledger, "done")):
        drop(vault, tmp_path, "Build.md", task("Build"))
        finished = wait_status(vault.folder(Folder.DONE) / "Build.md", "done")
        [call] = wait_for(lambda: told(ledger, "done"), what="on_done")
    task_id = finished.task_id
    assert task_id
    done_path = str(vault.folder(Folder.DONE) / "Build.md")
    workdir = str(vault.root.parent / "apps" / "tasks" / task_id)
    prompt = str(vault.machinery / "prompts" / f"{task_id}.md")
    assert call["argv"] == [task_id, done_path, workdir, prompt]
    assert call["env"]["AI_EMPLOYEE_EVENT"] == "done"
    assert call["env"]["AI_EMPLOYEE_TASK_ID"] == task_id
    assert call["env"]["AI_EMPLOYEE_TASK_FILE"] == done_path
    assert call["env"]["AI_EMPLOYEE_VAULT"] == str(vault.root)
    assert call["env"]["AI_EMPLOYEE_TITLE"] == "Build"
    assert call["cwd"] == str(vault.root)
    [ran] = events(vault, "hook ran")
    assert ran["action_type"] == "notify" and ran["target"] == "on_done"


def test_a_failing_agent_fires_on_failed_then_on_needs_attention(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    config = hooked(vault, tmp_path, ledger, "failed", "needs_attention", "done")
    config = svc_config(
        vault,
        agent_command="false",
        max_attempts=1,
        on_failed=config.on_failed,
        on_needs_attention=config.on_needs_attention,
        on_done=config.on_done,
    )
    with running_service(config):
        drop(vault, tmp_path, "Break.md", task("Break"))
        failed = wait_status(vault.folder(Folder.FAILED) / "Break.md", "failed")
        wait_for(lambda: len(told(ledger)) >= 2, what="both hooks")
        assert failed.meta["error"]
        listed = "- [[Failed/Break|Break]] - failed: "
        wait_for(
            lambda: listed in vault.dashboard.read_text().split("## Running")[0],
            what="Dashboard.md's Needs attention to list the failed task",
        )
    calls = told(ledger)
    assert [c["tag"] for c in calls] == ["failed", "needs_attention"]
    for call in calls:
        assert call["argv"][:2] == [failed.task_id, str(vault.folder(Folder.FAILED) / "Break.md")]
        assert call["env"]["AI_EMPLOYEE_DETAIL"] == failed.meta["error"]
    assert [c["env"]["AI_EMPLOYEE_EVENT"] for c in calls] == ["failed", "needs_attention"]


def test_a_type_that_needs_approval_fires_on_pending_approval(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(hooked(vault, tmp_path, ledger, "pending_approval", "needs_attention")):
        drop(vault, tmp_path, "Push.md", task("Push", "git_push"))
        waiting = vault.folder(Folder.PENDING_APPROVAL) / "Push.md"
        held = wait_status(waiting, "pending_approval")
        [call] = wait_for(lambda: told(ledger, "pending_approval"), what="on_pending_approval")
    assert call["argv"][:2] == [held.task_id, str(waiting)]
    assert call["env"]["AI_EMPLOYEE_EVENT"] == "pending_approval"
    assert "git_push" in call["env"]["AI_EMPLOYEE_DETAIL"]
    assert not told(ledger, "needs_attention"), "an approval is not an attention"


BROKEN = "---\ntitle: [unclosed\n---\nbody\n"


def test_a_refused_note_is_told_once_not_at_each_sweep_or_restart(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    config = hooked(vault, tmp_path, ledger, "needs_attention", sweep_seconds=1)
    broken = vault.folder(Folder.NEEDS_ACTION) / "Broken.md"
    with running_service(config) as service:
        drop(vault, tmp_path, "Broken.md", BROKEN)
        [call] = wait_for(lambda: told(ledger), what="on_needs_attention")
        assert call["argv"][1] == str(broken) and call["argv"][0] == ""
        assert call["env"]["AI_EMPLOYEE_DETAIL"].startswith("refused: ")
        sweeps = service.stats.sweeps
        wait_for(lambda: service.stats.sweeps >= sweeps + 2, what="two safety sweeps")
        # Hooks run in the order told: once this one is told, a second word on Broken.md
        # would have come first.
        drop(vault, tmp_path, "Other.md", BROKEN.replace("body", "other body"))
        wait_for(lambda: len(told(ledger)) >= 2, what="the other note's notice")
    assert [c["argv"][1] for c in told(ledger)] == [str(broken), str(broken.with_name("Other.md"))]
    with running_service(config):  # a restart refuses both again, and tells neither
        drop(vault, tmp_path, "Third.md", BROKEN.replace("body", "third body"))
        wait_for(lambda: len(told(ledger)) >= 3, what="the third note's notice")
        broken.write_text(BROKEN.replace("body", "changed body"))  # new content: news
        wait_for(lambda: len(told(ledger)) >= 4, what="the changed note's notice")
    assert [Path(c["argv"][1]).name for c in told(ledger)] == [
        "Broken.md",
        "Other.md",
        "Third.md",
        "Broken.md",
    ]


def test_a_held_copy_fires_on_needs_attention(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    config = hooked(vault, tmp_path, ledger, "needs_attention", "pending_approval", "done")
    with running_service(config):
        drop(vault, tmp_path, "Build.md", task("Build"))
        done = vault.folder(Folder.DONE) / "Build.md"
        original = wait_status(done, "done")
        wait_for(lambda: told(ledger, "done"), what="on_done: the main loop took the run's end")
        drop(vault, tmp_path, "Build.md", done.read_text())  # it comes back (a sync tool)
        [call] = wait_for(lambda: told(ledger, "needs_attention"), what="on_needs_attention")
        held = note(vault.folder(Folder.PENDING_APPROVAL) / "Build.md")
    assert [c["tag"] for c in told(ledger)] == ["done", "needs_attention"], "not an approval"
    assert call["argv"][:2] == [
        held.task_id,
        str(vault.folder(Folder.PENDING_APPROVAL) / "Build.md"),
    ]
    assert held.task_id != original.task_id
    assert call["env"]["AI_EMPLOYEE_DETAIL"] == held.meta["error"]
    assert call["env"]["AI_EMPLOYEE_DETAIL"].startswith("held as a copy: ")


def _two_tasks_each_one_warning(vault: Vault, tmp_path: Path, config: Config) -> list[str]:
    """Two tasks, one after the other: each done, each hook's failure one warning."""
    with running_service(config):
        for n, name in enumerate(["One.md", "Two.md"], start=1):
            drop(vault, tmp_path, name, task(name))
            wait_status(vault.folder(Folder.DONE) / name, "done")
            wait_for(lambda n=n: len(events(vault, "hook failed")) >= n, what=f"warning {n}")
    failures = events(vault, "hook failed")
    assert len(failures) == 2
    assert all(f["level"] == "warning" and f["action_type"] == "notify" for f in failures)
    assert all(f["target"] == "on_done" for f in failures)
    return [f["error"] for f in failures]


def test_a_hook_that_exits_1_is_one_warning_and_the_service_goes_on(
    vault: Vault, tmp_path: Path
) -> None:
    on_done = "sh -c 'echo cannot reach the phone; exit 1'"
    errors = _two_tasks_each_one_warning(
        vault, tmp_path, svc_config(vault, agent_command="true", on_done=on_done)
    )
    assert errors == ["exited 1: cannot reach the phone"] * 2


def test_a_hook_that_hangs_is_stopped_at_its_timeout(vault: Vault, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    on_done = f"sh -c 'echo $$ >> {pids}; exec sleep 60'"
    config = svc_config(vault, agent_command="true", on_done=on_done, hook_timeout_seconds=1)
    errors = _two_tasks_each_one_warning(vault, tmp_path, config)
    assert errors == ["still running after 1 s (hook_timeout_seconds); stopped"] * 2
    for pid in pids.read_text().split():
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), what=f"hook {pid} gone")


def test_a_hook_naming_a_missing_program_is_one_warning(vault: Vault, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-notifier"
    config = svc_config(vault, agent_command="true", on_done=f"{missing} {{task_id}}")
    errors = _two_tasks_each_one_warning(vault, tmp_path, config)
    assert errors == [f"cannot start {str(missing)!r}: No such file or directory; fix on_done"] * 2


def test_a_flood_of_notices_is_bounded_and_counted(vault: Vault, tmp_path: Path) -> None:
    """A hook slower than the notices: at most QUEUE_LIMIT wait, the rest are dropped and said
    so in one warning (the main loop never waits, memory stays bounded)."""
    gate, ran = tmp_path / "gate", tmp_path / "ran"
    ran.touch()
    on_done = f"sh -c 'echo x >> {ran}; while [ ! -e {gate} ]; do sleep 0.01; done'"
    hooks = Hooks(svc_config(vault, on_done=on_done))
    hooks.start()
    with structlog.testing.capture_logs() as logs:
        try:
            for n in range(QUEUE_LIMIT + 50):
                hooks.tell(Notice(Event.DONE, vault.root / f"{n}.md", f"t{n}"))
            hooks.tell(Notice(Event.FAILED, vault.root / "x.md", "x"))  # no hook: not queued
            gate.touch()
            wait_for(lambda: len(ran.read_text().split()) >= QUEUE_LIMIT, 60, "the queued hooks")
        finally:
            gate.touch()
            hooks.stop()
    assert QUEUE_LIMIT <= len(ran.read_text().split()) <= QUEUE_LIMIT + 1
    dropped = [e for e in logs if e["event"] == "notifications dropped"]
    assert len(dropped) == 1 and dropped[0]["log_level"] == "warning"


def test_hooks_get_the_service_environment_without_claudecode(
    vault: Vault, tmp_path: Path, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("NOTIFY_TOKEN", "secret")
    with running_service(hooked(vault, tmp_path, ledger, "done")):
        drop(vault, tmp_path, "Build.md", task("Build"))
        [call] = wait_for(lambda: told(ledger, "done"), what="on_done")
    assert call["env"]["NOTIFY_TOKEN"] == "secret"
    assert "CLAUDECODE" not in call["env"]


def test_on_stop_a_running_hook_gets_the_drain_then_the_rest_is_abandoned(
    vault: Vault, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    on_done = f"sh -c 'echo $$ >> {pids}; exec sleep 60'"
    config = svc_config(vault, agent_command="true", on_done=on_done, hook_timeout_seconds=60)
    with running_service(config):
        for name in ["One.md", "Two.md"]:
            drop(vault, tmp_path, name, task(name))
            wait_status(vault.folder(Folder.DONE) / name, "done")
        wait_for(lambda: pids.exists() and pids.read_text().strip(), what="the first hook")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < STOP_DRAIN_SECONDS + 5, (
        "the stop waited for the drain only"
    )
    [failed] = events(vault, "hook failed")
    assert failed["error"] == "still running when the service stopped; stopped"
    [abandoned] = events(vault, "notifications abandoned")
    assert abandoned["parameters"] == {"abandoned": 1} and abandoned["level"] == "warning"
    [pid] = pids.read_text().split()
    assert not Path(f"/proc/{pid}").exists()
