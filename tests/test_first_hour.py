"""A newcomer's first hour (issue 26): hints that work when pasted, the claude the service will
run named wherever claude is named, and what `init` and `doctor` say."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ai_employee.base.config import claude_places, load_config
from ai_employee.daemon.service_units import choose_claude
from ai_employee.notes.vault import Folder, Vault

from .test_cli_basics import run_cli


def _program(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


NOT_LOGGED_IN = (
    "#!/bin/sh\n"
    'if [ "$1" = "--version" ]; then echo "2.1.0 (Claude Code)"; exit 0; fi\n'
    "cat >/dev/null\n"
    'echo \'{"type":"result","subtype":"success","is_error":true,'
    '"result":"Not logged in · Please run /login"}\'\n'
    "exit 1\n"
)


def test_a_hint_with_a_path_that_has_a_space_works_when_pasted(tmp_path: Path) -> None:
    vault = tmp_path / "Other Notes"
    failed = run_cli("--vault", str(vault), "status")
    assert failed.returncode == 3
    hint = failed.stderr.split("`")[1]
    assert hint == f"ai-employee init --vault '{vault}'"
    argv = shlex.split(hint)  # what a shell makes of the pasted line
    done = run_cli(*argv[1:])
    assert done.returncode == 0, done.stderr
    assert (vault / "Needs_Action").is_dir()
    assert run_cli("--vault", str(vault), "status").returncode == 0


def test_doctor_names_the_fix_for_a_missing_vault_quoted(tmp_path: Path) -> None:
    vault = tmp_path / "My Notes"
    done = run_cli("--vault", str(vault), "doctor", "--no-login-check", env={"HOME": str(tmp_path)})
    fix = next(line for line in done.stdout.splitlines() if "fix:" in line)
    assert shlex.split(fix.split("fix: ", 1)[1]) == ["ai-employee", "init", "--vault", str(vault)]


def test_init_says_why_it_makes_the_apps_folder(tmp_path: Path) -> None:
    done = run_cli("init", "--vault", str(tmp_path / "Notes"))
    assert done.returncode == 0
    line = next(x for x in done.stdout.splitlines() if x.startswith(f"created {tmp_path}/apps"))
    assert "where tasks build their work, beside the vault" in line
    assert "set apps_dir in .ai-employee.toml to move it" in line


def test_claude_is_found_where_claude_code_installs_itself_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    own = _program(home / ".local" / "bin" / "claude", NOT_LOGGED_IN)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    assert claude_places()[0] == own
    config = load_config(tmp_path / "v", env=env)
    assert config.claude_path == str(own)
    assert config.sources["claude_path"] == "default"
    chosen = choose_claude(config, env)
    assert chosen.found and not chosen.in_unit
    assert "where Claude Code installs itself" in chosen.why
    on_path = _program(tmp_path / "bin" / "claude", NOT_LOGGED_IN)
    monkeypatch.setenv("PATH", f"{on_path.parent}:/usr/bin")
    assert load_config(tmp_path / "v", env=env).claude_path == str(on_path), "PATH comes first"
    named = load_config(tmp_path / "v", env={**env, "AI_EMPLOYEE_CLAUDE_PATH": "claude-beta"})
    assert named.claude_path == "claude-beta", "only the plain name looks elsewhere"


def test_doctor_says_which_claude_runs_and_how_to_log_it_in(tmp_path: Path) -> None:
    home = tmp_path / "home dir"
    claude = _program(home / ".local" / "bin" / "claude", NOT_LOGGED_IN)
    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "AI_EMPLOYEE_VAULT": str(vault)}
    done = run_cli("doctor", env=env)
    assert done.returncode == 1
    assert f"ok   claude 2.1.0 (Claude Code) at {claude}" in done.stdout
    assert "FAIL claude is not logged in" in done.stdout
    fix = next(line for line in done.stdout.splitlines() if "fix: run `" in line)
    command = fix.split("`")[1]
    assert shlex.split(command) == [str(claude)], "the exact claude, quoted to paste"


@pytest.mark.parametrize("status", ["approve", "cancel"])
def test_a_refused_command_lists_each_status_once(tmp_path: Path, status: str) -> None:
    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    note = vault / "Done" / "Shipped.md"
    note.write_text("---\ntitle: Shipped\ntask_id: shipped1\nstatus: done\n---\nx\n")
    done = run_cli("--vault", str(vault), status, "shipped1")
    assert done.returncode != 0
    takes = done.stderr.split(" takes ", 1)[1].split(")")[0].rstrip(".\n")
    listed = [s.strip() for s in takes.split(",")]
    assert len(listed) == len(set(listed)), done.stderr


def test_the_logs_of_a_task_can_be_asked_for_by_its_file_name(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    added = json.loads(run_cli("--vault", str(vault), "add", "Note name", "--json").stdout)
    by_id = run_cli("--vault", str(vault), "logs", "--task", added["task_id"], "--json")
    by_name = run_cli("--vault", str(vault), "logs", "--task", "Note name.md", "--json")
    by_path = run_cli("--vault", str(vault), "logs", "--task", added["path"], "--json")
    by_word = run_cli("--vault", str(vault), "logs", "--task", "Note name", "--json")
    assert by_id.stdout.strip(), "the add is logged under its task_id"
    assert by_name.stdout == by_id.stdout == by_path.stdout == by_word.stdout
    word = json.loads(run_cli("--vault", str(vault), "add", "Word", "--json").stdout)
    by_bare = run_cli("--vault", str(vault), "logs", "--task", "Word", "--json")
    assert by_bare.stdout.strip() and word["task_id"] in by_bare.stdout, "a bare note name"
    missing = run_cli("--vault", str(vault), "logs", "--task", "Nothing.md")
    assert missing.returncode != 0 and "Nothing.md" in missing.stderr


def test_the_secret_files_chmod_hint_works_when_pasted(tmp_path: Path) -> None:
    home = tmp_path / "home dir"
    secret = home / ".config" / "ai-employee" / "service.env"
    secret.parent.mkdir(parents=True)
    secret.write_text("ANTHROPIC_API_KEY=x\n")
    secret.chmod(0o644)
    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    env = {"HOME": str(home), "AI_EMPLOYEE_VAULT": str(vault), "AI_EMPLOYEE_AGENT": "command"}
    printed = run_cli("service", "install", "--print", env=env)
    warning = next(x for x in printed.stderr.splitlines() if "can be read by other users" in x)
    hint = warning.split("other users: ", 1)[1]
    subprocess.run(shlex.split(hint), check=True)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_status_says_whether_a_service_holds_the_vault_and_marks_what_cannot_be_running(
    tmp_path: Path,
) -> None:
    import fcntl

    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    (vault / "Needs_Action" / "Busy.md").write_text(
        "---\ntitle: Busy\ntask_id: busy0001\nstatus: executing\n---\nx\n"
    )
    text = run_cli("--vault", str(vault), "status").stdout
    assert "service: not running" in text
    hint = text.split("`")[1]  # pasted, it starts the service on this very vault
    assert shlex.split(hint) == ["ai-employee", "--vault", str(vault), "run"]
    busy = next(line for line in text.splitlines() if "busy0001" in line)
    assert "(not running: no service holds the vault; retried when it starts)" in busy
    data = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
    assert data["service"] == {"running": False, "pid": None, "since": None}
    assert [t["stale"] for t in data["active"]] == [True]
    lock = vault / ".ai-employee" / "lock"
    lock.write_text("pid 4242 since 2026-12-06T10:00:00Z\n")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running service holds it
        text = run_cli("--vault", str(vault), "status").stdout
        assert "service: running (pid 4242) since 2026-12-06 10:00:00 UTC" in text
        assert "no service holds" not in text
        data = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
        assert data["service"]["running"] and data["service"]["pid"] == 4242
        assert [t["stale"] for t in data["active"]] == [False]
    finally:
        os.close(fd)


EXAMPLE_AGENT = Path(__file__).resolve().parent.parent / "docs" / "examples" / "notes_agent.py"


def test_the_documented_example_agent_works_as_written(vault: Vault, tmp_path: Path) -> None:
    """docs/AGENTS.md's example, with the agent_command line it shows, through the service."""
    from ai_employee.notes.taskfile import parse_note

    from .helpers import wait_for
    from .service_harness import running_service, svc_config

    docs = (EXAMPLE_AGENT.parent.parent / "AGENTS.md").read_text()
    shown = 'agent_command = "python3 /path/to/notes_agent.py {prompt_file} {workdir}"'
    assert shown in EXAMPLE_AGENT.read_text()
    assert "[examples/notes_agent.py](examples/notes_agent.py)" in docs
    program = f"{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLE_AGENT))}"
    command = f"{program} {{prompt_file}} {{workdir}}"  # the line the docs show, python3 ours
    config = svc_config(vault, agent_command=command)
    with running_service(config):
        note = vault.folder(Folder.NEEDS_ACTION) / "Greeting.md"
        note.write_text(
            "---\ntitle: Greeting page\nlanguage: html\napp: greeting\n---\nSay hello, kindly.\n"
        )
        done = vault.folder(Folder.DONE) / "Greeting.md"
        wait_for(done.exists, 30, "the task done by the example agent")
    finished = parse_note(done.read_text(), done.name)
    workdir = config.apps_dir / "html" / "greeting"
    assert (workdir / "TASK.md").read_text() == "# Greeting page\n\nSay hello, kindly.\n"
    assert finished.meta["status"] == "done" and finished.meta["exit_code"] == 0
    assert "done: 3 words asked, kept in TASK.md" in finished.body
    transcript = (vault.logs / "tasks" / f"{finished.task_id}.jsonl").read_text()
    assert f'"line": "task {finished.task_id}: Greeting page"' in transcript


def test_the_example_agent_by_hand_as_the_docs_show(tmp_path: Path) -> None:
    work = tmp_path / "try"
    work.mkdir()
    prompt = tmp_path / "prompt.md"
    prompt.write_text("# Task: Try it\n\n## What was asked\n\nSay hello.\n")
    env = {**os.environ, "AI_EMPLOYEE_TASK_ID": "try00001"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE_AGENT), str(prompt), str(work)],
        cwd=work, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "task try00001: Try it"
    wrong = subprocess.run(
        [sys.executable, str(EXAMPLE_AGENT), str(prompt)],
        cwd=work, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


def test_claude_is_found_in_its_older_place_and_not_found_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_employee.base import config as config_module

    home = tmp_path / "home"
    older = _program(home / ".claude" / "local" / "claude", NOT_LOGGED_IN)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    assert load_config(tmp_path / "v", env=env).claude_path == str(older)
    monkeypatch.setattr(config_module, "claude_places", lambda: [tmp_path / "nowhere"])
    config = load_config(tmp_path / "v", env=env)
    assert config.claude_path == "claude"
    chosen = choose_claude(config, env)
    assert not chosen.found
    assert chosen.why == "not on this shell's PATH, nor where Claude Code installs itself"


def test_doctor_says_when_git_is_too_old_for_the_work_dirs(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    assert run_cli("init", "--vault", str(vault)).returncode == 0
    old = _program(tmp_path / "bin" / "git", "#!/bin/sh\necho 'git version 2.30.2'\n")
    env = {"PATH": f"{old.parent}:/usr/bin:/bin", "AI_EMPLOYEE_VAULT": str(vault)}
    done = run_cli("doctor", "--no-login-check", env=env)
    assert f"FAIL git version 2.30.2 at {old} is older than git 2.36" in done.stdout
    assert "fix: install git 2.36 or later" in done.stdout
    ours = run_cli("doctor", "--no-login-check", env={"AI_EMPLOYEE_VAULT": str(vault)})
    assert "ok   git version " in ours.stdout
