"""Print pip constraints that hold every runtime dependency at its floor.

The floors are the `>=` bounds in pyproject.toml's [project] dependencies, read from there so
they cannot drift; every other package keeps its pin from constraints.txt. scripts/test.sh
installs the built wheel with these constraints and runs the suite, which proves the floors.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def floors(pyproject: Path) -> dict[str, str]:
    out = {}
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        floor = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
        if floor is None:
            sys.exit(f"floors: {requirement!r} has no >= floor")
        out[_name(requirement)] = floor.group(1)
    return out


def main() -> None:
    pinned = floors(ROOT / "pyproject.toml")
    lines = [f"{name}=={version}" for name, version in pinned.items()]
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#") and _name(line) not in pinned:
            lines.append(line.strip())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
