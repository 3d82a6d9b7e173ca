"""Reconcile a note with the lifecycle table: read it, decide, do the step, remember what we saw.

`Reconciler.look(path)` is what every event, the start-up scan, an overflow rescan and the sweep
come down to. It keeps a small index (file identity per path) so that our own writes, duplicate
events and an unchanged note cost one `lstat`.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from . import fsops, planner
from .config import Config
from .errors import NoteRefused
from .lifecycle import Action, Facts, Status, Step, decide, is_due
from .messages import PlanWritten, Post
from .notefile import (
    NoteGone,
    NoteStore,
    Placed,
    Signature,
    SyncDir,
    move_note,
    note_from_bytes,
    signature_of,
)
from .run_end import RetryPolicy, decide_interrupted
from .scheduler import RunRequest
from .taskfile import OWNED_KEYS, TaskNote, edit_note_text, new_task_id, render_value
from .vault import TRIGGER_FOLDERS, Folder, Vault, workdir_for

log = structlog.get_logger(__name__)

MAX_STEPS = 6
"""Steps taken on one note in one look (plan, then hold, ...) before waiting for the next event."""


@dataclass
class Entry:
    """What we last saw of a note (or wrote to it)."""

    signature: Signature
    task_id: str | None
    status: Status | None
    title: str
    folder: Folder
    step: Action
    task_type: str = ""
    priority: str = "normal"
    wake_at: datetime | None = None


class Runs(Protocol):
    """What a decision needs from the runs (the service's run coordinator, in the main loop)."""

    def is_running(self, task_id: str) -> bool: ...

    def claim_to_restore(self, task_id: str) -> Mapping[str, Any] | None:
        """The claim to put back over a stale copy; None while unknown or being recorded."""

    def offer(self, request: RunRequest) -> None:
        """Queue a planned task that may run."""

    def stop(self, task_id: str) -> None:
        """A person ended a running task: stop its agent."""


StepObserver = Callable[[Path, Step, str], None]
"""Told of each step after it is done (path, step, task_id): tests and benchmarks watch."""


@dataclass
class Reconciler:
    vault: Vault
    config: Config
    now: Callable[[], datetime]
    actor: str
    runs: Runs
    post: Post
    """For the planner thread's word that a plan is written (planner = "claude")."""
    sync_dir: SyncDir
    """Makes an edit's swap durable; the service batches these (fsops.PendingSyncs)."""
    planning: set[Path] = field(default_factory=set)
    """Notes whose plan Claude is writing right now (planner = "claude")."""
    step_observers: list[StepObserver] = field(default_factory=list)
    entries: dict[Path, Entry] = field(default_factory=dict)
    refused: dict[Path, tuple[Signature, str]] = field(default_factory=dict)
    wakeups: dict[Path, datetime] = field(default_factory=dict)
    """Notes waiting for a time (a retry's next_attempt_at): few, so scanned whole."""
    owners: dict[str, Path] = field(default_factory=dict)
    """task_id -> the path that holds it (a copy elsewhere gets a new id)."""
    changes: int = 0
    """Counts changes to the index, so the dashboard knows when to redraw."""
    _placed: Placed | None = None
    """The last file this thread placed while acting on a note (its identity is the entry's)."""
    _fresh_plan: tuple[Path, str] | None = None
    """(note, body hash) of the plan written during this look: the next step need not read it
    back to know it is current."""

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes, self.sync_dir)

    # --- scanning ---------------------------------------------------------------------------

    def active_paths(self) -> Iterator[Path]:
        """Every path the service may act on: notes in trigger folders, files in Inbox/Drop."""
        for folder in TRIGGER_FOLDERS:
            yield from self.vault.notes_in(folder)
        drop = self.vault.folder(Folder.DROP)
        try:
            with os.scandir(drop) as entries:
                names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return
        for name in names:
            if not name.startswith(".") and not name.endswith(("~", ".tmp", ".swp")):
                yield drop / name

    def reconcile_all(self) -> int:
        """Look at every active path; forget what is gone. Returns how many were looked at."""
        seen = set()
        for path in self.active_paths():
            seen.add(path)
            self.look(path)
        for path in set(self.entries) - seen:
            self.forget(path)
        for path in set(self.refused) - seen:
            del self.refused[path]
            self.changes += 1
        return len(seen)

    def due_wakeups(self, now: datetime) -> list[Path]:
        return [p for p, when in self.wakeups.items() if when <= now]

    def next_wakeup(self) -> datetime | None:
        return min(self.wakeups.values()) if self.wakeups else None

    def forget(self, path: Path) -> None:
        self.wakeups.pop(path, None)
        entry = self.entries.pop(path, None)
        if entry and entry.task_id and self.owners.get(entry.task_id) == path:
            del self.owners[entry.task_id]
        if self.refused.pop(path, None) is not None or entry is not None:
            self.changes += 1

    # --- one note ---------------------------------------------------------------------------

    def look(self, path: Path, *, force: bool = False) -> Step | None:
        """Bring one path in line with the table. Returns the last step taken (None: nothing)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.forget(path)
            return None
        sig = signature_of(st)
        entry = self.entries.get(path)
        if (
            not force
            and entry is not None
            and entry.signature == sig
            and (entry.wake_at is None or entry.wake_at > self.now())
        ):
            return None  # unchanged since we last looked (or wrote): nothing new to decide
        known_refusal = self.refused.get(path)
        if not force and known_refusal is not None and known_refusal[0] == sig:
            return None
        if self.vault.folder_of(path) is Folder.DROP:
            self._take_drop(path, st)
            return None
        step: Step | None = None
        self._placed = None
        self._fresh_plan = None
        for _ in range(MAX_STEPS):
            outcome = self._one_step(path, self._placed)
            if outcome is None:
                return step
            step, path = outcome
            if step.action not in (
                Action.PLAN,
                Action.SET_STATUS,
                Action.INTERRUPTED,
                Action.APPROVE,
                Action.MOVE,
                Action.HOLD,
            ):
                return step
        return step

    def _one_step(self, path: Path, placed: Placed | None = None) -> tuple[Step, Path] | None:
        """One decision and its step. `placed`: what our previous step put there, if anything:
        while the path still shows that very file, it is parsed from memory, not read again."""
        folder = self.vault.folder_of(path)
        if folder is None:
            return None
        try:
            note, seen = self._current(path, placed)
        except NoteRefused as err:
            self._refuse(path, err.reason)
            return None
        except FileNotFoundError:
            self.forget(path)
            return None
        if path in self.refused:
            del self.refused[path]
            self.changes += 1
            log.info("note accepted", target=self._rel(path), result="refusal cleared")
        task_type = note.task_type or self.config.default_type
        id_changes: dict[str, Any]
        if note.empty or note.status is Status.DRAFT:
            task_id, id_changes = note.task_id or "", {}  # never touched: no id written
        else:
            task_id, id_changes = self._identity(path, note)
        facts = self._facts(folder, note, task_type, path, task_id)
        step = decide(facts)
        wake = None
        if step.action is Action.WAIT and not facts.due:
            wake = note.when("next_attempt_at")
        self._placed = None
        try:
            if id_changes and step.action in (Action.NOTHING, Action.WAIT, Action.RUN):
                self._write(path, id_changes, task_id)
            acted = self._act(path, note, step, task_type, task_id, id_changes)
        except NoteRefused as err:
            self._refuse(path, err.reason)
            return None
        except (NoteGone, FileNotFoundError):
            self.forget(path)
            return None
        except LookLater:
            # A message will bring this note back (its plan written, its run's claim known):
            # no entry, so that look is not taken for an unchanged note.
            self.entries.pop(path, None)
            return None
        if acted is None:
            return None
        new_path = acted
        # The identity of what we decided on: the file we placed (a move keeps it), or the one
        # we read. Never an lstat now: a save made since must look new to the next look.
        sig = self._placed.signature if self._placed else seen
        if new_path != path:
            self.forget(path)
        passive = step.action in (Action.NOTHING, Action.WAIT, Action.RUN, Action.STOP)
        status = note.status if passive else (step.status or note.status)
        self.entries[new_path] = Entry(
            sig,
            task_id,
            status,
            note.title,
            self.vault.folder_of(new_path) or folder,
            step.action,
            task_type,
            note.priority.value,
            wake,
        )
        if task_id:
            self.owners[task_id] = new_path
        if wake is not None:
            self.wakeups[new_path] = wake
        else:
            self.wakeups.pop(new_path, None)
        self.changes += 1
        for observer in self.step_observers:
            observer(new_path, step, task_id)
        return step, new_path

    def _current(self, path: Path, placed: Placed | None) -> tuple[TaskNote, Signature]:
        """The note now, and the identity of the file it came from."""
        if placed is not None:
            st = os.lstat(path)
            if signature_of(st) == placed.signature and stat.S_ISREG(st.st_mode):
                return note_from_bytes(
                    path, placed.data, self.config.max_note_bytes
                ), placed.signature
        note, snap = self.notes.read(path)
        return note, (snap.inode, len(snap.data), snap.mtime_ns)

    def _facts(
        self, folder: Folder, note: TaskNote, task_type: str, path: Path, task_id: str
    ) -> Facts:
        running = self.runs.is_running(task_id)
        status = note.status
        planned = bool(note.meta.get("plan"))
        stale = False
        if planned and not running and status in (Status.PLANNED, Status.APPROVED):
            fresh = self._fresh_plan is not None and self._fresh_plan == (
                path,
                planner.body_hash(note),
            )
            stale = not fresh and planner.plan_is_stale(self.vault.folder(Folder.PLANS), path, note)
        return Facts(
            place=folder,
            status=status,
            needs_approval=self.config.requires_approval(task_type) or note.requires_approval,
            approved=note.meta.get("approved_at") is not None,
            planned=planned,
            plan_stale=stale,
            running=running,
            due=is_due(note.when("next_attempt_at"), self.now()),
            empty=note.empty,
        )

    def _identity(self, path: Path, note: TaskNote) -> tuple[str, dict[str, Any]]:
        """The note's task_id, or a new one when it has none or is a copy of another note."""
        task_id = note.task_id
        owner = self.owners.get(task_id) if task_id else None
        if task_id and (owner is None or owner == path or not owner.exists()):
            return task_id, {}
        fresh = new_task_id()
        if task_id is None:
            return fresh, {"task_id": fresh}
        log.warning(
            "copy of a task note",
            action_type="copy",
            target=self._rel(path),
            task_id=fresh,
            parameters={"copy_of": task_id, "original": self._rel(owner) if owner else None},
            result="new task_id; it waits for a person's approval",
        )
        # A copy is a new task: it never inherits a run, an approval or a status past pending.
        kept = ("task_id", "status", "plan", "planned_at", "attempts")
        cleared: dict[str, Any] = dict.fromkeys(k for k in OWNED_KEYS if k not in kept)
        return fresh, {**cleared, "task_id": fresh, "attempts": 0, "status": "pending_approval"}

    # --- steps ------------------------------------------------------------------------------

    def _act(
        self,
        path: Path,
        note: TaskNote,
        step: Step,
        task_type: str,
        task_id: str,
        id_changes: dict[str, Any],
    ) -> Path | None:
        now = self.now()
        action = step.action
        if id_changes.get("status") == "pending_approval":  # a copy: straight to a person
            self._write(path, id_changes, task_id)
            return self._move(path, Folder.PENDING_APPROVAL, task_id, "copy held")
        if action in (Action.NOTHING, Action.WAIT, Action.REFUSE):
            return path
        if action is Action.RUN:
            workdir = self._workdir(note, task_id)
            self.runs.offer(
                RunRequest(
                    path, task_id, note.priority.value, task_type, note.when("planned_at"), workdir
                )
            )
            return path
        if action is Action.STOP:
            self.runs.stop(task_id)
            return path
        if action is Action.PLAN:
            runs_next = not (self.config.requires_approval(task_type) or note.requires_approval)
            return self._plan(path, note, task_type, task_id, id_changes, now, runs_next)
        if action is Action.APPROVE:
            changes: dict[str, Any] = {
                **id_changes,
                "approved_at": now,
                "approved_by": self.actor,
                "next_attempt_at": None,
            }
            planned = bool(note.meta.get("plan")) and not planner.plan_is_stale(
                self.vault.folder(Folder.PLANS), path, note
            )
            if not planned:
                path = self._plan(path, note, task_type, task_id, changes, now, True) or path
                changes = {}
            self._write(
                path,
                {**changes, "status": Status.PLANNED},
                task_id,
                audit=("approved", {"approval_status": "approved", "approved_by": self.actor}),
            )
            return self._move(path, Folder.NEEDS_ACTION, task_id, "approved")
        if action is Action.INTERRUPTED:
            counted = decide_interrupted(note.attempts, RetryPolicy.of(self.config), now)
            self._write(
                path,
                {**id_changes, **counted.changes},
                task_id,
                audit=(
                    "interrupted attempt",
                    {
                        "result": counted.summary,
                        **({"error": counted.error} if counted.error else {}),
                    },
                ),
            )
            if counted.folder is not None:
                return self._move(path, counted.folder, task_id, "attempts spent")
            return path
        if action is Action.SET_STATUS and step.status is Status.EXECUTING:
            return self._restore_claim(path, task_id, id_changes)
        if action is Action.SET_STATUS and step.status is not None:
            self._write(path, {**id_changes, "status": step.status}, task_id)
            return path
        if action is Action.HOLD:
            if id_changes or note.status is not Status.PENDING_APPROVAL:
                self._write(path, {**id_changes, "status": Status.PENDING_APPROVAL}, task_id)
            if step.place is not None and self.vault.folder_of(path) is not step.place:
                return self._move(path, step.place, task_id, "waits for approval")
            return path
        if action is Action.MOVE and step.place is not None:
            if id_changes:
                self._write(path, id_changes, task_id)
            return self._move(path, step.place, task_id, "move finished")
        raise AssertionError(f"unhandled step {step}")

    def _restore_claim(self, path: Path, task_id: str, id_changes: dict[str, Any]) -> Path:
        """A stale copy dropped the claim of a running task: put it back. Decided inside the
        edit: a run that begins recording its end meanwhile is never written over."""

        def restore(text: str) -> str:
            claim = self.runs.claim_to_restore(task_id)
            if not claim:  # the claim is not known yet, or the run records its end: it decides
                raise LookLater(path)
            keys = {k: v for k, v in claim.items() if v is not None}
            return edit_note_text(text, {**id_changes, **keys, "status": Status.EXECUTING})

        placed = self.notes.rewrite(path, restore)
        if placed is not None:
            self._placed = placed
        log.info(
            "claim restored",
            action_type="claim",
            target=self._rel(path),
            task_id=task_id,
            result="a stale copy wrote an old status",
        )
        return path

    def _plan(
        self,
        path: Path,
        note: TaskNote,
        task_type: str,
        task_id: str,
        extra: dict[str, Any],
        now: datetime,
        runs_next: bool = False,
    ) -> Path:
        workdir = self._workdir(note, task_id)
        if runs_next:  # made now, so that the run's claim is all that stands before the agent
            fsops.ensure_dir(workdir)
            # Its transcript too: creating a file costs CPU the agent's start then needs.
            fsops.touch(self.vault.transcripts / f"{task_id}.jsonl")
        plan = planner.template_plan(_with_id(note, task_id), path, task_type, workdir, now)
        plans = self.vault.folder(Folder.PLANS)
        if self.config.planner == "claude":
            if path in self.planning:
                raise LookLater(path)
            if planner.plan_is_stale(plans, path, note):
                self._plan_in_background(path, note, plan, workdir)
                raise LookLater(path)
            # Claude's plan for this very body is on disk: record it on the note.
        else:
            planner.write_plan(plans, plan, self.vault.tmp)
        self._fresh_plan = (path, planner.body_hash(note))
        self._write(
            path,
            {**extra, "status": Status.PLANNED, "plan": planner.plan_link(path), "planned_at": now},
            task_id,
            audit=("planned", {"parameters": {"plan": plan.name, "planner": self.config.planner}}),
        )
        return path

    def _plan_in_background(
        self, path: Path, note: TaskNote, template: planner.Plan, workdir: Path
    ) -> None:
        """planner = "claude": Claude writes the plan in a thread; the template if it cannot."""
        self.planning.add(path)

        def work() -> None:
            try:
                plan = planner.claude_plan(template, note, self.config.claude_path, workdir)
            except planner.PlannerUnavailable as err:
                log.warning(
                    "planner fell back to the template",
                    action_type="plan",
                    target=self._rel(path),
                    error=str(err),
                )
                plan = template
            try:
                planner.write_plan(self.vault.folder(Folder.PLANS), plan, self.vault.tmp)
            finally:
                self.post(PlanWritten(path))  # the main loop takes it off `planning`, looks

        threading.Thread(target=work, name=f"plan-{path.name}", daemon=True).start()

    def _workdir(self, note: TaskNote, task_id: str) -> Path:
        """apps/<language>/<app>/ for this note, checked to stay inside the allowed roots."""
        return workdir_for(
            self.config.apps_dir,
            self.config.allowed_roots,
            task_id,
            note.meta.get("language"),
            note.meta.get("app"),
        )

    def _write(
        self,
        path: Path,
        changes: dict[str, Any],
        task_id: str,
        audit: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        placed = self.notes.update(path, changes)
        if placed is not None:
            self._placed = placed
        if audit is not None:
            event, fields = audit
            log.info(
                event,
                action_type=event.split()[0],
                target=self._rel(path),
                task_id=task_id,
                **fields,
            )

    def _move(self, path: Path, folder: Folder, task_id: str, why: str) -> Path:
        new = move_note(path, self.vault.folder(folder))
        log.info(
            "moved",
            action_type="move",
            target=self._rel(new),
            task_id=task_id,
            parameters={"from": self._rel(path)},
            result=why,
        )
        return new

    def _refuse(self, path: Path, reason: str) -> None:
        try:
            sig = signature_of(os.lstat(path))
        except FileNotFoundError:
            return
        previous = self.refused.get(path)
        self.refused[path] = (sig, reason)
        self.entries.pop(path, None)
        self.changes += 1
        if previous is None or previous[1] != reason:
            log.error(
                "note refused",
                action_type="refuse",
                target=self._rel(path),
                result="left untouched",
                error=reason,
            )

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.vault.root))
        except ValueError:
            return str(path)

    # --- Inbox/Drop -------------------------------------------------------------------------

    def _take_drop(self, path: Path, st: os.stat_result) -> None:
        """Any file dropped in Inbox/Drop moves to Inbox/ and becomes a file_drop task."""
        if st.st_size == 0:
            return  # still being written, or an empty placeholder: wait
        try:
            kept = move_note(path, self.vault.folder(Folder.INBOX))
        except NoteGone:
            return
        task_id = new_task_id()
        title = f"Dropped file {kept.name}"
        text = (
            f"---\ntitle: {render_value(title)}\ntype: file_drop\ntask_id: {task_id}\n"
            "status: new\n---\n"
            f"A file was dropped: [[Inbox/{kept.name}]] ({st.st_size:,} bytes).\n\n"
            "Say what it is and what to do with it.\n"
        )
        target = fsops.write_temp(self.vault.tmp, text.encode("utf-8"))
        note_path = fsops.move_noreplace(
            target, self.vault.folder(Folder.NEEDS_ACTION), f"Dropped {kept.stem}.md"
        )
        log.info(
            "file dropped",
            action_type="file_drop",
            target=self._rel(note_path),
            task_id=task_id,
            parameters={"file": self._rel(kept)},
            result="task created",
        )
        self.look(note_path)


class LookLater(Exception):
    """Nothing can be decided on this note until a message brings it back: its plan is being
    written in the background, or its run's claim is not known yet."""


def _with_id(note: TaskNote, task_id: str) -> TaskNote:
    if note.task_id == task_id:
        return note
    return TaskNote(note.name, {**note.meta, "task_id": task_id}, note.body, note.empty)
