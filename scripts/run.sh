#!/usr/bin/env bash
# ONE command for a fresh machine: sets everything up, then runs the service on the repo's vault/ (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export AI_EMPLOYEE_VAULT="${AI_EMPLOYEE_VAULT:-$PWD/vault}"
.venv/bin/ai-employee init
exec .venv/bin/ai-employee run "$@"
