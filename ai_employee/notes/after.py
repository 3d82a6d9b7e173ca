"""Dependencies, the pure part: what a note's `after:` names, and cycles among waiting tasks.

`after:` names the tasks a task runs after: an Obsidian wikilink (`"[[Build the app]]"`, also
with a folder, a heading or an alias), a note name (with or without `.md`) or a task_id; one, or
a list. YAML reads an unquoted `after: [[A]]` as a list holding a list; that is taken as the
link it was meant to be. Which task each name is (resolution, and what it is waiting for) is
`deciding/waits.py`'s job; nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..base.errors import NoteRefused

MAX_REFERENCES = 50
"""Tasks one note may run after."""

_SHAPE = (
    "`after:` names the tasks this one runs after: a [[link]], a note name or a task_id, "
    "or a list of them"
)


def references(value: object) -> tuple[str, ...]:
    """The names `after:` holds, as written (stripped), in order, each once. Raises
    NoteRefused for anything else (a number, a mapping, an empty name, too many)."""
    if value is None or value == "" or value == []:
        return ()
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        item = _link(item)
        if not isinstance(item, str) or not item.strip():
            raise NoteRefused(f"{_SHAPE}; found {item!r}")
        ref = item.strip()  # inner spaces kept: a file name may have two in a row
        if ref not in found:
            found.append(ref)
    if len(found) > MAX_REFERENCES:
        raise NoteRefused(f"`after:` names {len(found)} tasks; at most {MAX_REFERENCES}")
    return tuple(found)


def _link(item: object) -> object:
    """An unquoted `[[A]]` reads as a list holding a list (in a block list, one more): the
    link it was meant to be."""
    depth = 0
    while isinstance(item, list) and len(item) == 1:
        item, depth = item[0], depth + 1
    return f"[[{item}]]" if depth and isinstance(item, str) else item


def note_name(ref: str) -> str:
    """The note file name a reference means: `[[Folder/Name#Heading|alias]]` -> `Name.md`."""
    name = ref
    if name.startswith("[[") and name.endswith("]]"):
        name = name[2:-2].split("|", 1)[0].split("#", 1)[0].strip()
    name = name.rsplit("/", 1)[-1].strip()
    return name if name.endswith(".md") else f"{name}.md"


def find_cycle(start: str, waits_on: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of waiting tasks through `start` (`[start, ..., start]`), or None. `waits_on`:
    each waiting task's dependencies that are not done. Depth first, each task once."""
    path: list[str] = [start]
    seen: set[str] = set()
    stack: list[Iterator[str]] = [iter(waits_on.get(start, ()))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
            continue
        if nxt == start:
            return [*path, start]
        if nxt in seen:
            continue
        seen.add(nxt)
        path.append(nxt)
        stack.append(iter(waits_on.get(nxt, ())))
    return None
