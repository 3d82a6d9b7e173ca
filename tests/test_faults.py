"""The fault table's short version (bench/faults.py --quick): every fault injected at least
once, and no task lost, run twice or corrupted by any of them. The full table, with more tasks
and injections and a crash at every durable step, is the benchmark published in
docs/RELIABILITY.md; the durable steps are also tests/test_crash_steps.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "faults.py"


@pytest.mark.timeout(900)  # eight faults, each a service of its own: about 45 s
def test_the_quick_fault_table(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(rows_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    print(done.stdout)
    assert rows_file.exists(), done.stderr[-4000:]
    rows = json.loads(rows_file.read_text())
    assert len(rows) == 8, done.stderr
    for row in rows:
        where = f"{row['fault']}: {row}"
        assert row["injected"] >= 1, where
        assert row["tasks"] >= 4, where
        assert row["done"] + row["failed_as_expected"] == row["tasks"], where
        assert row["lost"] == row["run_twice"] == row["corrupted"] == 0, where
    said = {row["fault"]: row["said"] for row in rows}
    assert "left as written" in said["SIGSTOP until inotify overflows"]
    for disk in ("vault's disk full", "vault's disk remounted read-only"):
        words = said[f"{disk}, runs in flight"]
        logged, injected = map(int, re.findall(r"logged (\d+) time\(s\) for (\d+)", words)[0])
        assert logged <= injected, f"{disk}: said once per episode, not once per write"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| fault | injected | tasks |" in done.stdout
