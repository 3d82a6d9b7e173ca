"""The prompt file: what an agent is asked, written for one attempt after its claim.

`.ai-employee/prompts/<task_id>.md` holds the task (title, body), its plan and the work dir;
for an agent that wants it (the command agent), the Company Handbook first (the claude agent
gets the handbook with `--append-system-prompt` instead); for a later round of a checked task,
the check that failed. Written by the run's own thread, before each round.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..base import fsops
from ..notes.taskfile import TaskNote
from ..notes.vault import Vault
from .agents.base import Agent, RunSpec
from .worktree import branch_of


def prompt_path(vault: Vault, task_id: str) -> Path:
    return vault.machinery / "prompts" / f"{task_id}.md"


def read_handbook(vault: Vault) -> str:
    """Company_Handbook.md, or nothing when it is missing or unreadable."""
    try:
        return fsops.read_plain_text(vault.handbook)
    except (OSError, UnicodeDecodeError):
        return ""


def prompt_text(
    vault: Vault,
    agent: Agent,
    spec: RunSpec,
    note: TaskNote,
    plan_path: Path | None,
    earlier: Sequence[str] = (),
) -> str:
    try:
        plan = fsops.read_plain_text(plan_path) if plan_path else "(no plan file)"
    except (OSError, UnicodeDecodeError):
        plan = "(no plan file)"
    header = agent.prompt_header(spec).strip()
    parts = [header] if header else []
    if spec.resume:
        parts.append(going_on(spec))
    parts += [
        f"# Task: {note.title}",
        f"Task id: {spec.task_id}. Type: {spec.task_type}. Attempt {spec.attempt}.",
        f"Work in this directory and nowhere else: {spec.workdir}",
        *_on_branch(note, spec),
        "## What was asked",
        note.body_asked.strip() or "(the note has no body; the title is the task)",
        "## The plan",
        plan.strip(),
    ]
    if earlier:
        parts += ["## What the tasks this one runs after produced", *earlier]
    return "\n\n".join(parts) + "\n"


def _on_branch(note: TaskNote, spec: RunSpec) -> list[str]:
    """A task on a person's repository is told where it works (worktree.py)."""
    if not note.on_repo:
        return []
    return [
        f"It is a git worktree of {note.meta.get('repo')} on the branch "
        f"{branch_of(spec.task_id)}: stay on that branch. What you change is committed there "
        "after each round, for a person to review and merge."
    ]


def review_prompt(comments: str) -> str:
    """A review round's news: a person's comments on the work they reviewed ("" for none)."""
    if not comments:
        return ""
    return (
        "## A person reviewed your changes and asks for more\n\n"
        f"{comments.strip()}\n\n"
        "Change the work in the work dir to answer them. What you did before is committed "
        "there (`git log` shows it); the person reviews again when you are done.\n"
    )


def going_on(spec: RunSpec) -> str:
    """The head of a resumed session's prompt: the work goes on where it stopped."""
    if spec.allowed_tools:
        granted = ", ".join(f"`{rule}`" for rule in spec.allowed_tools)
        return (
            f"You may now use {granted}: a person allowed it for this task. Go on with the "
            "task where you stopped; the task is repeated below."
        )
    return "Go on with the task where you stopped; the task is repeated below."


def write_prompt(
    vault: Vault,
    agent: Agent,
    spec: RunSpec,
    note: TaskNote,
    plan_path: Path | None,
    failure: str = "",
    earlier: Sequence[str] = (),
) -> None:
    """Write the prompt file atomically (not fsynced: a crash retries and writes it again).

    `failure`: a later round's news (the check that failed, verify.failure_prompt). A session
    that is resumed already holds the task and is told only that; any other agent gets the
    whole task again with the news after it. `earlier`: what the tasks it runs after
    produced (RunRequest.after)."""
    news_only = getattr(agent, "news_only_on_resume", getattr(agent, "uses_sessions", False))
    if failure and spec.resume and news_only:
        text = failure.strip() + "\n"
    else:
        text = prompt_text(vault, agent, spec, note, plan_path, earlier)
        if failure:
            text += "\n" + failure.strip() + "\n"
    fsops.write_atomic(spec.prompt_file, text.encode("utf-8"), vault.tmp, durable=False)
