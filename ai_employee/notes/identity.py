"""Whose note is this? A task's own, a new task, a copy of a task, or a later edit of one.

Vaults live in sync tools and editors, which bring back notes the service has moved on: a typo
fixed on a laptop and pulled with git, an edit made on a Syncthing peer while the note waited
for approval, an editor's older buffer saved after the note moved, and the tools' own conflict
copies. `identify` decides from what the vault records of each task (`Known`: its task_id,
its note's name and body hash, and where its note is now), never from memory alone, so a
restart or another machine reaches the same answer. Pure: the caller looks things up.

"The same task", precisely. A note N is taken for task T when T's note is not N itself and:
1. N carries T's task_id (when N's name is a conflict copy of T's note's name, also while
   T's note is away: the tool renames ours aside before it writes the version it kept); or
2. N has no task_id and
   a. N's name is a sync tool's conflict copy of T's note's name (Syncthing's
      `.sync-conflict-...`, Dropbox's `(conflicted copy ...)`, our own `(conflict)`), or
   b. N's body (title and text, our `## Result` left out) is exactly T's, or
   c. N has T's note's name, or is iCloud's numbered copy of it (`x 2.md`), and what their
      authors wrote is similar: at least `SIMILAR` of its words in common, in order (difflib's
      ratio), leaving out the lines of the vault's templates (with the file's name as a line:
      a title that only repeats it says nothing) and a heading that repeats the title.
So next week's `Untitled.md` or another `Report.md` with other content is a new task, also when
both were made from one template.
An N without a task_id, at the very place and under the very name T's record gives T's note,
with the very text T was planned from, while T's note is nowhere else, is T's own note whose
keys an editor's older buffer dropped: it gets T's task_id back (`Own.restore`). Other text
there is a new task (a person deleted T's note and wrote another).
Any other such N never runs on its own: if T waits for approval and its note is unchanged since
it was planned (or holds N's very text), and N is not a conflict copy (the version the tool set
aside, with or without a task_id), N is a later edit of it (`EditOf`): one waiting task holding
N's text. Otherwise N is held for a person as a copy of T (`CopyOf`), with a reason naming T
and what differs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .lifecycle import Status
from .taskfile import text_hash
from .vault import Folder

SIMILAR = 0.6
"""Bodies this similar (difflib's ratio over their words) are one task's versions."""
CONFLICT_COPY = "a sync tool's conflict copy of"

MAX_WORDS = 2000
"""Words compared at most (the start of each body): similarity stays cheap for long notes."""

_SURE_COPY = (
    re.compile(r"^(?P<base>.+)\.sync-conflict-\d{8}-\d{6}-[A-Z0-9]{7}(?P<ext>\.md)$"),  # Syncthing
    re.compile(r"^(?P<base>.+) \((?:[^()]+'s )?conflicted copy(?: [^()]*)?\)(?P<ext>\.md)$"),
    re.compile(r"^(?P<base>.+) \(conflict\)(?P<ext>\.md)$"),  # ours: notefile's swap back
)
_NUMBERED_COPY = re.compile(r"^(?P<base>.+) (?P<n>[2-9])(?P<ext>\.md)$")  # iCloud


def conflict_base(name: str) -> tuple[str | None, bool]:
    """The name a sync tool's copy was made of, and whether the pattern is sure (Syncthing,
    Dropbox, ours) or only a hint (iCloud's ` 2`, which a person may write too)."""
    for pattern in _SURE_COPY:
        found = pattern.match(name)
        if found:
            return found["base"] + found["ext"], True
    found = _NUMBERED_COPY.match(name)
    if found:
        return found["base"] + found["ext"], False
    return None, False


@dataclass(frozen=True)
class Seen:
    """The note being decided on."""

    path: Path
    task_id: str | None
    body_hash: str
    body: str
    """What was asked: its title and text, our Result left out (TaskNote.asked, what the
    body hash is made of)."""
    boilerplate: frozenset[str] = frozenset()
    """Lines left out when bodies are compared: the vault's templates' (Templates/), so two
    notes made from one template are alike only in what their authors wrote, and the notes'
    names (a title `Untitled` from `Untitled.md` says nothing)."""

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Known:
    """A task as the vault records it (its plan), with where its note is now."""

    task_id: str
    title: str
    name: str
    """Its note's file name when it was planned."""
    body_hash: str
    """The body it was planned from."""
    where: Path | None
    """Where its note is now (checked: it holds this task_id); None when it is gone."""
    status: Status | None
    body: str | None = None
    """Its note's body now, when it was read (for similarity and the reason)."""
    recorded: Path | None = None
    """Where its record last put its note (not checked: it may hold an older buffer now)."""

    @property
    def waiting(self) -> bool:
        return self.where is not None and self.where.parent.name == Folder.PENDING_APPROVAL.value

    @property
    def unchanged(self) -> bool:
        """Its note still holds the body it was planned from."""
        return self.body is not None and self.body_hash == text_hash(self.body)


@dataclass(frozen=True)
class Own:
    """The note is its task's own note (or a new task, if it has no task_id yet)."""

    restore: str | None = None
    """The task_id an editor's older buffer dropped from this note: it is given back."""


@dataclass(frozen=True)
class CopyOf:
    """A copy of another task's note: it waits for a person, never runs on its own."""

    original: Known
    reason: str


@dataclass(frozen=True)
class EditOf:
    """A later version of a task that waits for approval: its text goes to that task."""

    original: Known
    reason: str


Identity = Own | CopyOf | EditOf


def identify(seen: Seen, by_id: Known | None, candidates: Iterable[Known]) -> Identity:
    """Whose note `seen` is. `by_id`: the task its task_id names (None: no id, or an id the
    vault does not know); `candidates`: the tasks whose name or body it shares (the caller
    finds them by name, by conflict base name and by body hash)."""
    base, sure = conflict_base(seen.name)
    if seen.task_id is not None:
        # A conflict copy of the task's own note is the version the tool set aside, also
        # while the version it kept is not back yet (Syncthing renames ours aside first, then
        # writes the peer's under the name): never the task's own note.
        if sure and by_id is not None and by_id.name == base:
            return _taken_for(seen, by_id, CONFLICT_COPY)
        if by_id is None or by_id.where is None or by_id.where == seen.path:
            return Own()
        return _taken_for(seen, by_id, "it carries the task_id of")
    for known in candidates:
        if known.where == seen.path:
            continue
        if sure and known.name == base:
            return _taken_for(seen, known, CONFLICT_COPY)
        same_text = known.body_hash == seen.body_hash
        named_alike = known.name in (seen.name, base)
        similar = (
            named_alike
            and known.body is not None
            and alike(seen.body, known.body, seen.boilerplate)
        )
        # T's note is nowhere, and this one is at T's very place under T's name, with the text
        # T was planned from: it is T's note, whose keys an editor's older buffer dropped.
        at_its_place = known.where is None and known.recorded == seen.path
        if at_its_place and known.name == seen.name and same_text:
            return Own(restore=known.task_id)
        if same_text:
            return _taken_for(seen, known, "the same text as")
        if similar:
            return _taken_for(seen, known, "a version of")
    return Own()


def _taken_for(seen: Seen, known: Known, how: str) -> Identity:
    where = f"{known.where.parent.name}/{known.where.name}" if known.where else "no longer here"
    status = known.status.value if known.status else "unknown status"
    what = f"{how} {known.task_id} {known.title!r} ({where}, {status})"
    reason = f"{what}: {difference(seen.body, known.body)}"
    # A conflict copy is the version the sync tool set aside: never folded over the one it kept.
    if how != CONFLICT_COPY and known.waiting and (known.unchanged or known.body == seen.body):
        return EditOf(known, reason)
    return CopyOf(known, reason)


def _written(text: str, boilerplate: frozenset[str]) -> list[str]:
    """The words of a body (TaskNote.asked: the title, then the text) that its author wrote:
    not the lines of a template, not a heading that repeats the title, and not a title that
    is only the file's name (`Untitled`: the names were compared already; see `alike`)."""
    lines = text.splitlines() or [""]
    title = lines[0].strip()
    kept = [title] if title not in boilerplate else []
    for line in (raw.strip() for raw in lines[1:]):
        if line and line not in boilerplate and line.lstrip("#").strip() != title:
            kept.append(line)
    return " ".join(kept).split()[:MAX_WORDS]


def similarity(a: str, b: str, boilerplate: frozenset[str] = frozenset()) -> float:
    """How much of what two bodies' authors wrote is the same, 0 to 1 (difflib's ratio over
    their words, in order)."""
    left, right = _written(a, boilerplate), _written(b, boilerplate)
    if not left and not right:
        return 1.0
    return difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()


def alike(a: str, b: str, boilerplate: frozenset[str] = frozenset()) -> bool:
    """similarity >= SIMILAR, with difflib's cheap upper bounds first (most pairs differ)."""
    left, right = _written(a, boilerplate), _written(b, boilerplate)
    if not left and not right:
        return True
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    return (
        matcher.real_quick_ratio() >= SIMILAR
        and matcher.quick_ratio() >= SIMILAR
        and matcher.ratio() >= SIMILAR
    )


def difference(a: str, b: str | None) -> str:
    """What differs between a note's body and the original's, in a few words."""
    if b is None:
        return "the original's text could not be read"
    left = [line.strip() for line in a.strip().splitlines()]
    right = [line.strip() for line in b.strip().splitlines()]
    if left == right:
        return "the same text"
    changed = [
        (tag, i1, i2, j1, j2)
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, right, left).get_opcodes()
        if tag != "equal"
    ]
    count = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in changed)
    if count == 1:
        _, i1, i2, j1, j2 = changed[0]
        was, now = _changed_words(right[i1] if i2 > i1 else "", left[j1] if j2 > j1 else "")
        return f"1 line differs: {_short(was)!r} -> {_short(now)!r}"
    return f"{count} lines differ"


def _changed_words(was: str, now: str) -> tuple[str, str]:
    """The words that changed between two versions of a line (the whole line if many)."""
    a, b = was.split(), now.split()
    ops = [op for op in difflib.SequenceMatcher(None, a, b).get_opcodes() if op[0] != "equal"]
    if not ops:
        return was, now
    _, i1, i2, j1, j2 = ops[0]
    i2, j2 = ops[-1][2], ops[-1][4]
    return " ".join(a[i1:i2]), " ".join(b[j1:j2])


def _short(line: str, width: int = 50) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"
