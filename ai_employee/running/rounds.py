"""One attempt of a task: the agent's rounds, and after each the task's check (verify.py).

A task without a check is one round: the agent's outcome is the attempt's. With one, each round
that succeeded is checked; a check that fails leaves the agent another round in the same session
(claude `--resume <session_id>`; the command agent gets the failure in its prompt file), until
the check passes or `max_rounds` is spent. Runs in the run's own thread (executor.RunThread),
which owns everything it touches: the agent processes, the prompt file, the transcript.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..base.config import Config
from .agentproc import AgentProcess, Limits, StopPipe, Transcript
from .agents.base import Agent, CheckResult, Outcome, OutcomeKind, Round, RunSpec
from .runrecords import RunJournal
from .verify import (
    BadCheck,
    Check,
    CheckAgent,
    Next,
    check_result,
    failed_error,
    failure_prompt,
    next_round,
)

WritePrompt = Callable[[RunSpec, str], None]
"""Writes the next round's prompt file for this spec, with the failure's news (OSError)."""


@dataclass(frozen=True)
class AttemptParts:
    """What an attempt runs with, given by its run's thread."""

    agent: Agent
    config: Config
    journal: RunJournal
    transcript: Transcript
    stop: StopPipe
    write_prompt: WritePrompt


class Attempt:
    """The rounds of one attempt (see the module docstring). One thread."""

    def __init__(self, spec: RunSpec, check: Check | BadCheck | None, parts: AttemptParts):
        self.spec = spec
        self.check = check
        self.parts = parts

    def run(self) -> Outcome:
        """The attempt's outcome: the agent's, or the check's verdict over its rounds, with
        the rounds' costs and turns summed. Never raises (as AgentProcess.run)."""
        if isinstance(self.check, BadCheck):  # nothing runs: the note must be fixed first
            self._note("error", error=str(self.check))
            return Outcome(OutcomeKind.PERMANENT, error=f"{self.check}; fix it, then retry")
        spec, rounds = self.spec, list[Round]()
        while True:
            number = len(rounds) + 1
            outcome = self._agent(spec)
            check = self.check
            if check is None:
                return outcome
            if outcome.kind is not OutcomeKind.SUCCESS:
                rounds.append(Round(number, outcome.cost_usd, outcome.turns, None))
                return _summed(outcome, rounds)
            checked = self._check(spec, check)
            result = check_result(check, checked)
            rounds.append(Round(number, outcome.cost_usd, outcome.turns, result))
            step = next_round(checked.kind, number, check.max_rounds)
            self._note(
                "check_end",
                round=number,
                round_cost_usd=outcome.cost_usd,
                passed=result.passed,
                exit_code=result.exit_code,
                error=result.error or None,
                next=step.value,
            )
            if step is Next.DONE:
                return _summed(outcome, rounds)
            if step is Next.STOPPED:
                return _summed(_with_agent(checked, outcome), rounds)
            if step is Next.FAILED:
                failed = Outcome(OutcomeKind.PERMANENT, failed_error(number, result))
                return _summed(_with_agent(failed, outcome), rounds)
            spec = self._next_round_spec(spec, outcome, result, number + 1, check.max_rounds)
            if spec.setup_error:
                return _summed(
                    Outcome(OutcomeKind.TRANSIENT, error=spec.setup_error, result=outcome.result),
                    rounds,
                )

    def _agent(self, spec: RunSpec) -> Outcome:
        parts = self.parts
        limits = Limits(parts.config.timeout_for(spec.task_type), parts.config.stall_seconds)
        return AgentProcess(
            spec, parts.agent, limits, parts.journal, parts.transcript, parts.stop
        ).run()

    def _check(self, spec: RunSpec, check: Check) -> Outcome:
        parts = self.parts
        limits = Limits(check.timeout_s, check.timeout_s, "verify_timeout_seconds")
        started = time.monotonic()
        checked = AgentProcess(
            spec, CheckAgent(check), limits, parts.journal, parts.transcript, parts.stop, "check"
        ).run()
        if checked.kind is OutcomeKind.TRANSIENT and checked.error.startswith("timed out"):
            seconds = time.monotonic() - started
            checked = dataclasses.replace(checked, error=f"{checked.error} after {seconds:.0f} s")
        return checked

    def _next_round_spec(
        self, spec: RunSpec, outcome: Outcome, result: CheckResult, number: int, max_rounds: int
    ) -> RunSpec:
        """The next round goes on in the same session (a session agent), told what failed."""
        session = outcome.session_id or spec.session_id
        resume = bool(session) and getattr(self.parts.agent, "uses_sessions", False)
        spec = dataclasses.replace(spec, session_id=session, resume=resume)
        self._note("round", round=number, of=max_rounds, session_id=session, resume=resume)
        try:
            self.parts.write_prompt(spec, failure_prompt(result, number, max_rounds))
        except OSError as err:
            return dataclasses.replace(
                spec, setup_error=f"cannot write the prompt file {spec.prompt_file}: {err}"
            )
        return spec

    def _note(self, kind: str, **fields: object) -> None:
        with contextlib.suppress(OSError):  # a transcript line never fails the attempt
            self.parts.transcript.write(kind, **fields)


def _with_agent(verdict: Outcome, agent: Outcome) -> Outcome:
    """The verdict, with what the last agent round reported (its output, session, exit)."""
    return dataclasses.replace(
        verdict,
        result=agent.result,
        exit_code=agent.exit_code,
        session_id=agent.session_id,
    )


def _summed(last: Outcome, rounds: list[Round]) -> Outcome:
    """`last` with the rounds, and their costs and turns summed (None when none reported)."""
    costs = [r.cost_usd for r in rounds if r.cost_usd is not None]
    turns = [r.turns for r in rounds if r.turns is not None]
    return dataclasses.replace(
        last,
        rounds=tuple(rounds),
        cost_usd=round(sum(costs), 6) if costs else None,
        turns=sum(turns) if turns else None,
    )
