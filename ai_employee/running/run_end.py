"""How a run ends on its note: pure decisions beside lifecycle.py.

`decide_end` turns what the agent reported (an `Outcome`) and the note as it is now into the
keys to write, the `## Result` text and the folder: done, retry later (with `next_attempt_at`),
failed, cancelled (or rejected), or left as it is (interrupted by our own shutdown).
`decide_interrupted` does the same for an attempt that died with a previous service. Both apply
the one attempts rule, `RetryPolicy.spent`. No I/O here; the only impurity is the backoff's
jitter (tenacity's random wait), bounded and tested.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import tenacity

from ..base.config import Config
from ..notes.lifecycle import HOME, TERMINAL, Status, check_transition
from ..notes.vault import Folder
from .agents.base import Outcome, OutcomeKind
from .usage_limit import local_time
from .workrepo import Changes

RESULT_TAIL_CHARS = 4000
"""How much of the agent's last output the `## Result` section keeps."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many runs a task gets, and how long it waits between them."""

    max_attempts: int
    initial_s: float
    max_s: float

    @classmethod
    def of(cls, config: Config) -> RetryPolicy:
        return cls(config.max_attempts, config.retry_initial_seconds, config.retry_max_seconds)

    def spent(self, attempts: int) -> bool:
        """The attempts rule: `attempts` runs started since the last retry use them all up."""
        return attempts >= self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based): exponential with jitter (tenacity).

        `initial * 2**(attempt-1)` plus up to `initial` of jitter, capped at `max_s`. Built from
        wait_exponential and wait_random, which every tenacity 9.x has with these names
        (wait_exponential_jitter takes `initial` up to 9.1.4; 9.2 deprecates it for `multiplier`).
        """
        wait = tenacity.wait_exponential(
            multiplier=self.initial_s, max=self.max_s
        ) + tenacity.wait_random(0, self.initial_s)
        state = tenacity.RetryCallState(
            retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={}
        )
        state.attempt_number = max(1, attempt)
        return min(float(wait(state)), self.max_s)


def retry_delay(attempt: int, initial: float, maximum: float) -> float:
    """`RetryPolicy.delay` for one call (kept for callers that have no policy at hand)."""
    return RetryPolicy(1, initial, maximum).delay(attempt)


@dataclass(frozen=True)
class RunEnd:
    """How one run ends on its note."""

    kind: OutcomeKind
    """SUCCESS, TRANSIENT (retry later), PERMANENT (failed), CANCELLED or INTERRUPTED."""
    status: Status
    changes: dict[str, Any]
    """Our keys to write (None removes one); empty when the note is left as it is."""
    result: str | None
    """The `## Result` section's text (None: the section is left as it is)."""
    folder: Folder | None
    """Where the note goes (None: it stays where it is)."""
    error: str
    attempts: int

    @property
    def said(self) -> str:
        """What became of the task, in words a person reads (Dashboard.md's Recent list;
        `error` says why a failed task failed, and how to try again)."""
        if self.status is Status.IN_REVIEW:
            return "done; waits for a person's review"
        return _SAID[self.kind]

    @property
    def label(self) -> str:
        """The end in a word for the log: done, retry later, failed, cancelled, interrupted."""
        return _LABELS[self.kind]


_LABELS = {
    OutcomeKind.SUCCESS: "success",
    OutcomeKind.TRANSIENT: "retry later",
    OutcomeKind.PERMANENT: "permanent",
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.INTERRUPTED: "interrupted",
    OutcomeKind.SKIPPED: "skipped",
    OutcomeKind.ASKED: "asked a person",
    OutcomeKind.PAUSED: "paused",
}

_SAID = {
    OutcomeKind.SUCCESS: "done",
    OutcomeKind.TRANSIENT: "failed; retried after a pause",
    OutcomeKind.PERMANENT: "failed",
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.INTERRUPTED: "interrupted; retried at the next start",
    OutcomeKind.SKIPPED: "not run",
    OutcomeKind.ASKED: "waits for a person's grant",
    OutcomeKind.PAUSED: "paused until the usage limit resets",
}
"""What each end means for the task (a transient end on the last attempt is PERMANENT)."""

NOT_SPENT = frozenset({OutcomeKind.ASKED, OutcomeKind.PAUSED})
"""Ends that spend no attempt: the claim's count is taken back (the work goes on later)."""


def decide_end(
    *,
    task_id: str,
    status: Status | None,
    attempts: int,
    outcome: Outcome,
    duration_s: float,
    policy: RetryPolicy,
    now: datetime,
    review: bool = False,
    granted: tuple[str, ...] = (),
    approved_meanwhile: bool = False,
) -> RunEnd:
    """The end of a run, decided on the note as it is now (`status`, `attempts`); `review`: a
    person reviews the task's work before it is done (it then waits for them, `in_review`);
    `granted`: the rules the note grants now (`granted_tools`); `approved_meanwhile`: a person
    approved the task while it ran (its status says `approved`, or it is in Approved/).

    A person who ended the task while it ran (cancelled, rejected, or wrote done or failed)
    wins over what the agent reported, and a note they made a draft again is left as it is;
    a transient failure on the last attempt fails the task; our own shutdown leaves the note
    `executing` for the next start to count (`decide_interrupted`). A run that asked for tools
    waits for a person, one that hit a usage limit waits for the reset: neither spends an
    attempt, and both keep the session to resume.
    """
    attempts = max(1, attempts)
    kind = outcome.kind
    if kind is OutcomeKind.SKIPPED:
        raise ValueError(f"a skipped run of {task_id!r} has no end to record")
    if kind is OutcomeKind.INTERRUPTED:
        return RunEnd(kind, Status.EXECUTING, {}, None, None, outcome.error, attempts)
    if status is Status.DRAFT:  # a person took it back to write it: never touched
        return RunEnd(kind, Status.DRAFT, {}, None, None, "its note is a draft now", attempts)
    if status in TERMINAL:  # a person ended it while it ran: their end stands
        kind = OutcomeKind.CANCELLED
    error = outcome.error
    if kind is OutcomeKind.TRANSIENT and policy.spent(attempts):
        kind = OutcomeKind.PERMANENT
        error = (
            f"{outcome.error} (attempt {attempts} of {policy.max_attempts}; "
            "`ai-employee retry` to try again)"
        )
    changes = _run_keys(outcome, duration_s)
    run_number = attempts
    if kind in NOT_SPENT:
        attempts = max(0, attempts - 1)
        changes["attempts"] = attempts
    if kind is OutcomeKind.ASKED:
        ends = _asked(outcome, error, granted, approved_meanwhile)
    else:
        ends = _where_it_goes(kind, status, outcome, error, attempts, policy, now, review)
    new, folder, keys, error = ends
    changes |= keys
    if status is not None and new is not status:
        check_transition(status, new, task_id)
    result = result_text(kind, outcome, error, duration_s, run_number, task_id, new)
    return RunEnd(kind, new, changes, result, folder, error, attempts)


def _run_keys(outcome: Outcome, duration_s: float) -> dict[str, Any]:
    """The keys every recorded run writes: its figures, its session, its rounds, its commits."""
    keys: dict[str, Any] = {
        "duration_s": round(duration_s, 3),
        "exit_code": outcome.exit_code,
        "cost_usd": outcome.cost_usd,
        "rounds": len(outcome.rounds) or None,  # none: an earlier attempt's count goes
    }
    if outcome.session_id:
        keys["session_id"] = outcome.session_id
    if outcome.changes is not None:
        keys |= commit_keys(outcome.changes)
    return keys


def _where_it_goes(
    kind: OutcomeKind,
    status: Status | None,
    outcome: Outcome,
    error: str,
    attempts: int,
    policy: RetryPolicy,
    now: datetime,
    review: bool,
) -> tuple[Status, Folder | None, dict[str, Any], str]:
    """The status, folder and keys of each kind of end (`kind` as decide_end settled it), and
    the error as the note says it."""
    keys: dict[str, Any] = {"error": error}
    if kind is OutcomeKind.PAUSED:  # back at the reset, the same session
        new, folder = Status.PLANNED, None
        until = max(outcome.resets_at or now, now)
        error = f"{paused_until(until, outcome.limit, now)}; no attempt spent"
        keys |= {"error": error, "next_attempt_at": until}
    elif kind is OutcomeKind.SUCCESS:  # done, or first a person's review of the work
        new = Status.IN_REVIEW if review else Status.DONE
        folder = HOME[new]
        keys |= {"completed_at": now, "error": None}
    elif kind is OutcomeKind.CANCELLED:
        new = status if status in TERMINAL else Status.CANCELLED
        folder = HOME[new]
        keys |= {"completed_at": now, "error": error or None}
    elif kind is OutcomeKind.TRANSIENT:  # a fresh attempt after a failure starts a new session
        new, folder = Status.PLANNED, None
        delay = policy.delay(attempts)
        keys |= {"next_attempt_at": now + timedelta(seconds=delay), "session_id": None}
    else:
        new, folder = Status.FAILED, HOME[Status.FAILED]
        keys |= {"completed_at": now}
    return new, folder, {"status": new, **keys}, error


def _asked(
    outcome: Outcome, error: str, granted: tuple[str, ...], approved_meanwhile: bool
) -> tuple[Status, Folder | None, dict[str, Any], str]:
    """A run that asked for tools: a person decides, and the session goes on after. Unless
    the note grants them all already (granted while it ran, as its agent's wait ended): it
    runs again with them; or a person approved the task while it ran: their approval stands
    (left `approved` where they put it, it grants what was asked when the service takes it)."""
    rules = [a.rule for a in outcome.asked]
    keys: dict[str, Any] = {"requested_tools": rules, "next_attempt_at": None, "error": error}
    if rules and set(rules) <= set(granted):
        error = f"asked for {', '.join(rules)}, granted meanwhile: runs again with it"
        keys |= {"requested_tools": None, "error": None}
        return Status.PLANNED, None, {"status": Status.PLANNED, **keys}, error
    if approved_meanwhile:
        return Status.APPROVED, None, {"status": Status.APPROVED, **keys}, error
    new = Status.PENDING_APPROVAL
    return new, HOME[new], {"status": new, **keys}, error


@dataclass(frozen=True)
class Interrupted:
    """What the next start does with an attempt that died with the service (or by hand)."""

    changes: dict[str, Any]
    folder: Folder | None
    error: str
    summary: str


def decide_interrupted(attempts: int, policy: RetryPolicy, now: datetime) -> Interrupted:
    """An attempt that was left `executing` counts: planned again, or failed when it was the
    last (the same attempts rule as a run that ends)."""
    if policy.spent(attempts):
        error = (
            f"interrupted on attempt {attempts} of {policy.max_attempts} "
            "(the service stopped or died); `ai-employee retry` to try again"
        )
        changes = {"status": Status.FAILED, "error": error, "completed_at": now}
        return Interrupted(changes, Folder.FAILED, error, "attempts spent: failed")
    return Interrupted({"status": Status.PLANNED}, None, "", "counted; retried as planned")


def paused_until(until: datetime, limit: str, now: datetime) -> str:
    """ "paused until 20:13 UTC (5-hour limit)": the note's error while a usage limit holds."""
    return f"paused until {local_time(until, now)} ({limit or 'usage limit'})"


def result_text(
    kind: OutcomeKind,
    outcome: Outcome,
    error: str,
    duration_s: float,
    attempts: int,
    task_id: str,
    status: Status | None = None,
) -> str:
    """The `## Result` section: the facts in one line, the error, what changed, what a person
    may do next, the agent's last output."""
    spent = " (not spent)" if kind in NOT_SPENT else ""
    facts = [f"**{kind.value}**", f"attempt {attempts}{spent}", f"{duration_s:.1f} s"]
    if outcome.exit_code is not None:
        facts.append(f"exit {outcome.exit_code}")
    if outcome.cost_usd is not None:
        facts.append(f"${outcome.cost_usd:.4f}")
    if outcome.turns is not None:
        facts.append(f"{outcome.turns} turns")
    if outcome.rounds:
        facts.append(f"{len(outcome.rounds)} round{'s' if len(outcome.rounds) != 1 else ''}")
    lines = [", ".join(facts), ""]
    if error:
        lines += [f"Error: {error}", ""]
    lines += _rounds_text(outcome)
    if outcome.changes is not None:
        lines += changes_text(outcome.changes)
    if status is Status.IN_REVIEW:
        rejected = (
            "its branch is kept and your repository left as it is"
            if outcome.changes is not None and outcome.changes.branch
            else "its work dir is put back as it was before the task, its commits kept"
        )
        lines += [
            "Waits for your review: accept it (move the note to Approved/, or "
            f"`ai-employee accept {task_id}`), ask for changes (`ai-employee request-changes "
            f'{task_id} -m "..."`, or a `## Review` section and a move to Needs_Action/), or '
            f"reject it (move it to Rejected/: {rejected}).",
            "",
        ]
    if kind is OutcomeKind.ASKED and outcome.asked:
        lines.append("Asked for (an approval allows these rules, for this task only):")
        for ask in outcome.asked:
            rule = f"rule {code(ask.rule)}{reach(ask.rule)}"
            lines.append(f"- {ask.tool}: {code(ask.asked)} ({rule})")
        lines += [
            "",
            f"Approve: move the note to Approved/ or `ai-employee approve {task_id}`; "
            "reject: move it to Rejected/.",
            "",
        ]
    if outcome.result.strip():
        tail = outcome.result.strip()[-RESULT_TAIL_CHARS:].replace("```", "'''")
        lines += ["```text", tail, "```"]
    lines.append(f"Transcript: `Logs/tasks/{task_id}.jsonl`")
    return "\n".join(lines)


def commit_keys(changes: Changes) -> dict[str, Any]:
    """What the note records of the task's commits: its base, its head, what changed (and a
    repo task's branch, and the branch it began from)."""
    keys: dict[str, Any] = {
        "base_commit": changes.base,
        "head_commit": changes.head,
        "changes": changes.summary,
    }
    if changes.branch:
        keys |= {"branch": changes.branch, "base_branch": changes.base_branch}
    return keys


MAX_FILES_LISTED = 50
"""Changed files the `## Result` names; the rest are counted (the page shows them all)."""


def changes_text(changes: Changes) -> list[str]:
    """The `## Result`'s list of what the task changed, file by file, and what was left out."""
    commits = f"{changes.commits} commit{'' if changes.commits == 1 else 's'}"
    if changes.agent_commits:
        commits += f", {changes.agent_commits} by the agent"
    span = f"{changes.base[:12]} {changes.head[:12]}"
    if changes.branch and changes.repo:
        lines = [
            f"Changed: {changes.summary} ({commits}) on the branch {code(changes.branch)} of "
            f"{code(changes.repo)}"
            + (f", from {code(changes.base_branch)}" if changes.base_branch else "")
            + f": {code(f'git -C {shlex.quote(changes.repo)} diff {span}')}",
            "",
        ]
    else:
        lines = [f"Changed: {changes.summary} ({commits}; `git diff {span}` in the work dir)", ""]
    for change in changes.files[:MAX_FILES_LISTED]:
        counts = (
            "binary"
            if change.added is None or change.deleted is None
            else f"+{change.added} -{change.deleted}"
        )
        lines.append(f"- {code(change.path)} {counts}")
    more = len(changes.files) - MAX_FILES_LISTED
    if more > 0:
        lines.append(f"- … and {more} more")
    if changes.left_out:
        names = ", ".join(code(path) for path in changes.left_out)
        lines += ["", f"Left out of the commits (over max_commit_file_bytes): {names}"]
    return [*lines, ""]


def _rounds_text(outcome: Outcome) -> list[str]:
    """A checked task's rounds: each one's cost and its check, then the last check's output."""
    checks = [r.check for r in outcome.rounds if r.check is not None]
    if not checks:
        return []
    lines = [f"Check: {code(checks[-1].command)}", ""]
    for r in outcome.rounds:
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "cost unknown"
        turns = f", {r.turns} turns" if r.turns is not None else ""
        if r.check is None:
            verdict = "not checked (the round did not succeed)"
        elif r.check.passed:
            verdict = "check passed"
        else:
            verdict = f"check failed ({r.check.why}): {code(r.check.last_line)}"
        lines.append(f"- round {r.number}: {cost}{turns}; {verdict}")
    last = checks[-1]
    lines += ["", f"The check's output ({'passed' if last.passed else last.why}):", ""]
    lines += ["```text", last.tail.replace("```", "'''") or "(no output)", "```", ""]
    return lines


def reach(rule: str) -> str:
    """What a person should know a rule allows beyond the call that was asked."""
    if "(" not in rule:
        return "; it allows every use of the tool"
    if "*" in rule:
        return "; its `*` matches any text"
    return ""


def code(text: str) -> str:
    """`text` as one inline code span on one line, whatever backticks it holds."""
    flat = " ".join(text.split())
    fence = "`"
    while fence in flat:
        fence += "`"
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
