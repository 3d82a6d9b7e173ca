"""The package's layers: each folder of ai_employee/ is a layer whose `__init__` names the layers
it may import (`MAY_IMPORT`); no module imports a layer it does not name (lower layers never
import higher ones), also inside a function, under TYPE_CHECKING, or by a literal name given to
`importlib.import_module`. The package's own `__init__` (the public API) runs before any of its
modules, so it may import only the lowest layers (`ROOT_MAY_IMPORT`).

The check reads the source of the package as imported (the wheel's, in the floors run), so it
judges what users install.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import ai_employee

PACKAGE = Path(ai_employee.__file__).parent
ROOT_NAME = "ai_employee"
ROOT_MAY_IMPORT = {"base", "notes"}
"""What `ai_employee/__init__.py` may import: importing any module of a layer loads it first."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, dotted (ai_employee.running.executor)."""
    line: int
    target: str
    """What it imports, dotted: a module, a package, or a name in one (resolved to its module
    where the name is a module)."""


def modules_of(package: Path) -> dict[str, Path]:
    """Every module of the package tree at `package`, by dotted name."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = [ROOT_NAME, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(package: Path) -> list[Import]:
    """Every import of one of the package's own modules, anywhere in its source."""
    modules = modules_of(package)
    found = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        here = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.Call) and _imports_by_name(node):
                targets = [node.args[0].value]  # type: ignore[attr-defined]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # `from . import fsops` imports the module fsops; `from .x import Y`, module x.
                targets = [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                    for a in node.names
                ]
            else:
                continue
            found += [
                Import(module, node.lineno, t)
                for t in targets
                if t == ROOT_NAME or t.startswith(f"{ROOT_NAME}.")
            ]
    return found


def _imports_by_name(call: ast.Call) -> bool:
    """`importlib.import_module("ai_employee.x")` or `__import__("ai_employee.x")`, with the name
    written out (a name built at run time cannot be judged here)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return (
        name in ("import_module", "__import__")
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    )


def layer_of(dotted: str) -> str | None:
    """The layer a module belongs to (None: the package's own __init__ or __main__)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] != "__main__") else None


def allowed(package: Path) -> dict[str, set[str]]:
    """Each layer and the layers its `__init__` says it may import (read from the source, so a
    copy of the package is judged by its own words)."""
    rules = {}
    for init in sorted(package.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "MAY_IMPORT":
                assert node.value is not None
                rules[init.parent.name] = set(ast.literal_eval(node.value))
    return rules


def violations(package: Path) -> list[str]:
    """Each import of a layer that its importer's layer may not import, as a line to read."""
    rules = allowed(package)
    root_uses = {
        layer
        for i in imports_of(package)
        if i.module == ROOT_NAME and (layer := layer_of(i.target)) is not None
    }
    found = [
        f"{ROOT_NAME}/__init__.py:{i.line} imports {i.target}: the package itself may import "
        f"only {', '.join(sorted(ROOT_MAY_IMPORT))}"
        for i in imports_of(package)
        if i.module == ROOT_NAME and layer_of(i.target) not in ROOT_MAY_IMPORT
    ]
    for i in imports_of(package):
        mine, theirs = layer_of(i.module), layer_of(i.target)
        if mine is None or mine == theirs:
            continue
        # The package itself (`from .. import __version__`) carries what it imports.
        needs = root_uses if theirs is None else {theirs}
        if not needs <= rules[mine]:
            shown = theirs or f"{ROOT_NAME} (which imports {', '.join(sorted(root_uses))})"
            found.append(f"{i.module}:{i.line} imports {i.target}: {mine} may not import {shown}")
    return found


def test_every_module_is_in_a_layer_that_says_what_it_may_import() -> None:
    rules = allowed(PACKAGE)
    assert set(rules) == {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    loose = [m for m in modules_of(PACKAGE) if m.count(".") == 1 and layer_of(m) not in rules]
    assert loose == ["ai_employee.__main__"]
    for layer, may in rules.items():
        assert may <= set(rules) - {layer}, f"{layer} names an unknown layer: {may}"
        package = importlib.import_module(f"{ROOT_NAME}.{layer}")
        assert set(package.MAY_IMPORT) == may
        assert package.__doc__ and "import" in package.__doc__.lower()


def test_the_layers_form_no_cycle() -> None:
    rules = allowed(PACKAGE)
    done: set[str] = set()

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in path, f"layers import in a cycle: {' -> '.join((*path, layer))}"
        if layer not in done:
            for lower in rules[layer]:
                visit(lower, (*path, layer))
            done.add(layer)

    for layer in rules:
        visit(layer, ())


def test_no_module_imports_a_layer_its_layer_may_not() -> None:
    assert violations(PACKAGE) == []
    assert len(imports_of(PACKAGE)) > 200  # the check sees the imports (relative ones included)


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    copy = tmp_path / ROOT_NAME
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == []
    lifecycle = copy / "notes" / "lifecycle.py"
    text = lifecycle.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    planted = "from ..running.scheduler import RunRequest  # noqa\n"
    lifecycle.write_text(text + planted, encoding="utf-8")
    assert violations(copy) == [
        f"ai_employee.notes.lifecycle:{lines + 1} imports ai_employee.running.scheduler: "
        "notes may not import running"
    ]


def test_a_lower_layer_importing_the_package_itself_is_found(tmp_path: Path) -> None:
    copy = tmp_path / ROOT_NAME
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fsops = copy / "base" / "fsops.py"
    fsops.write_text(
        fsops.read_text(encoding="utf-8") + "\nfrom .. import __version__  # noqa\n",
        encoding="utf-8",
    )
    (found,) = violations(copy)
    assert found.startswith("ai_employee.base.fsops:")
    assert "base may not import ai_employee (which imports base, notes)" in found


def test_the_architecture_doc_names_every_module_under_its_layer() -> None:
    """docs/ARCHITECTURE.md has a line for each module, under its layer, and no more."""
    doc = Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md"
    section = doc.read_text(encoding="utf-8").split("### Modules, a line each", 1)[1]
    section = section.split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    layer = ""
    for line in section.splitlines():
        if match := re.fullmatch(r"`(\w+)/`", line):
            layer = match[1]
        elif (match := re.match(r"\| `([\w.]+/?)` \|", line)) and layer:
            documented.setdefault(layer, set()).add(match[1])
    expected = {
        layer: {p.name for p in (PACKAGE / layer).glob("*.py") if p.name != "__init__.py"}
        | {f"{p.parent.name}/" for p in (PACKAGE / layer).glob("*/__init__.py")}
        for layer in allowed(PACKAGE)
    }
    assert documented == expected


def test_the_package_itself_imports_only_the_lowest_layers(tmp_path: Path) -> None:
    copy = tmp_path / ROOT_NAME
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "__init__.py"
    init.write_text(
        init.read_text(encoding="utf-8") + "from .daemon import mainloop  # noqa\n",
        encoding="utf-8",
    )
    (found,) = violations(copy)
    assert found.startswith("ai_employee/__init__.py:")
    assert found.endswith(
        "imports ai_employee.daemon.mainloop: the package itself may import only base, notes"
    )


def test_an_import_by_a_written_out_name_is_found(tmp_path: Path) -> None:
    copy = tmp_path / ROOT_NAME
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    index = copy / "notes" / "index.py"
    index.write_text(
        index.read_text(encoding="utf-8")
        + "\nimport importlib  # noqa\n"
        + 'executor = importlib.import_module("ai_employee.running.executor")  # noqa\n',
        encoding="utf-8",
    )
    (found,) = violations(copy)
    assert found.startswith("ai_employee.notes.index:")
    assert found.endswith("imports ai_employee.running.executor: notes may not import running")
