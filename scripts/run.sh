#!/usr/bin/env bash
# ONE command for a fresh machine: sets everything up, then runs the service on the repo's vault/, with its web page on http://127.0.0.1:8787/ (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export AI_EMPLOYEE_VAULT="${AI_EMPLOYEE_VAULT:-$PWD/vault}"
.venv/bin/ai-employee init
# Which claude the service will run (your own on PATH, else Claude Code's own install, else the
# copy setup.sh made in .cache/) and whether it is logged in: said now, with the exact command
# to fix it, rather than in the first task's error.
if ! .venv/bin/ai-employee doctor; then
  echo "run.sh: runs will fail until the problem above is fixed; the service starts anyway" \
    "(Ctrl-C stops it)" >&2
fi
exec .venv/bin/ai-employee run --dashboard "$@"
