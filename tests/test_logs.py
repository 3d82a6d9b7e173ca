"""What a person reads: console lines for journald, a terminal and a log file; `ai-employee logs`.

The service runs as a real process in each test; journald, the terminal (a pty) and the pipe
are what a service manager or a shell gives it.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from ai_employee.base.logs import LOG_FILE_MAX_BYTES, format_line
from ai_employee.notes.vault import Vault

from .helpers import wait_for

BINARY_NOTE = b"\x89PNG\r\n\x1a\n\x00\x00 a picture saved as a note"


def _env(vault: Vault, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_EMPLOYEE_", "JOURNAL"))}
    env.update(
        AI_EMPLOYEE_VAULT=str(vault.root),
        AI_EMPLOYEE_AGENT="command",
        AI_EMPLOYEE_AGENT_COMMAND="true",
        AI_EMPLOYEE_SETTLE_SECONDS="0.1",
    )
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_under_journald_lines_carry_the_priority_of_their_level(
    vault: Vault, tmp_path: Path
) -> None:
    console = tmp_path / "journal-stream"
    with console.open("wb") as stream:
        st = os.fstat(stream.fileno())
        env = _env(vault, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "run"], env=env, stderr=stream
        )
        try:
            wait_for(lambda: "service ready" in console.read_text(), what="the service ready")
            (vault.root / "Needs_Action" / "picture.md").write_bytes(BINARY_NOTE)
            wait_for(lambda: "note refused" in console.read_text(), what="the refusal")
        finally:
            _stop(proc)
    lines = console.read_text().splitlines()
    assert any(line.startswith("<6>service ready ") for line in lines), lines
    refused = [line for line in lines if "note refused" in line]
    assert refused == [
        "<3>note refused Needs_Action/picture.md -> left untouched "
        " error: binary file (it contains NUL bytes), not a markdown note"
    ], refused
    assert all(re.match(r"<[0-7]>", line) for line in lines), lines


def test_a_journal_stream_that_is_not_stderr_gets_json_lines(vault: Vault, tmp_path: Path) -> None:
    console = tmp_path / "a-file"
    with console.open("wb") as stream:
        env = _env(vault, JOURNAL_STREAM="1:2")  # inherited from a parent, names another stream
        done = subprocess.run(
            [sys.executable, "-m", "ai_employee", "init"], env=env, stderr=stream, check=False
        )
        assert done.returncode == 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "run"], env=env, stderr=stream
        )
        try:
            wait_for(lambda: "service ready" in console.read_text(), what="the service ready")
        finally:
            _stop(proc)
    first = json.loads(console.read_text().splitlines()[0])
    assert first["event"] == "service ready" and first["level"] == "info"


def test_on_a_terminal_lines_show_local_time_with_the_date_in_colour(
    vault: Vault, tmp_path: Path
) -> None:
    controller, terminal = pty.openpty()
    env = _env(vault, TZ="Asia/Kolkata", TERM="xterm")  # +05:30, no daylight saving
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "ai_employee", "run"], env=env, stderr=terminal)
    os.close(terminal)
    seen = b""
    try:

        def ready() -> bool:
            nonlocal seen
            if select.select([controller], [], [], 0.05)[0]:
                seen += os.read(controller, 65536)
            return b"service ready" in seen

        wait_for(ready, what="the service ready on the terminal")
    finally:
        _stop(proc)
        os.close(controller)
    line = next(x for x in seen.decode().splitlines() if "service ready" in x)
    logged = next(
        json.loads(x)
        for x in (vault.logs / f"{datetime.now(UTC):%Y-%m-%d}.jsonl").read_text().splitlines()
        if '"service ready"' in x
    )
    utc = datetime.fromisoformat(logged["timestamp"].replace("Z", "+00:00"))
    local = utc.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert line.startswith(f"{local:%Y-%m-%d %H:%M:%S} \x1b[32minfo   \x1b[0m service ready"), line


def test_a_line_shows_the_key_figures_of_a_run() -> None:
    entry = {
        "timestamp": "2026-12-02T10:00:00.5Z",
        "level": "warning",
        "event": "run finished",
        "task_id": "k3x9p2ma",
        "target": "Needs_Action/x.md",
        "result": "retry later",
        "error": "agent exited with 3",
        "parameters": {"cost_usd": 0.01234, "duration_s": 41.25, "attempt": 1},
    }
    line = format_line(entry, style="journal")
    assert line == (
        "<4>run finished [k3x9p2ma] Needs_Action/x.md -> retry later "
        " $0.0123 41.2 s  error: agent exited with 3"
    )


def test_logs_into_a_pipe_that_closes_ends_quietly(vault: Vault) -> None:
    day = vault.logs / "2026-12-01.jsonl"
    entry = {"timestamp": "2026-12-01T10:00:00Z", "level": "info", "event": "task added"}
    day.write_text("".join(json.dumps(entry) + "\n" for _ in range(20_000)))
    for extra in ("", " --json"):
        done = subprocess.run(
            [
                "bash",
                "-c",
                f"set -o pipefail; {sys.executable} -m ai_employee logs{extra} | head -1",
            ],
            env=_env(vault),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (extra, done.returncode, done.stderr)
        assert done.stderr == "", done.stderr
        assert "task added" in done.stdout and len(done.stdout.splitlines()) == 1


def test_the_log_file_moves_aside_when_full_and_takes_the_start_error(
    vault: Vault, tmp_path: Path
) -> None:
    """launchd restarts a service whose configuration is wrong every 10 s: the file stays small."""
    log_file = tmp_path / "Logs" / "ai-employee.log"
    log_file.parent.mkdir()
    log_file.write_bytes(b"x" * LOG_FILE_MAX_BYTES)
    (vault.root / ".ai-employee.toml").write_text("max_parallel = 0\n")
    env = _env(vault)
    argv = [sys.executable, "-m", "ai_employee", "run", "--log-file", str(log_file)]
    for _ in range(2):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr == ""  # it went to the file
    old = log_file.with_name("ai-employee.log.1")
    assert old.stat().st_size == LOG_FILE_MAX_BYTES
    error = (
        f"ai-employee: error: max_parallel = 0 from {vault.root}/.ai-employee.toml: "
        "must be at least 1"
    )
    assert log_file.read_text().splitlines() == [error, error]


def test_the_log_file_is_kept_under_its_size_while_it_is_written(tmp_path: Path) -> None:
    log_file = tmp_path / "service.log"
    script = (
        "import sys; from pathlib import Path; from ai_employee.base.logs import CappedLogFile\n"
        f"log = CappedLogFile(Path({str(log_file)!r}), max_bytes=1000)\n"
        "for n in range(1, 26):\n"
        "    log.write(f'line {n:02d} ' + 'x' * 91 + '\\n')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    old = log_file.with_name("service.log.1").read_text().splitlines()
    new = log_file.read_text().splitlines()
    assert [line[:7] for line in old] == [f"line {n:02d}" for n in range(11, 21)]
    assert [line[:7] for line in new] == [f"line {n:02d}" for n in range(21, 26)]


def test_the_env_file_reaches_the_agent_and_the_configuration(vault: Vault, tmp_path: Path) -> None:
    secrets = tmp_path / "service.env"
    code = "import os, pathlib, sys; pathlib.Path(sys.argv[1], 's').write_text(os.environ['S'])"
    secrets.write_text(
        "# secrets\n"
        "S='s3cret $HOME'\n"
        "AI_EMPLOYEE_AGENT_ENV=S\n"  # agents get only the names agent_env allows
        f'AI_EMPLOYEE_AGENT_COMMAND="{sys.executable} -c \\"{code}\\" {{workdir}}"\n'
        "\n; another comment\n"
    )
    secrets.chmod(0o600)
    (vault.root / "Needs_Action" / "s.md").write_text(
        "---\ntitle: S\ntype: claude_app\nlanguage: py\napp: s\n---\nwrite the secret\n"
    )
    env = _env(vault)
    env.pop("AI_EMPLOYEE_AGENT_COMMAND")
    done = subprocess.run(
        [sys.executable, "-m", "ai_employee", "once", "--env-file", str(secrets)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (vault.root.parent / "apps" / "py" / "s" / "s").read_text() == "s3cret $HOME"


def test_a_bad_env_file_line_is_one_clear_error(vault: Vault, tmp_path: Path) -> None:
    secrets = tmp_path / "service.env"
    secrets.write_text("GOOD=1\nexport BAD=2\n")
    done = subprocess.run(
        [sys.executable, "-m", "ai_employee", "once", "--env-file", str(secrets)],
        env=_env(vault),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"ai-employee: error: {secrets}:2: expected KEY=value, found 'export BAD=2'\n"
    )


def test_rotation_never_splits_a_line_written_in_two_pieces(tmp_path: Path) -> None:
    """print() writes a line and its newline apart: the file moves aside only between lines."""
    log_file = tmp_path / "service.log"
    script = (
        "import sys; from pathlib import Path; from ai_employee.base.logs import CappedLogFile\n"
        f"log = CappedLogFile(Path({str(log_file)!r}), max_bytes=1050)\n"
        "for n in range(1, 31):\n"
        "    print(f'line {n:02d} ' + 'x' * 91, file=log)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    old = log_file.with_name("service.log.1").read_text()
    new = log_file.read_text()
    for text in (old, new):
        assert text.endswith("\n") and "\n\n" not in text and not text.startswith("\n")
    assert [line[:7] for line in new.splitlines()][-1] == "line 30"


def test_a_traceback_under_journald_is_filed_as_an_error_line_by_line() -> None:
    entry = {
        "level": "error",
        "event": "internal error",
        "exception": 'Traceback (most recent call last):\n  File "x.py"\nValueError: boom',
    }
    lines = format_line(entry, style="journal").split("\n")
    assert len(lines) == 3 and all(line.startswith("<3>") for line in lines), lines


def test_a_command_line_error_under_journald_is_filed_as_an_error(tmp_path: Path) -> None:
    console = tmp_path / "journal-stream"
    with console.open("wb") as stream:
        st = os.fstat(stream.fileno())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AI_EMPLOYEE_")},
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
        }
        missing = tmp_path / "no vault"
        done = subprocess.run(
            [sys.executable, "-m", "ai_employee", "--vault", str(missing), "run"],
            env=env,
            stderr=stream,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert console.read_text() == (
        f"<3>ai-employee: error: vault {str(missing)!r} does not exist; create it with "
        f"`ai-employee init --vault '{missing}'`\n"
    )


def test_a_console_nobody_reads_any_more_does_not_stop_the_service(
    vault: Vault, tmp_path: Path
) -> None:
    """journald restarted, or the terminal's pipe closed: writes to stderr fail with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: every write to the console fails
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", "run"], env=_env(vault), stderr=write_end
    )
    os.close(write_end)
    try:
        wait_for(lambda: (vault.root / "Dashboard.md").exists(), what="the service ready")
        (tmp_path / "t.md").write_text("---\ntitle: T\ntype: claude_app\n---\nx\n")
        os.rename(tmp_path / "t.md", vault.root / "Needs_Action" / "t.md")
        wait_for(lambda: (vault.root / "Done" / "t.md").exists(), 30, "the task done")
    finally:
        _stop(proc)
