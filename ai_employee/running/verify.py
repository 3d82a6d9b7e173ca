"""A task's check: the command that says whether the work is done, and what happens after it.

A note's `verify` (or its type's `[types.NAME] verify`) is a command line, split like
`agent_command` (the contract's placeholders replaced inside elements, never a shell), run in
the work dir after an agent round that succeeded. It passes (exit 0): the task is done. It
fails or times out: another round in the same session, told what failed, until `max_rounds`.
`check_for` reads the check (pure), `CheckAgent` runs it as an agent process would be run (its
own group, stopped with the run, its output in the transcript), `next_round` decides (pure).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import commandline
from ..base.config import Config
from .agents.base import CheckResult, Outcome, OutcomeKind, RunSpec, RunState

CHECK_TAIL_LINES = 30
"""How many of the check's last output lines a round's prompt and the Result show."""

CHECK_TAIL_CHARS = 3000
"""... and at most this many characters of them."""


class BadCheck(ValueError):
    """The note's or type's check cannot be run as written: one line saying why and where."""


@dataclass(frozen=True)
class Check:
    """How a task is checked: the command, its argv template, its clock, the rounds it gets."""

    command: str
    argv: tuple[str, ...]
    timeout_s: float
    max_rounds: int


ROUNDS_CEILING = 10
"""The most rounds a note or a type may ask for: every round may cost up to max_budget_usd, and
the daily budget is only looked at before an attempt starts."""

CHECK_TIMEOUT_CEILING = 86_400.0
"""The longest a check may run (a day)."""


def _number(value: object, key: str, where: str, minimum: float, maximum: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not minimum <= value <= maximum
    ):
        raise BadCheck(
            f"{where} {key} = {value!r}: expected a number from {minimum:g} to {maximum:g}"
        )
    return float(value)


def check_for(meta: Mapping[str, Any], config: Config, task_type: str) -> Check | None:
    """The task's check: the note's `verify`, `verify_timeout_seconds` and `max_rounds` win over
    its type's table, which wins over the top level's; None when neither note nor type names a
    `verify`. BadCheck when it cannot be run as written."""
    per_type = config.for_type(task_type)
    raw = meta.get("verify")
    where = "the note's"
    if raw is None:
        raw, where = per_type.verify, f"[types.{task_type}]"
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise BadCheck(f"{where} verify = {raw!r}: expected a command line (a string)")
    try:
        argv = commandline.split(raw)
    except ValueError as err:
        raise BadCheck(f"{where} verify = {raw!r}: {err}") from err
    if not argv:
        return None
    timeout = meta.get("verify_timeout_seconds")
    if timeout is None:
        timeout = per_type.verify_timeout_seconds
    if timeout is None:
        timeout = config.verify_timeout_seconds
    rounds = meta.get("max_rounds")
    if rounds is None:
        rounds = per_type.max_rounds
    if rounds is None:
        rounds = config.max_rounds
    timeout_s = _number(timeout, "verify_timeout_seconds", where, 1, CHECK_TIMEOUT_CEILING)
    max_rounds = _number(rounds, "max_rounds", where, 1, ROUNDS_CEILING)
    if max_rounds != int(max_rounds):
        raise BadCheck(f"{where} max_rounds = {rounds!r}: expected a whole number")
    return Check(raw.strip(), tuple(argv), timeout_s, int(max_rounds))


def done_when(meta: Mapping[str, Any], config: Config, task_type: str) -> str:
    """The plan's "Done when" line for a task's check; "" without one."""
    try:
        check = check_for(meta, config, task_type)
    except BadCheck as err:
        return f"the check cannot run as written ({err}); the run fails until it is fixed"
    if check is None:
        return ""
    fence = "``" if "`" in check.command else "`"
    return (
        f"{fence}{check.command}{fence} passes in the work dir (the service runs it after each "
        f"round; up to {check.max_rounds} round{'s' if check.max_rounds != 1 else ''})"
    )


class CheckAgent:
    """The check as an `Agent` for agentproc.AgentProcess (its process group, stop pipe, clock
    and transcript): argv from the template, no prompt, exit 0 passes. Its outcome's kind says
    how the check ended, not what the task does next: SUCCESS passed, TRANSIENT did not pass
    (an exit, a timeout), PERMANENT could not start, CANCELLED/INTERRUPTED stopped; `next_round`
    decides from that. Used by one run's thread."""

    name = "check"
    reads_prompt = False

    def __init__(self, check: Check) -> None:
        self.check = check

    def argv(self, spec: RunSpec) -> list[str]:
        return commandline.substitute(
            self.check.argv,
            commandline.values(spec.prompt_file, spec.note_path, spec.workdir, spec.task_id),
        )

    def stdin(self, spec: RunSpec) -> Path | None:
        return None

    def prompt_header(self, spec: RunSpec) -> str:
        return ""

    def on_line(self, line: str, state: RunState) -> dict[str, Any] | None:
        state.keep(line, limit=CHECK_TAIL_LINES)
        return None

    def finish(self, exit_code: int, state: RunState) -> Outcome:
        tail = "\n".join(state.tail)
        if exit_code == 0:
            return Outcome(OutcomeKind.SUCCESS, result=tail, exit_code=0)
        return Outcome(OutcomeKind.TRANSIENT, f"exit {exit_code}", tail, exit_code)

    def not_found(self, spec: RunSpec, error: OSError) -> Outcome:
        return Outcome(
            OutcomeKind.PERMANENT,
            error=f"cannot start the check {self.argv(spec)[0]!r}: {error.strerror or error}; "
            "fix verify on the note or in its [types.NAME] table",
        )


def check_result(check: Check, outcome: Outcome) -> CheckResult:
    """How the check went, from its process's outcome."""
    tail = outcome.result.strip()
    if len(tail) > CHECK_TAIL_CHARS:
        tail = "…" + tail[-CHECK_TAIL_CHARS:]
    passed = outcome.kind is OutcomeKind.SUCCESS
    return CheckResult(check.command, passed, outcome.exit_code, outcome.error, tail)


class Next(enum.Enum):
    """What follows a round's check."""

    DONE = "done"
    """It passed: the task is done."""
    ANOTHER_ROUND = "another round"
    """It failed with rounds left: the agent goes on in the same session, told what failed."""
    FAILED = "failed"
    """It failed on the last round: the task failed ("verification failed after N rounds")."""
    STOPPED = "stopped"
    """The check itself was stopped (a cancel, a shutdown) or cannot run: the run ends so."""


def next_round(check_kind: OutcomeKind, round_number: int, max_rounds: int) -> Next:
    """After round `round_number`'s check ended as `check_kind` (its process's outcome)."""
    if check_kind is OutcomeKind.SUCCESS:
        return Next.DONE
    if check_kind is not OutcomeKind.TRANSIENT:  # cancelled, interrupted, cannot be started
        return Next.STOPPED
    return Next.ANOTHER_ROUND if round_number < max_rounds else Next.FAILED


def failed_error(rounds: int, result: CheckResult) -> str:
    """The note's error when the check never passed."""
    plural = "s" if rounds != 1 else ""
    return f"verification failed after {rounds} round{plural}: {result.last_line}"


def failure_prompt(result: CheckResult, round_number: int, max_rounds: int) -> str:
    """What the next round is told: the check, how it ended, the tail of its output."""
    tail = result.tail.replace("```", "'''") or "(no output)"
    return "\n".join(
        [
            f"## The check failed (round {round_number} of {max_rounds} begins)",
            "",
            "The service ran the task's check in the work dir after your last round, and it did "
            "not pass:",
            "",
            f"- command: `{result.command}`",
            f"- {result.why}",
            "",
            "Its output ends:",
            "",
            "```text",
            tail,
            "```",
            "",
            "Fix the work so that this check passes. The task is done only when it does.",
        ]
    )
