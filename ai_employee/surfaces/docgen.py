"""Tables in docs/ that are generated from the code, so the docs cannot drift from it.

`python -m ai_employee.surfaces.docgen docs` rewrites the blocks between
`<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`; tests/test_docs.py fails when a
block is out of date.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ..base import config
from ..notes import lifecycle

PACKAGE = Path(__file__).resolve().parents[1]
"""The ai_employee package folder: its layers are the folders with an `__init__.py`."""


def transitions_table() -> str:
    rows = ["| from | to |", "|---|---|"]
    for old, new in lifecycle.TRANSITIONS.items():
        name = "missing" if old is None else old.value
        targets = ", ".join(sorted(s.value for s in new)) or "(never: drafts are not touched)"
        rows.append(f"| {name} | {targets} |")
    return "\n".join(rows)


def layers() -> list[tuple[str, ModuleType]]:
    """Each layer (a folder of the package) and its package, the lowest first: by how many
    layers it may import, then by name."""
    found = [
        (init.parent.name, importlib.import_module(f"ai_employee.{init.parent.name}"))
        for init in PACKAGE.glob("*/__init__.py")
    ]
    return sorted(found, key=lambda layer: (len(layer[1].MAY_IMPORT), layer[0]))


def _job(package: ModuleType) -> str:
    """A layer's job in a line: its docstring's first."""
    return (package.__doc__ or "").strip().splitlines()[0]


def _modules(folder: Path) -> list[str]:
    names = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    names += [f"{p.parent.name}/" for p in folder.glob("*/__init__.py")]
    return sorted(names)


def layers_tree() -> str:
    """The package's folders, one line each with its job, the lowest layer first."""
    rows = ["ai_employee/", "  __init__.py  the public API;  __main__.py  python -m ai_employee"]
    for name, package in layers():
        rows.append(f"  {name + '/':<10} {_job(package)}")
    return "```\n" + "\n".join(rows) + "\n```"


def layers_table() -> str:
    """Each layer, its modules and the layers it may import (tests/test_layers.py checks)."""
    rows = ["| layer | modules | may import |", "|---|---|---|"]
    for name, package in layers():
        modules = ", ".join(_modules(PACKAGE / name))
        may = ", ".join(f"{m}/" for m in package.MAY_IMPORT) or "nothing of ours"
        rows.append(f"| `{name}/` | {modules} | {may} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "layers-tree": layers_tree,
    "layers-table": layers_table,
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
