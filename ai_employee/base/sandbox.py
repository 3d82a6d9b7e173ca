"""`sandbox = "bwrap"`: the command agent and a task's check in bubblewrap.

The sandboxed process sees the whole machine read-only (the vault too: the note it could
otherwise edit to grant itself tools); it writes only its work dir (or worktree) and a private
temporary folder its caller makes (`TMPDIR`), has a PID namespace of its own (when it ends,
everything it started ends with it) and, with `sandbox_network = false`, no network. It is a
command line around the agent's own: no state, nothing else started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a command line (`sandbox`, `sandbox_network` of the configuration)."""

    network: bool = True

    def wrap(self, argv: list[str], workdir: Path, tmpdir: Path) -> list[str]:
        """`argv` run in bubblewrap, writing only `workdir` and `tmpdir` (its TMPDIR)."""
        where, tmp = str(workdir), str(tmpdir)
        return [
            BWRAP,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--bind", where, where,
            "--bind", tmp, tmp,
            "--setenv", "TMPDIR", tmp,
            "--unshare-pid",
            "--die-with-parent",
            *([] if self.network else ["--unshare-net"]),
            "--chdir", where,
            "--",
            *argv,
        ]  # fmt: skip


def sandbox_of(kind: str, network: bool) -> Sandbox | None:
    """The sandbox the configuration asks for (None: `sandbox = "none"`)."""
    return Sandbox(network) if kind == "bwrap" else None
