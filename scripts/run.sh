#!/usr/bin/env bash
# ONE command for a fresh machine: sets everything up, then runs the service on the repo's vault/, with its web page on http://127.0.0.1:8787/ (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export AI_EMPLOYEE_VAULT="${AI_EMPLOYEE_VAULT:-$PWD/vault}"
# Your own `claude` (logged in) is used when it is on PATH; otherwise the pinned copy setup made.
if ! command -v claude >/dev/null 2>&1 && [ -x .cache/claude-code/node_modules/.bin/claude ]; then
  export AI_EMPLOYEE_CLAUDE_PATH="${AI_EMPLOYEE_CLAUDE_PATH:-$PWD/.cache/claude-code/node_modules/.bin/claude}"
fi
.venv/bin/ai-employee init
exec .venv/bin/ai-employee run --dashboard "$@"
