"""Class and function sizes of a tree's ai_employee/ package, in lines (from the AST).

    python scripts/sizes.py [TREE]      (default: this checkout)

Prints the modules and lines, every class over 250 lines and function over 50 (the house's
guides, not limits), and the largest of each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def main(tree: Path) -> None:
    package = tree / "ai_employee"
    files = sorted(package.rglob("*.py"))
    rows = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                rows.append((size, kind, f"{path.relative_to(tree)}:{node.name}"))
    rows.sort(reverse=True)
    lines = sum(len(p.read_text().splitlines()) for p in files)
    print(f"{tree}: {len(files)} modules, {lines} lines")
    for kind, limit in (("class", 250), ("def", 50)):
        over = [f"{name} {size}" for size, k, name in rows if k == kind and size > limit]
        largest = [f"{name} {size}" for size, k, name in rows if k == kind][:5]
        print(f"{kind} over {limit} lines: {', '.join(over) or 'none'}")
        print(f"largest {kind}: {', '.join(largest)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
