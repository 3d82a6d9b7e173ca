"""The agent interface: how to start a run, what a line of output means, how a run ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ..workrepo import Changes


class OutcomeKind(StrEnum):
    """How a run ended, as far as retrying is concerned."""

    SUCCESS = "success"
    """The work is done: the note goes to Done/."""
    TRANSIENT = "transient"
    """Worth another attempt (after a backoff) while attempts are left."""
    PERMANENT = "permanent"
    """Another attempt would fail the same way: Failed/ at once, with what to do."""
    CANCELLED = "cancelled"
    """A person stopped it."""
    INTERRUPTED = "interrupted"
    """The service stopped it on shutdown: retried on the next start, same session."""
    SKIPPED = "skipped"
    """Nothing ran: the note changed (or went away) before it could be claimed."""
    ASKED = "asked"
    """The agent asked for tools it was not given: a person decides (Pending_Approval/); an
    approval resumes the same session with exactly those tools. No attempt spent."""
    PAUSED = "paused"
    """A usage limit was reached: every claude run waits until it resets. No attempt spent."""

    @property
    def said(self) -> str:
        """How the agent's run went, in words a person reads (the page's transcript). What
        became of the task is the run's end's to say (run_end.RunEnd.said)."""
        return _SAID[self]


_SAID = {
    OutcomeKind.SUCCESS: "succeeded",
    OutcomeKind.TRANSIENT: "failed; worth another attempt",
    OutcomeKind.PERMANENT: "failed; another attempt would fail the same way",
    OutcomeKind.CANCELLED: "cancelled by a person",
    OutcomeKind.INTERRUPTED: "interrupted by a stop",
    OutcomeKind.SKIPPED: "not run: the note changed before it could be claimed",
    OutcomeKind.ASKED: "asked a person for a tool",
    OutcomeKind.PAUSED: "stopped by a usage limit",
}


@dataclass(frozen=True)
class Ask:
    """One tool the agent asked for and was refused, as a person reads it and as a rule."""

    tool: str
    """The tool's name (Bash, Write...)."""
    asked: str
    """What it wanted to do with it: the command, the file, the address."""
    rule: str
    """The permission rule that allows exactly that (`Bash(npm install)`): what an approval
    grants, passed as one `--allowedTools` each."""


@dataclass(frozen=True)
class RunSpec:
    """Everything an agent needs to start one attempt."""

    task_id: str
    task_type: str
    note_path: Path
    vault: Path
    workdir: Path
    prompt_file: Path
    attempt: int
    session_id: str | None = None
    resume: bool = False
    handbook: str = ""
    allowed_tools: tuple[str, ...] = ()
    """Permission rules a person granted this task (its `granted_tools`), beyond the config's."""
    setup_error: str = ""
    """Set when the claim is on the note but the run could not be prepared (its prompt file
    could not be written): the attempt ends at once as a transient failure, with this error."""


@dataclass(frozen=True)
class Question:
    """A tool an agent asks a person for while it waits, alive, for their answer."""

    ask: Ask
    number: int
    """The agent's number for it (an answer names it: a late one for an earlier is dropped)."""
    wait_s: float
    """How long it waits; then it is refused (an ask the task waits with)."""


@dataclass
class RunState:
    """What an agent learns from the output while it runs (it owns the contents)."""

    lines: int = 0
    tail: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    waiting: Question | None = None
    """What the agent asks a person while it waits, alive, for the answer (an ACP agent's
    permission request); None when nothing waits."""
    session_id: str | None = None
    """The agent's session, once it said which (ACP: the agent names it)."""

    def keep(self, line: str, limit: int = 40) -> None:
        self.lines += 1
        self.tail.append(line)
        if len(self.tail) > limit:
            del self.tail[0]


@dataclass(frozen=True)
class CheckResult:
    """How a task's check (its `verify` command) went after one round."""

    command: str
    passed: bool
    exit_code: int | None
    error: str
    """Why it did not pass: "exit 1", "timed out after 600 s (verify_timeout_seconds)"."""
    tail: str
    """The last lines of its output."""

    @property
    def last_line(self) -> str:
        lines = [line.strip() for line in self.tail.splitlines() if line.strip()]
        return (lines[-1] if lines else self.error or "no output")[:300]

    @property
    def why(self) -> str:
        """One line: how it ended."""
        if self.passed:
            return "exit code 0"
        if self.exit_code is not None and self.error.startswith("exit "):
            return f"exit code {self.exit_code}"
        return self.error or "it did not pass"


@dataclass(frozen=True)
class Round:
    """One agent round of an attempt and the check after it (None: it did not get one)."""

    number: int
    cost_usd: float | None
    turns: int | None
    check: CheckResult | None


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    error: str = ""
    """One line: what happened and what to do (empty on success)."""
    result: str = ""
    """The `## Result` section's text."""
    exit_code: int | None = None
    cost_usd: float | None = None
    session_id: str | None = None
    turns: int | None = None
    asked: tuple[Ask, ...] = ()
    """ASKED: the tools asked for."""
    resets_at: datetime | None = None
    """PAUSED: when the usage limit resets."""
    limit: str = ""
    """PAUSED: which limit ("5-hour limit")."""
    rounds: tuple[Round, ...] = ()
    """A checked task's rounds (empty without a `verify`); cost and turns are their sums."""
    changes: Changes | None = None
    """What the attempt's rounds changed in the work dir, committed (None: not known)."""


class Agent(Protocol):
    """A backend: builds the command line, reads the output, judges the end of a run."""

    name: str
    reads_prompt: bool
    """Whether the agent reads the prompt file (it is only written for one that does)."""

    def argv(self, spec: RunSpec) -> list[str]: ...

    def stdin(self, spec: RunSpec) -> Path | None:
        """A file for the agent's stdin (never an open pipe), or None for /dev/null."""
        ...

    def prompt_header(self, spec: RunSpec) -> str:
        """What goes before the task in the prompt file (the handbook, for some agents)."""
        ...

    def on_line(self, line: str, state: RunState) -> dict[str, Any] | None:
        """Note one line of output; return a progress record worth logging, if any."""
        ...

    def finish(self, exit_code: int, state: RunState) -> Outcome: ...

    def not_found(self, spec: RunSpec, error: OSError) -> Outcome: ...


class Answering(Agent, Protocol):
    """An agent that can wait for a person's answer while it runs (agents/acp.py): its stdin
    is a pipe the run writes the answer to."""

    def answer_line(self, number: int, allow: bool) -> bytes:
        """What to write to the agent's stdin to answer its question `number`."""
        ...


def answers(agent: Agent) -> Answering | None:
    """The agent as one that takes a person's answers while it runs, if it is one."""
    return agent if callable(getattr(agent, "answer_line", None)) else None  # type: ignore[return-value]
