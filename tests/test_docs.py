"""The docs show tables generated from the code, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_employee.docgen import GENERATORS, render

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_generated_blocks_are_up_to_date(doc: str) -> None:
    text = (DOCS / doc).read_text()
    assert render(text) == text, f"run: python -m ai_employee.docgen docs  ({doc} is stale)"


def test_every_generator_is_used_somewhere() -> None:
    used = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for name in GENERATORS:
        assert f"<!-- BEGIN generated:{name} -->" in used
