#!/usr/bin/env bash
# Sets up everything the project needs, idempotently: a Python 3.11+ virtualenv in .venv with the
# package (editable) and its pinned dependencies. Sourced by run.sh and test.sh; safe to run alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "setup: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python)
  echo "setup: creating .venv with $($py --version)" >&2
  "$py" -m venv .venv
fi

# Reinstall only when the dependency lists changed since the last successful install.
stamp=.venv/.ai-employee-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing ai-employee and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt -e '.[dev]'
  echo "$want" >"$stamp"
fi

# The real Claude Code CLI, pinned, for the tests (they drive it against a fake API on
# 127.0.0.1) and as a fallback claude for the service. About 360 MB, from the npm registry only.
CLAUDE_CODE_VERSION=2.1.328
claude_bin=.cache/claude-code/node_modules/.bin/claude
if command -v npm >/dev/null 2>&1; then
  if [ ! -x "$claude_bin" ] || [ "$("$claude_bin" --version 2>/dev/null | cut -d' ' -f1)" != "$CLAUDE_CODE_VERSION" ]; then
    echo "setup: installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into .cache/claude-code" >&2
    mkdir -p .cache/claude-code
    npm install --prefix .cache/claude-code --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2
  fi
else
  echo "setup: npm not found: the Claude Code CLI is not installed (its tests will be skipped)" >&2
fi
