"""Plans: `Plans/PLAN_<note>.md`, linked both ways with the note by [[wikilinks]].

`template_plan` is pure. The plan records a hash of the note's body, so a note edited after it was
planned (and before it runs) is planned again (`plan_is_stale`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from ..base import fsops
from ..notes.lifecycle import Status
from ..notes.records import plan_head
from ..notes.taskfile import TaskNote, render_value, text_hash

log = structlog.get_logger(__name__)

PLAN_PREFIX = "PLAN_"
_CHECKLIST = re.compile(r"^\s*[-*+]\s+\[[ xX]\]\s+(.+?)\s*$", re.MULTILINE)
_BODY_HASH = re.compile(r"^body_sha256:\s*([0-9a-f]{16,64})\s*$", re.MULTILINE)

DEFAULT_STEPS: dict[str, tuple[str, ...]] = {
    "claude_app": (
        "Read the task and the Company Handbook; decide the simplest structure that does the job.",
        "Create the app in the work dir: source files, a README.md with how to run it.",
        "Add tests where the language has a standard way to run them, and run them.",
        "Summarise what was built, where, and how to run it.",
    ),
    "file_drop": (
        "Look at the dropped file and say what it is.",
        "Do what the note asks with it (or propose what to do).",
        "Summarise the result.",
    ),
}
_GENERIC_STEPS = (
    "Read the task and the Company Handbook.",
    "Do the work in the work dir, in small verifiable steps.",
    "Check the result against the acceptance criteria.",
    "Summarise what was done and anything left open.",
)


@dataclass(frozen=True)
class PlanWritten:
    """planner = "claude": the plan for this note is on disk (or the template, if not)."""

    path: Path


def plan_name(note_path: Path, task_id: str) -> str:
    """`PLAN_<note file name without .md> (<task_id>).md`: the note's name for a person to
    find it, the task_id so that no other task's plan can ever take it (two notes of one name,
    in two folders or a week apart, each have their own)."""
    return f"{PLAN_PREFIX}{note_path.name.removesuffix('.md')} ({task_id}).md"


def plan_link(plan: Path | str) -> str:
    """The wikilink a note's `plan` key holds: `[[PLAN_x (k3x9p2ma)]]`."""
    name = plan.name if isinstance(plan, Path) else plan
    return f"[[{name.removesuffix('.md')}]]"


def body_hash(note: TaskNote) -> str:
    """What a plan was made from: the person's body (not our Result section) and title."""
    return text_hash(note.asked)


@dataclass(frozen=True)
class Plan:
    name: str
    text: str
    steps: tuple[str, ...]


def template_plan(
    note: TaskNote,
    note_path: Path,
    task_type: str,
    workdir: Path,
    now: datetime,
    status: Status = Status.PLANNED,
    done_when: str = "",
) -> Plan:
    """A plan from the note alone: its checklist as steps, or sensible defaults for its type.
    `status`: the task's, for the record at its head. `done_when`: the task's check, as its
    "Done when" line (verify.done_when)."""
    checklist = tuple(item.strip() for item in _CHECKLIST.findall(note.body_asked))
    steps = checklist or DEFAULT_STEPS.get(task_type, _GENERIC_STEPS)
    task_id = note.task_id or ""
    note_link = f"[[{note_path.name.removesuffix('.md')}]]"
    body = note.body_asked.strip()
    objective = note.title if not body else f"{note.title}: {_first_paragraph(body)}"
    where = f"{note_path.parent.name}/{note_path.name}"
    lines = [
        "---",
        *plan_head(task_id, note.title, note_path.name, body_hash(note), where, status),
        f"task: {render_value(note_link)}",
        f"type: {render_value(task_type)}",
        f"created: {render_value(now)}",
        "---",
        f"# Plan: {note.title}",
        "",
        f"Task: {note_link}",
        "",
        "## Objective",
        "",
        objective,
        "",
        "## Steps",
        "",
        *(f"{n}. {step}" for n, step in enumerate(steps, 1)),
        "",
        "## Acceptance criteria",
        "",
        *(f"- [ ] {step}" for step in (checklist or ("The task as written is done.",))),
        "- [ ] The agent's final answer says what was done and how to use it.",
        "",
        *((f"Done when: {done_when}", "") if done_when else ()),
        "## Work dir",
        "",
        f"`{workdir}`",
        "",
    ]
    return Plan(plan_name(note_path, task_id), "\n".join(lines), steps)


def claude_plan(
    template: Plan, note: TaskNote, claude_path: str, workdir: Path, timeout: float = 300.0
) -> Plan:
    """A plan written by `claude -p --permission-mode plan` (read-only), in the template's frame.

    Raises PlannerUnavailable with the reason when Claude cannot plan; the caller falls back to
    the template.
    """
    prompt = (
        "Write a short, numbered, step-by-step plan for the task below, and the acceptance "
        "criteria. Do not do the task; only plan it.\n\n"
        f"# {note.title}\n\n{note.body_asked.strip()}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as stdin:
        stdin.write(prompt.encode("utf-8"))
        stdin.seek(0)
        try:
            done = subprocess.run(
                [claude_path, *CLAUDE_PLAN_ARGS],
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PlannerUnavailable(f"claude could not plan: {err}") from err
    text = _plan_text(done)
    head, _, _ = template.text.partition("## Steps")
    _, _, tail = template.text.partition("## Work dir")
    body = f"{head}## Steps (written by Claude)\n\n{text.strip()}\n\n## Work dir{tail}"
    return Plan(template.name, body, template.steps)


CLAUDE_PLAN_ARGS = (
    "-p",
    "--permission-mode",
    "plan",
    "--output-format",
    "json",
    "--max-turns",
    "3",
    "--no-session-persistence",
)
"""claude's arguments for a plan: read-only (plan mode), a few turns, no session kept."""


def _plan_text(done: subprocess.CompletedProcess[str]) -> str:
    """The plan's text from claude's JSON result, or PlannerUnavailable with why."""
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as err:
        raise PlannerUnavailable(f"claude gave no result (exit {done.returncode})") from err
    text = result.get("result")
    if result.get("is_error") or not isinstance(text, str) or not text.strip():
        reason = text or "; ".join(map(str, result.get("errors") or [])) or "no plan text"
        raise PlannerUnavailable(f"claude could not plan: {str(reason)[:200]}")
    return text


class PlannerUnavailable(Exception):
    """Claude could not write a plan; the template is used instead."""


def _first_paragraph(body: str) -> str:
    paragraph = body.split("\n\n", 1)[0]
    text = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
    return text if len(text) <= 400 else text[:397] + "..."


def write_plan(plans_dir: Path, plan: Plan, tmp_dir: Path) -> Path:
    """Write (or replace) the plan file atomically; the plan is entirely ours.

    Not fsynced: a plan lost or cut short by a crash has no matching body hash, so the note is
    simply planned again (`plan_is_stale`). The note's own edit is durable.
    """
    path = plans_dir / plan.name
    fsops.write_atomic(path, plan.text.encode("utf-8"), tmp_dir, 0o644, durable=False)
    return path


def plan_is_stale(plan_path: Path, note: TaskNote) -> bool:
    """True when the plan is missing or was made from a different body."""
    try:
        text = fsops.read_plain_text(plan_path, errors="replace")
    except OSError:  # missing, a folder, a FIFO: not a plan of this note
        return True
    found = _BODY_HASH.search(text)
    return found is None or found.group(1) != body_hash(note)


class Plans:
    """Where plans go: `Plans/`, the template's at once, or Claude's from a thread of its own
    (planner = "claude"), which posts `PlanWritten` when the file is there (the template's if
    Claude cannot). `planning` is the main loop's: the notes whose plan is being written."""

    def __init__(
        self,
        plans_dir: Path,
        tmp_dir: Path,
        use_claude: bool,
        claude_path: str,
        post: Callable[[PlanWritten], None],
    ) -> None:
        self.plans_dir = plans_dir
        self.tmp_dir = tmp_dir
        self.use_claude = use_claude
        self.claude_path = claude_path
        self.post = post
        self.planning: set[Path] = set()

    def write(self, path: Path, note: TaskNote, template: Plan, workdir: Path) -> bool:
        """Make sure the note's plan is on disk; False while it is being written (the
        PlanWritten that follows brings the note back)."""
        if not self.use_claude:
            write_plan(self.plans_dir, template, self.tmp_dir)
            return True
        if path in self.planning:
            return False
        if not plan_is_stale(self.plans_dir / template.name, note):
            return True  # Claude's plan for this very body is on disk
        self.planning.add(path)
        threading.Thread(
            target=self._write_with_claude,
            args=(path, note, template, workdir),
            name=f"plan-{path.name}",
            daemon=True,
        ).start()
        return False

    def written(self, path: Path) -> None:
        """The main loop took the PlanWritten of `path`."""
        self.planning.discard(path)

    def _write_with_claude(self, path: Path, note: TaskNote, template: Plan, workdir: Path) -> None:
        """In the planner's thread: Claude's plan, or the template if Claude cannot."""
        try:
            plan = claude_plan(template, note, self.claude_path, workdir)
        except PlannerUnavailable as err:
            log.warning(
                "planner fell back to the template",
                action_type="plan",
                target=str(path.relative_to(self.plans_dir.parent)),
                error=str(err),
            )
            plan = template
        try:
            write_plan(self.plans_dir, plan, self.tmp_dir)
        finally:
            self.post(PlanWritten(path))
