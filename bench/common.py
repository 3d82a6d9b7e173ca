"""Helpers for the benchmarks: percentiles, a vault in a temp dir, the service in a thread."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from ai_employee.config import load_config
from ai_employee.logs import configure_logging
from ai_employee.service import Service
from ai_employee.vault import init_vault


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, ms: Sequence[float]) -> str:
    return (
        f"{name:<34} n={len(ms):>5}  p50={pct(ms, 50):7.3f} ms  p90={pct(ms, 90):7.3f} ms  "
        f"p99={pct(ms, 99):7.3f} ms  max={max(ms):7.3f} ms  mean={statistics.fmean(ms):7.3f} ms"
    )


@contextlib.contextmanager
def temp_vault() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aie-bench-", dir="/tmp") as tmp:
        root = Path(tmp) / "vault"
        init_vault(root, Path(tmp) / "apps")
        yield root


@contextlib.contextmanager
def service_in_thread(root: Path, **env: str) -> Iterator[Service]:
    config = load_config(root, env={f"AI_EMPLOYEE_{k.upper()}": v for k, v in env.items()})
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


def note_text(i: int, task_type: str = "claude_app") -> str:
    return f"---\ntitle: Bench {i}\ntype: {task_type}\npriority: normal\n---\nDo thing {i}.\n"
