"""Shows a fresh clone on a machine without node or npm: README's run command sets up and
runs, and a Claude task is done (against the tests' fake Anthropic API on 127.0.0.1).

    .venv/bin/python scripts/show_without_node.py

PATH holds every program of this machine but node, nodejs, npm, npx and corepack; HOME is
empty; the clone is of this checkout's HEAD.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fake_anthropic import FakeAnthropic  # noqa: E402

base = Path(os.environ.get("TMPDIR", "/tmp")) / "ai-employee-no-node"
shutil.rmtree(base, ignore_errors=True)
(base / "bin").mkdir(parents=True)
(base / "home").mkdir()
hidden = {"node", "nodejs", "npm", "npx", "corepack"}
for d in os.environ["PATH"].split(":"):
    if not os.path.isdir(d):
        continue
    for name in os.listdir(d):
        target = base / "bin" / name
        if name not in hidden and not target.exists():
            target.symlink_to(os.path.join(d, name))
subprocess.run(["git", "clone", "-q", str(ROOT), str(base / "main")], check=True)
fake = FakeAnthropic().start()
env = {
    k: v for k, v in os.environ.items() if not k.startswith(("AI_EMPLOYEE", "ANTHROPIC", "CLAUDE"))
}
env.pop("IS_SANDBOX", None)
env.update(
    PATH=str(base / "bin"),
    HOME=str(base / "home"),
    ANTHROPIC_BASE_URL=fake.url,
    ANTHROPIC_API_KEY="test",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    AI_EMPLOYEE_DASHBOARD_PORT="18787",
)
print(
    "which node npm:",
    subprocess.run(
        "command -v node npm; echo rc=$?", shell=True, env=env, capture_output=True, text=True
    ).stdout.strip(),
)
started = time.monotonic()
log = open(base / "run.log", "w")
proc = subprocess.Popen(
    ["bash", "scripts/run.sh"],
    cwd=base / "main",
    env=env,
    stdout=log,
    stderr=subprocess.STDOUT,
    start_new_session=True,
)
vault = base / "main" / "vault"
deadline = time.monotonic() + 600
while "service ready" not in (base / "run.log").read_text() and time.monotonic() < deadline:
    time.sleep(0.5)
print(f"run.sh: set up and ready in {time.monotonic() - started:.0f} s")
fake.enqueue({"kind": "text", "text": "hello from a clone without node"})
(vault / "Needs_Action" / "Hello.md").write_text(
    "---\ntitle: Hello\ntype: claude_app\n---\nSay hello.\n"
)
done = vault / "Done" / "Hello.md"
while not done.exists() and time.monotonic() < deadline:
    time.sleep(0.2)
os.killpg(proc.pid, signal.SIGTERM)
proc.wait(30)
fake.stop()
text = (base / "run.log").read_text()
for line in text.splitlines():
    if (
        line.startswith(("setup:", "ok ", "FAIL", "vault ready", "created"))
        or "claude" in line[:60]
    ):
        print("  |", line[:160])
print(done.read_text() if done.exists() else "NOT DONE")
