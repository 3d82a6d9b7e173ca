"""One attempt of a task: the agent's rounds, after each the task's check (verify.py), and the
round's commit (workrepo.py).

A task without a check is one round: the agent's outcome is the attempt's. With one, each round
that succeeded is checked; a check that fails leaves the agent another round in the same session
(claude `--resume <session_id>`; the command agent gets the failure in its prompt file), until
the check passes or `max_rounds` is spent. Each round's changes are committed in the work dir's
repository once the round (and its check) is over, whatever its outcome but an interruption (the
next start commits what it left); the attempt's outcome says what the task changed since its
base. A task on a person's repository works in a worktree of its own (worktree.py), made
before the rounds and removed after them (left for the next start when the service stops
mid-attempt). Runs in the run's own thread (executor.RunThread), which owns the agent
processes, the prompt file, the transcript and the work dir: an apps/ work dir's repository
is its alone while it runs (coordinator.workdir_busy); a worktree's branch and record are its
alone, in a repository that others (other runs, the person) use at the same time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..base.config import Config
from ..base.sandbox import Sandbox, sandbox_of
from .agentproc import AgentProcess, ControlPipe, Limits, Told, Transcript
from .agents.base import Agent, CheckResult, Outcome, OutcomeKind, Round, RunSpec
from .launch import env_allowed
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
from .workrepo import GitError, WorkRepo
from .worktree import Opened, TaskWorktree

WritePrompt = Callable[[RunSpec, str], None]
"""Writes the next round's prompt file for this spec, with the failure's news (OSError)."""


@dataclass(frozen=True)
class AttemptParts:
    """What an attempt runs with, given by its run's thread."""

    agent: Agent
    config: Config
    journal: RunJournal
    transcript: Transcript
    control: ControlPipe
    write_prompt: WritePrompt
    repo: WorkRepo
    base: str | None
    """The task's base commit as its note (or its transcript) records it from an earlier
    attempt (None: none)."""
    worktree: TaskWorktree | None = None
    """A task on a person's repository: its worktree, made before the rounds and removed
    after them (the work dir is its path)."""
    told: Told | None = None
    """Told when the agent begins or ends waiting for a person's answer (executor.RunThread
    posts it to the main loop)."""


class Attempt:
    """The rounds of one attempt (see the module docstring). One thread."""

    def __init__(self, spec: RunSpec, check: Check | BadCheck | None, parts: AttemptParts):
        self.spec = spec
        self.check = check
        self.parts = parts

    def run(self) -> Outcome:
        """The attempt's outcome: the agent's, or the check's verdict over its rounds, with
        the rounds' costs and turns summed. Never raises (as AgentProcess.run)."""
        check = self.check
        if isinstance(check, BadCheck):  # nothing runs: the note must be fixed first
            self._note("error", error=str(check))
            return Outcome(OutcomeKind.PERMANENT, error=f"{check}; fix it, then retry")
        if self.spec.setup_error:  # no work dir or prompt: the attempt ends at once, saying so
            return self._agent(self.spec)
        worktree = self.parts.worktree
        if worktree is None:
            return self._in_work_dir(check, None)
        try:
            opened = worktree.open()
        except GitError as err:
            return self._git_failed(err)
        self._note(
            "worktree", path=str(opened.path), branch=opened.branch, repo=str(opened.repo),
            base=opened.base, reused=opened.reused or None,
        )  # fmt: skip
        outcome = Outcome(OutcomeKind.INTERRUPTED)  # (what a crash here leaves)
        try:
            outcome = self._in_work_dir(check, opened)
        finally:
            if outcome.kind is not OutcomeKind.INTERRUPTED:  # else the next start finds it
                kept = worktree.close()
                self._note("worktree_end", branch=opened.branch, kept=kept)
        return outcome

    def _in_work_dir(self, check: Check | None, opened: Opened | None) -> Outcome:
        """The rounds in the work dir's repository, from the task's base; the outcome with
        what the task changed."""
        known = self.parts.base or (opened.base if opened is not None else None)
        try:
            base = self.parts.repo.begin(known)
        except GitError as err:
            return self._git_failed(err)
        self._note("base", sha=base)  # what the page diffs against while the task runs
        outcome = self._rounds(check)
        if outcome.kind is OutcomeKind.INTERRUPTED:
            return outcome
        outcome = self._with_changes(outcome, base)
        if opened is not None and outcome.changes is not None:
            on_branch = dataclasses.replace(
                outcome.changes,
                branch=opened.branch,
                base_branch=opened.base_branch,
                repo=str(opened.repo),
            )
            outcome = dataclasses.replace(outcome, changes=on_branch)
        return outcome

    def _git_failed(self, err: GitError) -> Outcome:
        """git could not ready the work dir: the attempt ends, saying why (permanent when
        only a change to the note or the machine helps)."""
        self._note("error", error=str(err))
        kind = OutcomeKind.PERMANENT if err.permanent else OutcomeKind.TRANSIENT
        return Outcome(kind, error=str(err))

    def _rounds(self, check: Check | None) -> Outcome:
        """Agent, check, commit, round after round, until the attempt has its outcome."""
        spec, rounds = self.spec, list[Round]()
        while True:
            number = len(rounds) + 1
            outcome = self._agent(spec)
            if check is None or outcome.kind is not OutcomeKind.SUCCESS:
                failed = self._commit(spec, number, outcome)
                if failed is not None:
                    return failed
                if check is None:
                    return outcome
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
            failed = self._commit(spec, number, outcome)
            if failed is not None:
                return _summed(failed, rounds)
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

    def _commit(self, spec: RunSpec, number: int, outcome: Outcome) -> Outcome | None:
        """The round's changes committed (None); or, when git fails, the attempt's outcome:
        the work stays in the work dir, and the next attempt commits it first."""
        if outcome.kind is OutcomeKind.INTERRUPTED:
            return None  # the service stops: the next start commits what the round left
        try:
            committed = self.parts.repo.commit_round(spec.attempt, number)
        except GitError as err:
            self._note("error", error=str(err))
            error = f"the round's work could not be committed: {err}"
            return Outcome(OutcomeKind.TRANSIENT, error=error, result=outcome.result)
        self._note(
            "commit",
            round=number,
            sha=committed.sha,
            left_out=list(committed.left_out) or None,
            agent_commits=committed.agent_commits or None,
        )
        return None

    def _with_changes(self, outcome: Outcome, base: str) -> Outcome:
        """The outcome, with what the task changed since its base (said in the transcript)."""
        try:
            changes = self.parts.repo.changes(base)
        except GitError as err:
            self._note("error", error=str(err))
            return outcome
        self._note("changes", base=changes.base, head=changes.head, summary=changes.summary)
        return dataclasses.replace(outcome, changes=changes)

    def _agent(self, spec: RunSpec) -> Outcome:
        parts = self.parts
        limits = Limits(parts.config.timeout_for(spec.task_type), parts.config.stall_seconds)
        return AgentProcess(
            spec, parts.agent, limits, parts.journal, parts.transcript, parts.control,
            told=parts.told, env=env_allowed(parts.config, parts.agent),
            sandbox=self._sandbox() if parts.agent.name == "command" else None,
        ).run()  # fmt: skip

    def _sandbox(self) -> Sandbox | None:
        """`sandbox = "bwrap"`: the command agent and the check in bubblewrap."""
        return sandbox_of(self.parts.config.sandbox, self.parts.config.sandbox_network)

    def _check(self, spec: RunSpec, check: Check) -> Outcome:
        parts = self.parts
        limits = Limits(check.timeout_s, check.timeout_s, "verify_timeout_seconds")
        started = time.monotonic()
        checker = CheckAgent(check)
        checked = AgentProcess(
            spec, checker, limits, parts.journal, parts.transcript, parts.control, "check",
            env=env_allowed(parts.config, checker), sandbox=self._sandbox(),
        ).run()  # fmt: skip
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


BASE_LINE_WITHIN_BYTES = 1024 * 1024
"""The first `base` line of a transcript is written before its first agent round: it is in
the file's first lines (read no further)."""


def base_in_transcript(path: Path) -> str | None:
    """The task's base commit as its transcript's first `base` line says (the note records it
    only when an attempt ends: an attempt a crash cut short, or one still running, has only
    this). Only a regular file is read, never through a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.pread(fd, BASE_LINE_WITHIN_BYTES, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    for raw in data.splitlines():
        if b'"kind": "base"' in raw:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            sha = record.get("sha") if isinstance(record, dict) else None
            if isinstance(sha, str) and sha:
                return sha
    return None


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
