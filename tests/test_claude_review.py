"""Review with the real Claude Code CLI against the fake API: a person's request for changes
resumes the same session told their comment, its round is a second commit, and the work comes
back for review; accepted, it is done."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_employee.notes.lifecycle import Status
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces import commands

from .claude_harness import claude_config, text, write
from .fake_anthropic import FakeAnthropic
from .helpers import wait_for
from .service_harness import drop, running_service, wait_status

pytestmark = pytest.mark.claude

NOTE = (
    "---\ntitle: Greeting\ntype: claude_app\nlanguage: html\napp: greeting\nreview: true\n---\n"
    "A page that says hello.\n"
)


def test_request_changes_resumes_the_session_with_the_comment_then_accept(
    vault: Vault, tmp_path: Path, claude_env: FakeAnthropic, claude_bin: Path
) -> None:
    claude_env.enqueue(
        write("index.html", "<p>hello</p>\n"),
        text("Wrote the page."),
        write("index.html", "<p>Hello, world!</p>\n"),  # round 2, told the comment
        text("Made it warmer."),
    )
    config = claude_config(vault, claude_bin)
    work = vault.root.parent / "apps" / "html" / "greeting"
    waiting = vault.folder(Folder.PENDING_APPROVAL) / "Greeting.md"
    with running_service(config):
        drop(vault, tmp_path, "Greeting.md", NOTE)
        first = wait_status(waiting, "in_review", 90)
        commands.request_changes(
            vault, config, "Greeting.md", "Say 'Hello, world!' instead.", actor="me",
            now=datetime.now(UTC), at="index.html:1",
        )  # fmt: skip
        wait_for(lambda: len(claude_env.main_requests()) == 4, 90, "the review round")
        second = wait_status(waiting, "in_review", 90)
        commands.accept(vault, config, "Greeting.md", actor="me", now=datetime.now(UTC))
    done = vault.folder(Folder.DONE) / "Greeting.md"
    assert done.exists()
    requests = claude_env.main_requests()
    sessions = {r["headers"].get("x-claude-code-session-id") for r in requests}
    assert len(sessions) == 1, "the review round resumes the first round's session"
    told = json.dumps(requests[2]["body"]["messages"][-1])
    assert "A person reviewed your changes and asks for more" in told
    assert "In `index.html:1`: Say 'Hello, world!' instead." in told
    assert (work / "index.html").read_text() == "<p>Hello, world!</p>\n"
    log = subprocess.run(
        ["git", "-C", str(work), "log", "--format=%s%n%b", f"{first.meta['base_commit']}..HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert log.count("round 1.") == 2, "one commit per round: the first, and the review's"
    assert second.meta["head_commit"] != first.meta["head_commit"]
    assert second.meta["session_id"] == first.meta["session_id"]
    assert Status(second.meta["status"]) is Status.IN_REVIEW
