#!/usr/bin/env bash
# ONE command for a fresh machine: sets everything up, then runs ruff, mypy and the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
echo "== ruff" >&2
.venv/bin/ruff check ai_employee tests bench
.venv/bin/ruff format --check ai_employee tests bench
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
# pytest exits 5 when it collected no test: that is a failure here, as any non-zero exit is.
exec .venv/bin/python -m pytest "$@"
