"""Notes the service will not touch (broken YAML, binary, too big, a path that escapes...): the
refusal said once in the log, told to a person once per note content (across restarts:
`.ai-employee/told.json`), and forgotten when the note can be read again. The note itself is
never rewritten or moved. Runs in the main loop only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from ..base.config import Config
from ..notes.index import NoteIndex
from ..notes.notefile import signature_of
from ..notes.vault import Vault
from ..telling.notify import Event, Notice, Tell, ToldRefusals, fingerprint

log = structlog.get_logger(__name__)


@dataclass
class Refusals:
    """The refused notes' side of a look (see the module docstring)."""

    vault: Vault
    config: Config
    index: NoteIndex
    hooks: Tell
    told: ToldRefusals
    """The refused notes a person was told of (once per note content, across restarts)."""

    def refuse(self, path: Path, reason: str) -> None:
        """A look cannot trust the note at `path`: remembered (a later look of the same file
        costs an lstat), logged once, told once."""
        try:
            signature = signature_of(os.lstat(path))
        except FileNotFoundError:
            return
        rel = self.vault.rel(path)
        if self.index.refuse(path, signature, reason):
            log.error(
                "note refused",
                action_type="refuse",
                target=rel,
                result="left untouched",
                error=reason,
            )
        # Told once per note content: not again at a sweep, a rescan or a restart.
        if self.hooks.wants(Event.NEEDS_ATTENTION) and self.told.first(
            rel, fingerprint(path, reason, self.config.max_note_bytes)
        ):
            self.hooks.tell(
                Notice(Event.NEEDS_ATTENTION, path, title=path.name, detail=f"refused: {reason}")
            )

    def readable(self, path: Path) -> None:
        """The note at `path` could be read: a refusal of it, if any, is over."""
        if self.index.accept(path):
            log.info("note accepted", target=self.vault.rel(path), result="refusal cleared")
            self.told.forget(self.vault.rel(path))

    def keep_only_present(self) -> None:
        """After a full scan: forget having told of notes no longer refused."""
        self.told.keep_only(self.vault.rel(p) for p in self.index.refused)
