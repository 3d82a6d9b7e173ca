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
# 127.0.0.1) and as the claude the service runs from a clone when none is installed: the native
# binary the claude-agent-sdk wheel carries, installed alone (--no-deps, from PyPI: no npm) into
# .cache/claude-agent-sdk/. The wheel's version pins the CLI's (claude.version beside it).
CLAUDE_AGENT_SDK_VERSION=0.2.190 # carries Claude Code 2.1.337
sdk=.cache/claude-agent-sdk
claude_bin=$sdk/claude_agent_sdk/_bundled/claude
if [ ! -x "$claude_bin" ] || [ "$(cat "$sdk/.wheel-version" 2>/dev/null)" != "$CLAUDE_AGENT_SDK_VERSION" ]; then
  echo "setup: installing Claude Code from claude-agent-sdk $CLAUDE_AGENT_SDK_VERSION into $sdk" >&2
  rm -rf "$sdk"
  if .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    --only-binary :all: --target "$sdk" "claude-agent-sdk==$CLAUDE_AGENT_SDK_VERSION" >&2; then
    echo "$CLAUDE_AGENT_SDK_VERSION" >"$sdk/.wheel-version"
  else
    echo "setup: no claude-agent-sdk wheel for this machine: install Claude Code yourself" \
      "(https://docs.claude.com/en/docs/claude-code/setup) or set claude_path" >&2
  fi
fi
