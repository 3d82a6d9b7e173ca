"""The docs show tables generated from the code, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

from ai_employee.config import markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_configuration_doc_has_the_current_key_table() -> None:
    assert markdown_table() in (DOCS / "CONFIGURATION.md").read_text()
