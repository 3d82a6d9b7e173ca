#!/usr/bin/env bash
# ONE command for a fresh machine: sets everything up, then runs ruff, mypy and the whole test
# suite twice: from the checkout with the pinned dependencies, and from the built wheel with
# every runtime dependency at its floor (the sdist's own tests). Arguments, if any, are passed
# to the first pytest run only and the floors run is left out (a quick check while working).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/system-packages.sh
bash scripts/acp-agents.sh
echo "== ruff" >&2
.venv/bin/ruff check ai_employee tests bench scripts
.venv/bin/ruff format --check ai_employee tests bench scripts
echo "== mypy" >&2
.venv/bin/mypy
echo "== build (sdist, then the wheel from the sdist)" >&2
rm -rf build/dist && mkdir -p build
.venv/bin/python -m build --outdir build/dist . >build/build.log 2>&1 || { cat build/build.log >&2; exit 1; }
echo "== pytest" >&2
# pytest exits 5 when it collected no test: that is a failure here, as any non-zero exit is.
TEST_DIST_DIR=$PWD/build/dist .venv/bin/python -m pytest "$@"
[ $# -eq 0 ] || exit 0
echo "== pytest at the dependency floors, from the wheel, with the sdist's tests" >&2
bash scripts/test-floors.sh build/dist
