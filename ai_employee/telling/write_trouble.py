"""The vault's disk takes no writes (full, over quota, read-only): said once when it begins and
once when it ends, however many writes fail meanwhile, and shown on Dashboard.md (when that can
be written) while it lasts.

Whoever fails a write says so here (the main loop's steps, its redraws; a run's thread through
a `CannotWrite` message). Nothing is lost meanwhile: every write is atomic (the old text stays
whole), a run's thread tries its end again, and the notes whose step or claim failed are
held here until the trouble is over, then looked at again. At each safety sweep while it
lasts, the vault's disk is asked (statvfs: neither read-only nor under 1 MiB free, what the
page and `doctor` call full) and a small file is written (and synced) in its temporary
folder: when both say yes, the trouble is over. No run starts meanwhile (its claim would be
refused). Used by the main loop's thread only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import structlog

from ..base import fsops
from ..base.diskspace import is_disk_error, trouble
from ..notes.vault import Vault

log = structlog.get_logger(__name__)

PROBE_NAME = "write-probe"


class WriteTrouble:
    """See the module docstring."""

    def __init__(self, vault: Vault, now: Callable[[], datetime]) -> None:
        self.vault = vault
        self.now = now
        self.since: datetime | None = None
        """When the first write failed (None: writes go through)."""
        self.error = ""
        """The first failure's error, as the OS said it."""
        self.failed_writes = 0
        self._began = 0.0
        self._held: dict[Path, None] = {}
        """Notes whose step or claim the disk refused, in order: looked at again at its end."""

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, what: str, target: Path, err: OSError, retry: Path | None = None) -> None:
        """A write the disk refused (`is_disk_error`): logged if it is the first since writes
        last went through, counted either way. `retry`: a note to look at again once writes
        go through."""
        assert is_disk_error(err), err
        self.failed_writes += 1
        if retry is not None:
            self._held[retry] = None
        if self.since is not None:
            return
        self.since, self.error, self._began = self.now(), err.strerror or str(err), time.monotonic()
        log.error(
            "cannot write to the vault",
            action_type="disk",
            target=str(target),
            parameters={"what": what},
            error=f"{type(err).__name__}: {err}",
            result="work waits (nothing is lost; the old text of every note stays whole) and "
            "goes on by itself once space or write access is back",
        )

    def hold(self, path: Path) -> bool:
        """A note to look at again once writes go through (a claim the disk refused, taken
        once its run is over). False when they go through already: the caller sees to it."""
        if self.since is None:
            return False
        self._held[path] = None
        return True

    def probe(self) -> list[Path] | None:
        """At each safety sweep while the trouble lasts: can the vault be written again? None
        while it cannot (or there was no trouble); when it just could, the trouble is over
        (said once) and these are the notes it held back, to be looked at again."""
        if self.since is None:
            return None
        if trouble("vault", self.vault.root) is not None:  # full (under 1 MiB), or read-only
            return None
        probe = self.vault.tmp / PROBE_NAME
        try:
            fsops.write_atomic(probe, b"ai-employee can write here\n", self.vault.tmp)
            os.unlink(probe)
        except OSError:
            return None
        log.info(
            "the vault can be written again",
            action_type="disk",
            target=str(self.vault.root),
            parameters={
                "waited_s": round(time.monotonic() - self._began, 1),
                "failed_writes": self.failed_writes,
            },
            result="the work goes on",
        )
        self.since, self.error, self.failed_writes = None, "", 0
        held, self._held = list(self._held), {}
        return held

    def words(self) -> list[str]:
        """What Dashboard.md says while the trouble lasts (nothing once it is over)."""
        if self.since is None:
            return []
        return [
            f"Cannot write to the vault since {self.since:%Y-%m-%d %H:%M:%S %Z}: {self.error} "
            f"({self.failed_writes} write(s) refused). Work waits and goes on by itself once "
            "space or write access is back; nothing is lost."
        ]
