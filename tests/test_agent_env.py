"""What agents and checks get of the service's environment (`agent_env`): an allow-list, never
every secret the service holds. A real service, a real agent process and a real check, each
writing down the environment it was started with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ai_employee.base.commandline import env_allows
from ai_employee.notes.vault import Folder, Vault

from .service_harness import drop, running_service, svc_config, wait_status

DUMP = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"


def test_a_planted_secret_never_reaches_the_agent_or_its_check(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTED_SECRET", "s3cr3t-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-for-a-command-agent")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-asked-for")
    monkeypatch.setenv("LC_TIME", "C")
    dumper = tmp_path / "dump.py"
    dumper.write_text(DUMP)
    agent_seen, check_seen = tmp_path / "agent-env.json", tmp_path / "check-env.json"
    config = svc_config(
        vault,
        agent_command=f"{sys.executable} {dumper} {agent_seen}",
        agent_env="OPENAI_API_KEY",
    )
    verify = json.dumps(f"{sys.executable} {dumper} {check_seen}")
    with running_service(config):
        drop(
            vault,
            tmp_path,
            "Env.md",
            f"---\ntitle: Env\ntype: claude_app\nverify: {verify}\n---\nGo.\n",
        )
        done = wait_status(vault.folder(Folder.DONE) / "Env.md", "done", 30)
    for seen in (agent_seen, check_seen):
        env = json.loads(seen.read_text())
        assert "PLANTED_SECRET" not in env and "ANTHROPIC_API_KEY" not in env, seen.name
        assert env["OPENAI_API_KEY"] == "sk-openai-asked-for", "a name agent_env adds"
        assert env["PATH"] and env["HOME"] and env["LC_TIME"] == "C", "what programs need"
        assert env["AI_EMPLOYEE_TASK_ID"] == done.task_id, "the agent contract's own"
    logs = "".join(p.read_text() for p in (vault.root / "Logs").glob("*.jsonl"))
    started = [json.loads(line) for line in logs.splitlines() if '"run started"' in line]
    names = started[0]["parameters"]["env"]
    assert "OPENAI_API_KEY" in names and "PATH" in names and "PLANTED_SECRET" not in names
    assert "s3cr3t" not in logs and "sk-openai-asked-for" not in logs, "names, never values"


def test_names_and_prefix_patterns() -> None:
    allowed = ("PATH", "LC_*", "ANTHROPIC_*")
    assert env_allows(allowed, "PATH") and env_allows(allowed, "LC_ALL")
    assert env_allows(allowed, "ANTHROPIC_BASE_URL")
    assert not env_allows(allowed, "PATHEXT") and not env_allows(allowed, "MY_ANTHROPIC_KEY")
