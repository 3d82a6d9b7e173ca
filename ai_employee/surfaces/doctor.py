"""`ai-employee doctor`: check what runs depend on, and say what to fix for each problem."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..base import diskspace
from ..base.config import Config
from ..base.errors import VaultError
from ..base.sandbox import Sandbox
from ..notes.vault import TASK_FOLDERS, Folder, Vault

Level = Literal["ok", "warn", "fail"]

MIN_WATCHES = 8192
"""Below this many inotify watches per user, other programs may leave the service none."""


@dataclass(frozen=True)
class Check:
    level: Level
    what: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.level]
        return f"{mark} {self.what}" + (f"\n     fix: {self.fix}" if self.fix else "")


def run_checks(config: Config, *, login_probe: bool = True) -> list[Check]:
    checks = [*_vault_checks(config), *disk_checks(config), *_inotify_checks(), _git_check()]
    if config.agent == "claude" or config.planner == "claude":
        checks += _claude_checks(config, login_probe)
    if config.agent == "command":
        checks.append(_command_check(config))
    if config.agent == "acp":
        checks.append(acp_check(config))
    if config.sandbox == "bwrap":
        checks.append(sandbox_check())
        if config.agent == "claude":
            checks.append(socat_check())
    return checks


def socat_check() -> Check:
    """Claude Code's own sandbox (claude runs with `sandbox = "bwrap"`) needs socat too."""
    socat = shutil.which("socat")
    if socat is None:
        return Check(
            "fail",
            'sandbox = "bwrap" but socat is not installed: Claude Code refuses to start its '
            "sandbox without it, so claude runs fail",
            'install socat (apt install socat), or set sandbox = "none"',
        )
    return Check("ok", f"socat at {socat} (Claude Code's sandbox needs it beside bwrap)")


def sandbox_check() -> Check:
    """`sandbox = "bwrap"`: bubblewrap is there and can make a sandbox on this machine (a
    kernel or a container may forbid the namespaces it needs)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Check(
            "fail",
            'sandbox = "bwrap" but bwrap is not installed: command agents and checks cannot run',
            'install bubblewrap (apt install bubblewrap), or set sandbox = "none"',
        )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            probe = Sandbox().wrap(["true"], Path(tmp), Path(tmp))
            tried = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("fail", f"bwrap at {bwrap} does not start: {err}", "reinstall bubblewrap")
    if tried.returncode != 0:
        said = (tried.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(
            "fail",
            f"bwrap at {bwrap} cannot make a sandbox here: {said}",
            "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1; on Ubuntu "
            'an AppArmor profile for bwrap), or set sandbox = "none"',
        )
    return Check("ok", f'bwrap at {bwrap} makes a sandbox (sandbox = "bwrap")')


def disk_checks(config: Config) -> list[Check]:
    """The vault's and apps_dir's disks take writes (not full, not read-only)."""
    places = {"vault": config.vault, "apps_dir": config.apps_dir}
    found = diskspace.troubles(places)
    if found:
        return [
            Check(
                "fail",
                f"{t.words}: nothing can be recorded there (the service waits, and goes on by "
                "itself once it can write)",
                t.fix,
            )
            for t in found
        ]
    space = diskspace.space_of(config.vault)
    free = f": {diskspace.human_bytes(space.free_bytes)} free" if space else ""
    return [Check("ok", f"the vault's disk takes writes{free}")]


def _vault_checks(config: Config) -> list[Check]:
    vault = Vault(config.vault)
    try:
        vault.require()
    except VaultError as err:
        return [
            Check("fail", str(err), f"ai-employee init --vault {shlex.quote(str(config.vault))}")
        ]
    out = [Check("ok", f"vault {vault.root} has its folders")]
    for folder in (*TASK_FOLDERS, Folder.PLANS, Folder.LOGS):
        path = vault.folder(folder)
        if not os.access(path, os.W_OK | os.X_OK) and not _read_only(path):
            out.append(
                Check(
                    "fail",
                    f"{path} is not writable by this user",
                    f"chown or chmod it so {os.getuid()} can write",
                )
            )
    apps = config.apps_dir
    if apps.exists() and not os.access(apps, os.W_OK | os.X_OK):
        out.append(Check("fail", f"apps_dir {apps} is not writable", "fix its permissions"))
    elif not apps.exists():
        out.append(Check("warn", f"apps_dir {apps} does not exist yet (created on first run)"))
    return out


def _read_only(path: Path) -> bool:
    """On a read-only filesystem (said by `disk_checks`, not as a permission)."""
    space = diskspace.space_of(path)
    return space is not None and space.read_only


def _inotify_checks() -> list[Check]:
    base = Path("/proc/sys/fs/inotify")
    if not base.is_dir():
        return [Check("warn", "no inotify here: use polling = true on network folders/WSL")]
    values = {
        name: int((base / name).read_text())
        for name in ("max_user_watches", "max_user_instances", "max_queued_events")
    }
    text = ", ".join(f"{k}={v}" for k, v in values.items())
    if values["max_user_watches"] < MIN_WATCHES:
        return [
            Check(
                "warn",
                f"inotify limits are low ({text})",
                "sudo sysctl fs.inotify.max_user_watches=524288 (and add it to /etc/sysctl.d/)",
            )
        ]
    return [Check("ok", f"inotify limits: {text}")]


def _claude_checks(config: Config, login_probe: bool) -> list[Check]:
    claude = config.claude_path
    if shutil.which(claude) is None:
        return [
            Check(
                "fail",
                f"claude not found (claude_path = {claude!r})",
                "npm install -g @anthropic-ai/claude-code, or set claude_path to its absolute path",
            )
        ]
    try:
        version = subprocess.run(
            [claude, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return [
            Check(
                "fail",
                f"claude at {claude} does not start: {err}",
                "reinstall it (npm install -g @anthropic-ai/claude-code)",
            )
        ]
    out = [Check("ok", f"claude {version.stdout.strip()} at {claude}")]
    if login_probe:
        out.append(login_check(claude))
    return out


def login_check(claude: str) -> Check:
    """A tiny headless run: "Not logged in" is the signal (it costs a few tokens when it works)."""
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    with tempfile.TemporaryDirectory(prefix="ai-employee-doctor-") as tmp:
        prompt = Path(tmp) / "prompt.txt"
        prompt.write_text("Reply with the single word OK.\n")
        try:
            with prompt.open("rb") as stdin:
                done = subprocess.run(
                    [
                        claude,
                        "-p",
                        "--output-format",
                        "json",
                        "--max-turns",
                        "1",
                        "--no-session-persistence",
                    ],
                    stdin=stdin,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                    cwd=tmp,
                    env=env,
                )
        except subprocess.TimeoutExpired:
            return Check("warn", "claude did not answer within 120 s (network? API down?)")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {}
    text = str(result.get("result", "") or done.stdout.strip() or done.stderr.strip())
    if text.startswith("Not logged in"):
        return Check(
            "fail",
            "claude is not logged in",
            f"run `{shlex.quote(claude)}` once and log in (/login), or set ANTHROPIC_API_KEY for "
            "the service",
        )
    if result.get("is_error"):
        return Check(
            "fail",
            f"claude answered with an error: {text[:200]}",
            "check the API key, the network, and ANTHROPIC_BASE_URL",
        )
    return Check("ok", "claude is logged in and answers")


def _git_check() -> Check:
    """Every task's work dir is a git repository (each round a commit): git must be there."""
    git = shutil.which("git")
    if git is None:
        return Check(
            "fail",
            "git not found: every task's work dir is a git repository",
            "install git (apt install git, brew install git)",
        )
    try:
        version = subprocess.run(
            [git, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("fail", f"git at {git} does not start: {err}", "reinstall git")
    found = re.search(r"(\d+)\.(\d+)", version)
    if found and (int(found[1]), int(found[2])) < GIT_AT_LEAST:
        wanted = ".".join(map(str, GIT_AT_LEAST))
        return Check(
            "fail",
            f"{version} at {git} is older than git {wanted}, which tasks need",
            f"install git {wanted} or later (apt install git, brew install git)",
        )
    return Check("ok", f"{version or 'git'} at {git}")


GIT_AT_LEAST = (2, 36)
"""The oldest git the work dirs use: `git worktree list --porcelain -z` (2.36); porcelain v2
status, `--pathspec-file-nul` and `update-ref` with an old value are older."""


def _command_line(key: str, value: str, agent: str, example: str) -> list[str] | Check:
    """A configured command line split into its program and arguments, or the failed check
    that says why it cannot be (bad quoting, empty)."""
    try:
        argv = shlex.split(value)
    except ValueError as err:
        return Check("fail", f"{key} cannot be split: {err}", "fix its quoting")
    if not argv:
        return Check("fail", f"agent = {agent} but {key} is empty", example)
    return argv


def _command_check(config: Config) -> Check:
    argv = _command_line(
        "agent_command",
        config.agent_command,
        "command",
        'set agent_command = "my-agent {prompt_file}" in .ai-employee.toml',
    )
    if isinstance(argv, Check):
        return argv
    if shutil.which(argv[0]) is None:
        return Check(
            "fail",
            f"agent_command program {argv[0]!r} not found",
            "install it or use its absolute path",
        )
    return Check("ok", f"agent_command program {argv[0]!r} found")


ACP_CHECK_SECONDS = 60.0
"""How long `doctor` waits for the ACP agent to answer `initialize` (npx may download it)."""


def acp_check(config: Config) -> Check:
    """The configured ACP agent starts and answers `initialize` (through the bridge every round
    uses), naming itself and its version."""
    argv = _command_line(
        "acp_command",
        config.acp_command,
        "acp",
        "set acp_command to the ACP agent's command line (docs/AGENTS.md)",
    )
    if isinstance(argv, Check):
        return argv
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    with tempfile.TemporaryDirectory(prefix="ai-employee-doctor-") as cwd:
        bridge = [sys.executable, "-m", "ai_employee.running.acp_bridge", "--check"]
        proc = subprocess.Popen(
            [*bridge, "--cwd", cwd, "--prompt", os.devnull, "--", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,  # the agent shares it: a timeout stops both
        )
        try:
            out, errs = proc.communicate(timeout=ACP_CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Check(
                "fail",
                f"the ACP agent {argv[0]!r} did not answer initialize in {ACP_CHECK_SECONDS:.0f} s",
                "run acp_command by hand to see what it waits for",
            )
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, errs)
    said = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    init = next((m for m in said if m.get("type") == "init"), None)
    if init is None:
        error = next((m.get("error") for m in said if m.get("error")), None)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(
            "fail",
            f"the ACP agent {argv[0]!r} did not answer initialize: {error or last}",
            "install it (docs/AGENTS.md) or fix acp_command",
        )
    agent = init.get("agent") or {}
    loads = "yes" if init.get("load_session") else "no (approvals start a new session)"
    return Check(
        "ok",
        f"ACP agent {agent.get('name', argv[0])} {agent.get('version', '')} answers initialize; "
        f"loads sessions: {loads}",
    )
