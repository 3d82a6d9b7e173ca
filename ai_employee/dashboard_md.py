"""Dashboard.md: what the service sees, for a person in Obsidian. Rendering is pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Line:
    """One task as the dashboard lists it."""

    link: str  # a wikilink target: the note's path in the vault without .md
    title: str
    detail: str = ""


@dataclass
class DashboardState:
    updated: datetime
    counts: dict[str, Counter[str]]
    queued: Sequence[Line] = ()
    running: Sequence[Line] = ()
    waiting_approval: Sequence[Line] = ()
    recent: Sequence[Line] = ()
    attention: Sequence[Line] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def link_for(root: Path, path: Path) -> str:
    return str(path.relative_to(root).with_suffix("")).replace("\\", "/")


def render(state: DashboardState) -> str:
    out = [
        "# Dashboard",
        "",
        f"_Written by ai-employee at {state.updated.isoformat(timespec='seconds')}; "
        "edits here are overwritten._",
        "",
    ]
    out += [f"> {note}" for note in state.notes]
    if state.notes:
        out.append("")
    out += ["## Counts", "", "| folder | tasks |", "|---|---|"]
    for folder, counter in state.counts.items():
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counter.items())) or "-"
        out.append(f"| {folder} | {detail} |")
    out.append("")
    for heading, lines, empty in (
        ("Needs attention", state.attention, "Nothing: every note could be read."),
        ("Running", state.running, "Nothing runs."),
        ("Queue", state.queued, "Empty."),
        ("Waiting for approval", state.waiting_approval, "None."),
        ("Recent", state.recent, "Nothing yet."),
    ):
        out += [f"## {heading}", ""]
        if not lines:
            out.append(empty)
        for line in lines:
            detail = f" - {line.detail}" if line.detail else ""
            out.append(f"- [[{line.link}|{_safe(line.title)}]]{detail}")
        out.append("")
    return "\n".join(out)


def _safe(text: str) -> str:
    return text.replace("|", "/").replace("]]", "] ]").replace("\n", " ")
