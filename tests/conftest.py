"""Shared fixtures: a fresh vault per test, structlog reset around each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ai_employee.base.config import Config, load_config
from ai_employee.notes.vault import Vault, init_vault

pytest_plugins = ("tests.claude_harness",)
"""The real Claude Code CLI's fixtures (claude_bin, fake, claude_env), for every claude test."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """TEST_EXPECT_INSTALLED=1 (the floors run): the suite must test the installed wheel."""
    import ai_employee

    where = Path(ai_employee.__file__)
    if os.environ.get("TEST_EXPECT_INSTALLED") == "1" and "site-packages" not in where.parts:
        raise pytest.UsageError(f"ai_employee comes from {where}, not from the installed wheel")


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's AI_EMPLOYEE_* settings."""
    for key in list(os.environ):
        if key.startswith("AI_EMPLOYEE_") or key == "CLAUDECODE":
            monkeypatch.delenv(key)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    root = tmp_path / "vault"
    init_vault(root, tmp_path / "apps")
    return Vault(root)


@pytest.fixture
def config(vault: Vault) -> Config:
    return load_config(vault.root, env={})
