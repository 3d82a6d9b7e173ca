"""init, add, status and errors, as a person sees them on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_employee.notes.taskfile import parse_note
from ai_employee.surfaces.cli import main


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process (what a person types)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AI_EMPLOYEE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ai_employee", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_init_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "v"
    first = run_cli("init", "--vault", str(root))
    assert first.returncode == 0, first.stderr
    for folder in [
        "Needs_Action",
        "Plans",
        "Pending_Approval",
        "Approved",
        "Rejected",
        "Done",
        "Failed",
        "Logs/tasks",
        "Inbox/Drop",
        "Templates",
    ]:
        assert (root / folder).is_dir(), folder
    handbook = root / "Company_Handbook.md"
    handbook.write_text("my own rules\n")
    second = run_cli("--vault", str(root), "init")
    assert second.returncode == 0
    assert "nothing to create" in second.stdout
    assert handbook.read_text() == "my own rules\n"
    assert (root / "Templates" / "Task.md").read_text().startswith("---\ntitle:")


def test_add_writes_a_note_and_prints_path_and_task_id(tmp_path: Path) -> None:
    root = tmp_path / "v"
    assert main(["init", "--vault", str(root)]) == 0
    result = run_cli(
        "add",
        "Landing page: bakery",
        "--vault",
        str(root),
        "--type",
        "claude_app",
        "--language",
        "html",
        "--app",
        "bakery",
        "--priority",
        "high",
        "--body",
        "-",
        "--json",
        stdin="Opening hours and a form.\n",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    path = Path(out["path"])
    assert path.parent == root / "Needs_Action" and path.name == "Landing page bakery.md"
    note = parse_note(path.read_text(), path.name)
    assert note.task_id == out["task_id"] and note.title == "Landing page: bakery"
    assert note.task_type == "claude_app" and note.priority.value == "high"
    assert note.body == "Opening hours and a form.\n"
    again = run_cli("add", "Landing page: bakery", "--vault", str(root))
    assert again.returncode == 0
    assert again.stdout.splitlines()[0].endswith("Landing page bakery (2).md")


def test_add_refuses_path_tricks(tmp_path: Path) -> None:
    root = tmp_path / "v"
    main(["init", "--vault", str(root)])
    result = run_cli("add", "x", "--vault", str(root), "--app", "../../etc")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "ai-employee: error: add: app: '../../etc' is not a plain folder name"
    )
    assert "Traceback" not in result.stderr


def test_status_lists_counts_active_tasks_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "v"
    main(["init", "--vault", str(root)])
    na = root / "Needs_Action"
    (na / "ok.md").write_text("---\ntitle: Fine\nstatus: planned\ntask_id: abc\n---\n")
    (na / "broken.md").write_text("---\ntitle: [unclosed\n---\n")
    (na / "fence.md").write_text("---\ntitle: never closed\n")
    (na / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    (na / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (na / "status.md").write_text("---\nstatus: finished\n---\n")
    (na / "escape.md").symlink_to("/etc/hostname")
    (na / "trick.md").write_text("---\ntitle: t\napp: ../../etc\n---\n")
    (root / "Done" / "old.md").write_text("---\nstatus: done\n---\n")
    by_env = run_cli("status", env={"AI_EMPLOYEE_VAULT": str(root)})
    by_flag = run_cli("--vault", str(root), "status")
    assert by_env.returncode == by_flag.returncode == 0
    assert by_env.stdout == by_flag.stdout
    text = by_flag.stdout
    assert "Needs_Action      1 planned, 7 refused" in text
    assert "Done              1 done" in text
    assert "abc       planned" in text
    for line in [
        "Needs_Action/broken.md: frontmatter is not valid YAML at line 3, column 1",
        "Needs_Action/fence.md: frontmatter fence '---' on line 1 never closes",
        "Needs_Action/latin1.md: not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8",
        "Needs_Action/binary.md: binary file (it contains NUL bytes), not a markdown note",
        "Needs_Action/status.md: unknown status 'finished'",
        "Needs_Action/escape.md: symlink to '/etc/hostname', outside the vault; not followed",
        "Needs_Action/trick.md: app: '../../etc' is not a plain folder name",
    ]:
        assert line in text, line
    data = json.loads(run_cli("status", "--json", "--vault", str(root)).stdout)
    assert data["counts"]["Needs_Action"] == {"planned": 1, "refused": 7}
    assert [t["task_id"] for t in data["active"]] == ["abc"]
    assert len(data["refused"]) == 7


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["status", "--vault", "/nonexistent/v"], {}, 3, "vault '/nonexistent/v' does not exist"),
        (["status"], {"AI_EMPLOYEE_MAX_PARALLEL": "lots"}, 2, "max_parallel = 'lots' from env"),
        (["add", "", "--vault", "{root}"], {}, 2, "add: the title is empty"),
    ],
)
def test_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    root = tmp_path / "v"
    main(["init", "--vault", str(root)])
    env = {"AI_EMPLOYEE_VAULT": str(root), **env}
    result = run_cli(*[a.replace("{root}", str(root)) for a in args], env=env)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("ai-employee: error: ")


def test_add_logs_an_audit_line(tmp_path: Path) -> None:
    root = tmp_path / "v"
    main(["init", "--vault", str(root)])
    run_cli("add", "Audit me", "--vault", str(root))
    (log_file,) = (root / "Logs").glob("*.jsonl")
    entry = json.loads(log_file.read_text().splitlines()[-1])
    assert list(entry)[:12] == [
        "timestamp",
        "level",
        "event",
        "action_type",
        "actor",
        "target",
        "task_id",
        "parameters",
        "approval_status",
        "approved_by",
        "result",
        "error",
    ]
    assert entry["action_type"] == "add" and entry["target"] == "Needs_Action/Audit me.md"
