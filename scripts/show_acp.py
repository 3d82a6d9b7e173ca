"""Shows any coding agent over ACP at work, printed for a person to read.

    .venv/bin/python scripts/show_acp.py      (after scripts/setup.sh and scripts/acp-agents.sh)

One vault, three types on three agents: Claude's CLI, Claude through its ACP adapter, Codex
through its ACP adapter (the real programs from PyPI and npm, against the tests' fake Anthropic
and OpenAI APIs on 127.0.0.1); then, with Claude's adapter: a permission request approved
while the agent waits, one approved after the service restarted, and one rejected. The real
service in a thread, real inotify. Each scene is also asserted by tests/test_acp_real.py.
"""

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ai_employee.notes.vault import Folder, Vault, init_vault  # noqa: E402
from tests.claude_harness import CLAUDE, claude_config, text, write  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.fake_openai import FakeOpenAI, message  # noqa: E402
from tests.helpers import wait_for  # noqa: E402
from tests.service_harness import drop, person, recorded, running_service, wait_status  # noqa: E402

ACP = ROOT / ".cache/acp-agents/node_modules/.bin"
base = Path(os.environ.get("TMPDIR", "/tmp")) / "ai-employee-show-acp"
shutil.rmtree(base, ignore_errors=True)
for name in ("home", "tmp", "codex"):
    (base / name).mkdir(parents=True)
anthropic, openai = FakeAnthropic().start(), FakeOpenAI().__enter__()
os.environ.update(
    HOME=str(base / "home"), TMPDIR=str(base / "tmp"), ANTHROPIC_BASE_URL=anthropic.url,
    ANTHROPIC_API_KEY="test", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    CODEX_HOME=str(base / "codex"), FAKE_OPENAI_KEY="sk-test",
)  # fmt: skip
(base / "codex" / "config.toml").write_text(
    f'model = "gpt-test"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
    f'base_url = "{openai.url}"\nenv_key = "FAKE_OPENAI_KEY"\nwire_api = "responses"\n'
)


def fresh(name):
    root = base / name / "vault"
    init_vault(root, base / name / "apps")
    (root / ".ai-employee.toml").write_text(
        f'[types.acp_claude]\nagent = "acp"\nacp_command = "{ACP / "claude-agent-acp"}"\n\n'
        f'[types.acp_codex]\nacp_command = "{ACP / "codex-acp"}"\n'
    )
    return Vault(root)


def cfg(vault, **kw):
    types = "claude_app,acp_claude,acp_codex"
    return claude_config(vault, CLAUDE, auto_execute_types=types, max_parallel=1, **kw)


def task(title, kind, body="Say hello."):
    return f"---\ntitle: {title}\ntype: {kind}\n---\n{body}\n"


def shown(note, *keys):
    return ", ".join(f"{k}: {json.dumps(note.meta.get(k), default=str)}" for k in keys)


def transcript(vault, note):
    lines = [json.loads(x) for x in (vault.transcripts / f"{note.task_id}.jsonl").open()]
    starts = [x for x in lines if x["kind"] == "start"]
    answers = [x["answer"] for x in lines if x["kind"] == "answer"]
    words = [x for x in lines if x["kind"] == "out" and '"agent_message_chunk' in x["line"]]
    argv = starts[0]["argv"]
    program = argv[0].rsplit("/")[-1]
    if "ai_employee.running.acp_bridge" in argv:
        program += " -m ai_employee.running.acp_bridge ... " + argv[-1].rsplit("/")[-1]
    return (
        f"{len(lines)} lines, {len(starts)} process(es) ({program}), "
        f"{len(words)} ACP message chunks, answers sent: {answers or 'none'}"
    )


def cli(vault, *args):
    said = person(vault, *args)
    return f"   $ ai-employee {' '.join(args)}: exit {said.returncode}"


print("1. One vault, three types on three agents")
v = fresh("three")
with running_service(cfg(v)):
    for kind, said in (("claude_app", "the CLI"), ("acp_claude", "Claude's adapter"),
                       ("acp_codex", "Codex")):  # fmt: skip
        if kind == "acp_codex":
            openai.enqueue([message(f"hello from {said}")])
        else:
            anthropic.enqueue(text(f"hello from {said}"))
        drop(v, base, f"{kind}.md", task(kind, kind))
        done = wait_status(v.folder(Folder.DONE) / f"{kind}.md", "done", 60)
        print(f"   type {kind}: {shown(done, 'status', 'session_id', 'cost_usd')}")
        words = done.result.split("```text\n", 1)[-1].split("\n```", 1)[0]
        print(f"      Result's words: {words.strip()!r}")
        print(f"      transcript: {transcript(v, done)}")

print("\n2. A permission request over ACP approved while the agent waits (Claude's adapter)")
v = fresh("alive")
anthropic.enqueue(write("hello.txt", "hello\n"), text("wrote it"))
with running_service(cfg(v, permission_mode="default")):
    drop(v, base, "Page.md", task("Page", "acp_claude", "Write hello.txt."))
    held = wait_status(v.folder(Folder.PENDING_APPROVAL) / "Page.md", "pending_approval", 60)
    print(f"   held in Pending_Approval/: {shown(held, 'requested_tools', 'session_id')}")
    print(f"      error: {held.meta['error'][:110]}...")
    print(cli(v, "approve", held.task_id))
    done = wait_status(v.folder(Folder.DONE) / "Page.md", "done", 60)
print(f"   done: {shown(done, 'attempts', 'session_id', 'granted_tools', 'cost_usd')}")
print(f"      transcript: {transcript(v, done)}")

print("\n3. Approved after a restart: the session the waiting agent had is loaded")
v = fresh("restart")
anthropic.enqueue(write("hello.txt", "hello\n"))
with running_service(cfg(v, permission_mode="default")):
    drop(v, base, "Later.md", task("Later", "acp_claude", "Write hello.txt."))
    held = wait_status(v.folder(Folder.PENDING_APPROVAL) / "Later.md", "pending_approval", 60)
print(f"   service stopped while it waited: {shown(held, 'status', 'session_id')}")
print(cli(v, "approve", held.task_id))
anthropic.enqueue(write("hello.txt", "hello\n"), text("wrote it after the restart"))
with running_service(cfg(v, permission_mode="default")):
    done = wait_status(v.folder(Folder.DONE) / "Later.md", "done", 60)
print(f"   done: {shown(done, 'attempts', 'session_id', 'granted_tools')}")
print(f"      transcript: {transcript(v, done)}")
print(f"      the file: {(base / 'restart/apps/tasks' / done.task_id / 'hello.txt').read_text()!r}")

print("\n4. Rejected while the agent waits")
v = fresh("reject")
anthropic.enqueue(write("hello.txt", "hello\n"), text("then I stop"))
with running_service(cfg(v, permission_mode="default")):
    drop(v, base, "Nope.md", task("Nope", "acp_claude", "Write hello.txt."))
    held = wait_status(v.folder(Folder.PENDING_APPROVAL) / "Nope.md", "pending_approval", 60)
    print(cli(v, "reject", held.task_id))
    where = v.folder(Folder.REJECTED) / "Nope.md"
    gone = wait_for(lambda: recorded(where), 60, "the run's end on the rejected note")
lines = (v.transcripts / f"{gone.task_id}.jsonl").read_text()
print(f"   in Rejected/: {shown(gone, 'status', 'error')}")
answered = '\\"answer\\": \\"reject_once\\", \\"by\\": \\"person\\"' in lines
print(f"      the agent was answered reject_once by a person: {answered}")
print(
    f"      the file exists: {(base / 'reject/apps/tasks' / gone.task_id / 'hello.txt').exists()}"
)
anthropic.stop()
openai.__exit__()
