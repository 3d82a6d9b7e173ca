#!/usr/bin/env bash
# The whole suite against the built wheel with every runtime dependency at its floor (the `>=`
# bounds in pyproject.toml), run from the sdist's own tests: proves the floors, the wheel and
# the sdist in one go. Usage: scripts/test-floors.sh DIST_DIR (with the wheel and the sdist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dist=$(cd "$1" && pwd)
work=$PWD/build/floors
rm -rf "$work" && mkdir -p "$work"

.venv/bin/python scripts/floors.py >"$work/constraints.txt"
.venv/bin/python -m venv "$work/venv"
wheel=$(ls "$dist"/ai_employee-*.whl)
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary :all: \
  -c "$work/constraints.txt" "$wheel[test]"
# pip could not have taken another version, but say what was installed, and check it.
"$work/venv/bin/python" - "$work/constraints.txt" <<'PY'
import sys
from importlib.metadata import version
from pathlib import Path
sys.path.insert(0, "scripts")
from floors import floors as runtime_floors  # every [project] dependency, from pyproject.toml
floors = dict(line.strip().split("==") for line in open(sys.argv[1]) if "==" in line)
runtime = list(runtime_floors(Path("pyproject.toml")))
got = {name: version(name) for name in runtime}
print("floors run with: " + ", ".join(f"{n} {v}" for n, v in got.items()), file=sys.stderr)
def release(v):  # 1.1 and 1.1.0 are one release
    parts = v.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return parts
wrong = {n: v for n, v in got.items() if release(v) != release(floors[n])}
sys.exit(f"not at the floor: {wrong}" if wrong else 0)
PY

mkdir "$work/sdist"
tar xzf "$(ls "$dist"/ai_employee-*.tar.gz)" -C "$work/sdist" --strip-components=1
rm -rf "$work/sdist/ai_employee"  # the tests must import the installed wheel, not the source
cd "$work/sdist"
# test_install.py installs the wheel into virtualenvs of its own (the main run did that).
TEST_EXPECT_INSTALLED=1 TEST_CLAUDE_BIN="$OLDPWD/.cache/claude-agent-sdk/claude_agent_sdk/_bundled/claude" \
  TEST_ACP_ADAPTER="$OLDPWD/.cache/acp-agents/node_modules/.bin/claude-agent-acp" \
  TEST_CODEX_ACP="$OLDPWD/.cache/acp-agents/node_modules/.bin/codex-acp" \
  "$work/venv/bin/python" -m pytest -p no:cacheprovider -q --ignore=tests/test_install.py
