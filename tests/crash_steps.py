"""One task's life with a crash at its N-th durable step (tests/faulty_service.py), then a
restart: what became of the task. Shared by tests/test_crash_steps.py (every N, in the suite)
and bench/faults.py (the published table)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ai_employee.notes.taskfile import parse_note
from ai_employee.notes.vault import TASK_FOLDERS, Folder, Vault, init_vault

FAULTY = Path(__file__).with_name("faulty_service.py")
FAKE = Path(__file__).with_name("fake_agent.py")
TASK = "---\ntitle: Crash\ntype: claude_app\nlanguage: py\napp: crash\n---\nbehave: ok\n"


@dataclass
class Life:
    """What one life left: a crash at step `at`, then (after a kill) a restart."""

    at: int
    how: str
    crashed_at: str = ""
    """The step's line from the trace ("17 before git ... init"), "" when it never came."""
    notes: dict[str, str] = field(default_factory=dict)
    """Every note left in a task folder (folder/name -> its text)."""
    plans: list[str] = field(default_factory=list)
    starts: int = 0
    overlapped: bool = False
    committed: bool = False
    staging_left: bool = False
    staging_committed: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def phases(trace: list[str]) -> dict[int, str]:
    """Each step of a clean life's trace, by the part of the task's life it belongs to: the
    plan (up to the note's first write: its task_id, `planned`), the claim (its second write:
    `executing`, then the prompt), the round's commit (git), the record (the end on the note,
    its move, the plan's head)."""
    out: dict[int, str] = {}
    phase, note_writes = "plan", 0
    for line in trace:
        number, moment, name = line.split()[:3]
        if name == "git":
            phase = "commit"
        elif phase == "commit":
            phase = "record"
        out[int(number)] = phase
        if name == "exchange" and moment == "after" and phase in ("plan", "claim"):
            note_writes += 1
        if name == "fsync_dir" and moment == "after" and note_writes == 1 and phase == "plan":
            phase = "claim"
    return out


def environment(root: Path, ledger: Path, trace: Path, at: int, how: str) -> dict[str, str]:
    return {
        **os.environ,
        "AI_EMPLOYEE_VAULT": str(root),
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": f"{sys.executable} {FAKE} {{task_id}} {{workdir}} "
        "{prompt_file}",
        "AI_EMPLOYEE_AGENT_ENV": "FAKE_*",
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.05",
        "AI_EMPLOYEE_SWEEP_SECONDS": "1",
        "AI_EMPLOYEE_RETRY_INITIAL_SECONDS": "0",
        "AI_EMPLOYEE_RETRY_MAX_SECONDS": "0",
        "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
        "FAKE_LEDGER": str(ledger),
        "CRASH_AT": str(at),
        "CRASH_HOW": how,
        "CRASH_TRACE": str(trace),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(FAULTY.parent.parent), os.environ.get("PYTHONPATH")])
        ),
    }


def _started(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"service ready"' in line:
            return proc
    raise AssertionError(f"the service exited before it was ready: {proc.wait()}")


def _done(root: Path) -> bool:
    path = root / "Done" / "Crash.md"
    try:
        return parse_note(path.read_text(), path.name).meta.get("status") == "done"
    except (OSError, ValueError):
        return False


def until(condition: Callable[[], object], timeout: float) -> bool:
    """Whether `condition` came true within `timeout` seconds (polled; a real service's
    files, which no event of ours tells of)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()


def live(base: Path, at: int, how: str = "kill", timeout: float = 30.0) -> Life:
    """Drop one task into a fresh vault under a service that crashes at step `at`. `kill`:
    start the service again (a plain one); `raise` (an I/O error) and `enospc` (the disk
    refused that one write): the same service goes on. Either way, wait until the task is done
    (or `timeout`)."""
    began = time.monotonic()
    base.mkdir(parents=True)
    root, ledger, trace = base / "vault", base / "ledger", base / "trace"
    ledger.touch()
    init_vault(root, base / "apps")
    env = environment(root, ledger, trace, at, how)
    life = Life(at, how)
    first = _started([sys.executable, str(FAULTY), "run"], env)
    staged = base / "staged.md"
    staged.write_text(TASK)
    staged.rename(root / "Needs_Action" / "Crash.md")
    try:
        if how == "kill":
            until(lambda: first.poll() is not None or _done(root), timeout)
        elif not until(lambda: _done(root), timeout):
            life.problems.append("not done after an I/O error, by the same service")
    finally:
        _stop(first)
    life.crashed_at = next(
        (line.split(" <- ")[0] for line in trace.read_text().splitlines() if " <- " in line), ""
    )
    if how == "kill":
        again = _started([sys.executable, "-m", "ai_employee", "run"], {**env, "CRASH_AT": "0"})
        try:
            if not until(lambda: _done(root), timeout):
                life.problems.append("not done after the restart")
        finally:
            _stop(again)
    _look(life, Vault(root), ledger)
    life.seconds = time.monotonic() - began
    return life


def _look(life: Life, vault: Vault, ledger: Path) -> None:
    for folder in TASK_FOLDERS:
        for path in vault.notes_in(folder):
            life.notes[f"{folder.value}/{path.name}"] = path.read_text()
    life.plans = sorted(p.name for p in vault.folder(Folder.PLANS).glob("*.md"))
    live_now: set[str] = set()
    for line in ledger.read_text().splitlines():
        task_id, event = line.split()[:2]
        if event == "start":
            life.starts += 1
            life.overlapped |= task_id in live_now
            live_now.add(task_id)
        else:
            live_now.discard(task_id)
    workdir = vault.root.parent / "apps" / "py" / "crash"
    life.committed = bool(_git_log(workdir, "--format=%H", "--", "result.txt").strip())
    life.staging_left = (workdir / ".ai-employee-git-init").exists()
    files = _git_log(workdir, "--all", "--name-only", "--format=")
    life.staging_committed = ".ai-employee-git-init" in files


def _git_log(workdir: Path, *args: str) -> str:
    """`git log ARGS` in the work dir ("" when it is no repository)."""
    done = subprocess.run(
        ["git", "log", *args], cwd=workdir, capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else ""


def steps_in_one_life(base: Path) -> list[str]:
    """The trace of a life with no crash: every durable step of one task, in order."""
    life = live(base, 0)
    assert not life.problems, life.problems
    return (base / "trace").read_text().splitlines()
