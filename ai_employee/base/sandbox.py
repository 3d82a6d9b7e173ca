"""`sandbox = "bwrap"`: the command agent and a task's check in bubblewrap.

The sandboxed process sees the whole machine read-only but for /tmp, which is a private, empty
one (the vault is shown again, read-only, should it live there); it writes only its work dir
(or worktree) and that /tmp, has a PID namespace of its own (when it ends, everything it
started ends with it) and, with `sandbox_network = false`, no network. It is a command line
around the agent's own: no state, nothing else started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a command line (`sandbox`, `sandbox_network` of the configuration)."""

    network: bool = True

    def wrap(self, argv: list[str], workdir: Path, readable: tuple[Path, ...] = ()) -> list[str]:
        """`argv` run in bubblewrap, writing only `workdir` and a private /tmp; `readable`:
        paths shown read-only again over that /tmp (the vault: its prompt files)."""
        where = str(workdir)
        shown = [arg for path in readable for arg in ("--ro-bind", str(path), str(path))]
        return [
            BWRAP,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",  # noqa: S108 (a private, empty /tmp: the point)
            *shown,
            "--bind", where, where,
            "--setenv", "TMPDIR", "/tmp",  # noqa: S108
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
