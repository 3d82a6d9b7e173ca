"""Tables in docs/ that are generated from the code, so the docs cannot drift from it.

`python -m ai_employee.surfaces.docgen docs` rewrites the blocks between
`<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`; tests/test_docs.py fails when a
block is out of date.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from ..base import config
from ..notes import lifecycle


def transitions_table() -> str:
    rows = ["| from | to |", "|---|---|"]
    for old, new in lifecycle.TRANSITIONS.items():
        name = "missing" if old is None else old.value
        targets = ", ".join(sorted(s.value for s in new)) or "(never: drafts are not touched)"
        rows.append(f"| {name} | {targets} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "config-keys": config.markdown_table,
    "lifecycle-rules": lifecycle.markdown_table,
    "lifecycle-transitions": transitions_table,
}

_BLOCK = re.compile(
    r"(<!-- BEGIN generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END generated:(?P=name) -->)",
    re.DOTALL,
)


def render(text: str) -> str:
    """The text with every generated block brought up to date."""
    return _BLOCK.sub(
        lambda m: m.group(1) + GENERATORS[m.group("name")]() + "\n" + m.group(4), text
    )


def main(docs: Path) -> int:
    changed = 0
    for path in sorted(docs.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path}")
            changed += 1
    return changed


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
