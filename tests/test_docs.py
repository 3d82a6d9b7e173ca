"""The docs show tables generated from the code, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_employee.surfaces.docgen import GENERATORS, render

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_generated_blocks_are_up_to_date(doc: str) -> None:
    text = (DOCS / doc).read_text()
    assert render(text) == text, (
        f"run: python -m ai_employee.surfaces.docgen docs  ({doc} is stale)"
    )


def test_every_generator_is_used_somewhere() -> None:
    used = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for name in GENERATORS:
        assert f"<!-- BEGIN generated:{name} -->" in used


def _subcommands() -> set[str]:
    from ai_employee.surfaces.cli import _parser

    parser = _parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    return set(actions[0].choices or {})


@pytest.mark.parametrize("doc", [*sorted(p.name for p in DOCS.glob("*.md")), "../README.md"])
def test_every_command_in_the_docs_exists_and_runs(doc: str) -> None:
    """Each `ai-employee <command>` a doc shows is a real command whose --help runs."""
    import re

    from ai_employee.surfaces.cli import main

    text = (DOCS / doc).read_text()
    known = _subcommands()
    # Commands as docs show them: in `code` or code blocks, optionally after --vault PATH.
    code = "\n".join(re.findall(r"`[^`\n]+`|```.*?```", text, re.DOTALL))
    used = set(re.findall(r"ai-employee(?: --vault [^ `]+)? ([a-z][a-z-]*)", code))
    for command in sorted(used):
        assert command in known, f"{doc} shows `ai-employee {command}`, which does not exist"
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0


def test_the_docs_show_the_main_commands() -> None:
    import re

    text = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for command in [
        "init",
        "run",
        "status",
        "add",
        "approve",
        "reject",
        "retry",
        "cancel",
        "logs",
        "doctor",
        "service install",
        "once",
        "dashboard",
    ]:
        pattern = rf"ai-employee (?:--vault \S+ )?{command}\b"
        assert re.search(pattern, text), f"no doc shows `ai-employee {command}`"
