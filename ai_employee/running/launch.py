"""How an agent's (or a check's) process is started, and what is cleaned up after it.

The environment is what `agent_env` allows, plus `AI_EMPLOYEE_RUN`, a mark of this process's
own; the argv is the agent's, in bubblewrap with a private TMPDIR when sandboxed; the process
gets a group (a session) of its own, its stdin from the prompt file, /dev/null, or a pipe for
an agent that takes a person's answers. At its end, whatever still carries its mark (a tool in
a session of its own, one that ignores SIGTERM) is stopped, and the TMPDIR removed. Used by one
run's thread (agentproc.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ..base.commandline import AGENT_ENV_BASE, AGENT_ENV_CLAUDE, contract_env
from ..base.config import Config
from ..base.processes import stop_all, with_env
from ..base.sandbox import Sandbox
from .agents.base import Agent, RunSpec

log = structlog.get_logger(__name__)


def agent_env(
    spec: RunSpec, allowed: tuple[str, ...] | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """What the agent gets of the service's environment: the names `allowed` lets through
    (`env_allowed`; None: all), minus CLAUDECODE, plus the AI_EMPLOYEE_TASK_* variables."""
    return contract_env(spec.task_id, spec.note_path, spec.vault, base, allowed)


def env_allowed(config: Config, agent: Agent) -> tuple[str, ...]:
    """The names (and `PREFIX_*` patterns) an agent (or a check) gets of the service's
    environment: the base every program needs, Claude's for claude and acp (Claude's ACP
    adapter is the usual one), and what `agent_env` adds."""
    claude = AGENT_ENV_CLAUDE if agent.name in ("claude", "acp") else ()
    return (*AGENT_ENV_BASE, *claude, *config.agent_env)


class Launch:
    """One process of a run: started (`spawn`), then what it left stopped (`end`)."""

    def __init__(
        self,
        spec: RunSpec,
        agent: Agent,
        role: str,
        env: tuple[str, ...] | None,
        sandbox: Sandbox | None,
        piped_stdin: bool,
    ) -> None:
        self.spec = spec
        self.agent = agent
        self.role = role
        self.allowed = env
        """The names of the service's environment it gets (None: all of it)."""
        self.sandbox = sandbox
        """bubblewrap around it (`sandbox = "bwrap"`), or None."""
        self.piped_stdin = piped_stdin
        self.env: dict[str, str] = {}
        """The environment it was started with (the log names its keys, never the values)."""
        self.argv: list[str] = []
        self._tmpdir: Path | None = None
        self.marker = f"{os.getpid()}-{spec.task_id}-{spec.attempt}-{role}-{time.monotonic_ns()}"
        """`AI_EMPLOYEE_RUN` in its environment: what it started is found by it at its end."""

    def spawn(self) -> subprocess.Popen[bytes]:
        """The process, in a group of its own (OSError: it cannot be started)."""
        spec = self.spec
        self.env = {**agent_env(spec, self.allowed), "AI_EMPLOYEE_RUN": self.marker}
        self.argv = self.agent.argv(spec)
        if self.sandbox is not None:  # its private TMPDIR, removed when it ends
            self._tmpdir = Path(tempfile.mkdtemp(prefix="ai-employee-sandbox-"))
            self.argv = self.sandbox.wrap(self.argv, spec.workdir, self._tmpdir)
        stdin_path = self.agent.stdin(spec)
        with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as stdin:
            return subprocess.Popen(
                self.argv,
                cwd=spec.workdir,
                stdin=subprocess.PIPE if self.piped_stdin else stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stopped as a whole
                close_fds=True,
            )

    def end(self, note: Callable[..., None]) -> None:
        """After the process: what it left stopped (said with `note`, the transcript's), its
        TMPDIR removed."""
        self._sweep(note)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _sweep(self, note: Callable[..., Any]) -> None:
        """Every process the run started ends with it: the agent's group is gone by now, and
        what is left with its `AI_EMPLOYEE_RUN` (a tool in a session of its own, one that
        ignores SIGTERM: Claude Code's Bash tool starts each command so) is stopped here. A
        process that cleared its environment is not found (docs/RELIABILITY.md)."""
        try:
            left = with_env(f"AI_EMPLOYEE_RUN={self.marker}")
            if left:
                stop_all(left)
        except Exception:  # never fails the run's end; said in the log
            log.exception("cannot stop what the run left", task_id=self.spec.task_id)
            return
        if left:
            note("leftovers", stopped=left)
            log.warning(
                "stopped what the run left",
                action_type="run",
                task_id=self.spec.task_id,
                parameters={"pids": left, "role": self.role},
                result="processes of the run outlived its agent",
            )
