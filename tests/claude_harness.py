"""The real Claude Code CLI against `FakeAnthropic`: fixtures (registered in conftest.py) and
the helpers the claude tests share.

The CLI (pinned in scripts/setup.sh) talks to the fake API on 127.0.0.1 and really runs its
tools (Write creates files in the work dir). A machine without it fails these tests, saying how
to install it: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_employee.notes.vault import Vault

from .fake_anthropic import FakeAnthropic
from .service_harness import svc_config

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = Path(
    os.environ.get("TEST_CLAUDE_BIN")
    or ROOT / ".cache/claude-agent-sdk/claude_agent_sdk/_bundled/claude"
)
"""The pinned CLI scripts/setup.sh installs (TEST_CLAUDE_BIN: the floors run's copy of it)."""


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    if CLAUDE.exists():
        return CLAUDE
    why = "npm is not installed, so" if shutil.which("npm") is None else "it is missing:"
    pytest.fail(f"{CLAUDE}: {why} run scripts/setup.sh (it installs the pinned CLI with npm)")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def claude_env(
    tmp_path: Path, fake: FakeAnthropic, claude_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeAnthropic:
    """The service's (and so the agent's) environment: the fake API, a private HOME and TMPDIR."""
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")  # our attempts are what we test
    monkeypatch.setenv("API_TIMEOUT_MS", "20000")
    monkeypatch.setenv("CLAUDECODE", "1")  # as if started from inside Claude Code: removed
    return fake


def claude_config(vault: Vault, claude_bin: Path, **overrides: object) -> object:
    settings: dict[str, object] = {
        "agent": "claude",
        "claude_path": str(claude_bin),
        "retry_initial_seconds": 0,
        "retry_max_seconds": 0,
        "shutdown_grace_seconds": 0,
        **overrides,
    }
    return svc_config(vault, **settings)


APP = "---\ntitle: {title}\ntype: claude_app\nlanguage: html\napp: {app}\n---\n{body}\n"


def write(name: str, content: str) -> dict[str, object]:
    return {
        "kind": "tool_use",
        "name": "Write",
        "input": {"file_path": "{cwd}/" + name, "content": content},
    }


def bash(command: str) -> dict[str, object]:
    return {"kind": "tool_use", "name": "Bash", "input": {"command": command}}


def text(reply: str) -> dict[str, object]:
    return {"kind": "text", "text": reply}
