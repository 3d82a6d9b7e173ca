"""Helpers for the benchmarks: percentiles, a vault in a temp dir, the service in a thread."""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

try:  # the package in layer folders; bench/ab.sh runs these files on older, flat trees too
    from ai_employee.base import fsops
    from ai_employee.base.config import load_config
    from ai_employee.base.logs import configure_logging
    from ai_employee.daemon.service import Service
    from ai_employee.notes.vault import init_vault
except ModuleNotFoundError:
    from ai_employee.config import load_config
    from ai_employee.logs import configure_logging
    from ai_employee.service import Service
    from ai_employee.vault import init_vault

    from ai_employee import fsops


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, ms: Sequence[float]) -> str:
    return (
        f"{name:<34} n={len(ms):>5}  p50={pct(ms, 50):7.3f} ms  p90={pct(ms, 90):7.3f} ms  "
        f"p99={pct(ms, 99):7.3f} ms  max={max(ms):7.3f} ms  mean={statistics.fmean(ms):7.3f} ms"
    )


BENCH_DIR = os.environ.get("BENCH_DIR", "/tmp")
"""Where the benchmarks make their vaults (BENCH_DIR=...): the price of creating a file differs
between folders of one disk (see create_cost_us), so a run says where it ran."""


def create_cost_us(folder: Path, n: int = 100) -> float:
    """p50 of creating, writing and closing a small new file in `folder` (no fsync), in us.

    The probes are left in place (they go with the temp vault): on a journal-less ext4 every
    file deleted in the last ~30 s makes each new file's inode search longer, so deleting them
    here would slow what is measured next.
    """
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fd = os.open(folder / f".probe{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x" * 300)
        os.close(fd)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return pct(samples, 50)


def journal_commits(folder: Path) -> int | None:
    """How many transactions the ext4 journal of `folder`'s filesystem has committed so far
    (/proc/fs/jbd2); None without a journal. Every fsync waits for one commit, and commits run
    one after another: on a journaled disk they are what a burst queues on."""
    st = os.stat(folder)
    try:
        name = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve().name
    except OSError:
        return None
    for info in Path("/proc/fs/jbd2").glob(f"{name}-*/info"):
        try:
            return int(info.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return None


@contextlib.contextmanager
def temp_vault() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aie-bench-", dir=BENCH_DIR) as tmp:
        root = Path(tmp) / "vault"
        init_vault(root, Path(tmp) / "apps")
        yield root


@contextlib.contextmanager
def service_in_thread(root: Path, **env: str) -> Iterator[Service]:
    config = load_config(root, env={f"AI_EMPLOYEE_{k.upper()}": v for k, v in env.items()})
    if hasattr(fsops, "quiet_lease_breaks"):  # as the CLI does (older trees: bench/ab.sh)
        fsops.quiet_lease_breaks()
    if "style" in inspect.signature(configure_logging).parameters:
        configure_logging(root / "Logs", style="json", console_level=100)
    else:  # trees before the console styles (bench/ab.sh)
        configure_logging(root / "Logs", json_console=True, console_level=100)
    ready = threading.Event()
    service = Service(config, on_ready=ready.set)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("service not ready")
    try:
        yield service
    finally:
        service.stop()
        thread.join(120)


def claude_against(fake_url: str, tmp: Path) -> None:
    """This process's environment (which the service's agents inherit) for the real Claude CLI
    against the fake API at `fake_url`: a private HOME and TMPDIR under `tmp`, an API key, no
    retries inside the CLI, no traffic beyond the fake."""
    for name in ("home", "t"):
        (tmp / name).mkdir(exist_ok=True)
    os.environ.update(
        HOME=str(tmp / "home"),
        TMPDIR=str(tmp / "t"),
        ANTHROPIC_BASE_URL=fake_url,
        ANTHROPIC_API_KEY="test",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    os.environ.pop("CLAUDECODE", None)


def note_text(i: int, task_type: str = "claude_app") -> str:
    return f"---\ntitle: Bench {i}\ntype: {task_type}\npriority: normal\n---\nDo thing {i}.\n"


def watch_steps(service: Service, observer: Callable[[Path, object, str], None]) -> None:
    """Be told of every lifecycle step the service takes (path, step, task_id)."""
    reconciler: Any = service.reconciler
    if hasattr(reconciler, "step_observers"):
        reconciler.step_observers.append(observer)
    else:  # trees before the run coordinator (bench/ab.sh measures them too)
        reconciler.on_step = observer


_IN_CREATE, _IN_MOVED_TO = 0x100, 0x80
_EVENT = struct.Struct("iIII")


class Arrivals:
    """Names arriving in one folder (renamed or created there), with the monotonic ns of each,
    from an inotify watch of the benchmark's own: how long a note takes to reach Done/ is
    measured from the outside, the same way on any tree."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_CLOEXEC)
        if (
            self._fd < 0
            or libc.inotify_add_watch(self._fd, str(folder).encode(), _IN_CREATE | _IN_MOVED_TO) < 0
        ):
            raise OSError(ctypes.get_errno(), f"cannot watch {folder}")
        self.seen: dict[str, int] = {}
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="bench-arrivals").start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except OSError:
                return
            at = time.monotonic_ns()
            offset = 0
            with self._changed:
                while offset < len(data):
                    _, _, _, size = _EVENT.unpack_from(data, offset)
                    name = data[offset + 16 : offset + 16 + size].rstrip(b"\0").decode()
                    self.seen.setdefault(name, at)
                    offset += 16 + size
                self._changed.notify_all()

    def wait(self, name: str, timeout: float) -> int:
        """When `name` arrived (monotonic ns); raises after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: name in self.seen, timeout):
                raise RuntimeError(f"{name} did not arrive in {timeout} s")
            return self.seen[name]

    def wait_count(self, n: int, timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.seen) >= n, timeout):
                raise RuntimeError(f"only {len(self.seen)} of {n} arrived in {timeout} s")

    def close(self) -> None:
        os.close(self._fd)
