#!/usr/bin/env bash
# The ACP agents the tests drive for real (tests/test_acp_real.py), pinned, from the npm
# registry, into .cache/acp-agents/: Claude's ACP adapter (it carries its own Claude Code),
# and Codex's (a native binary; it talks to the tests' fake OpenAI API on 127.0.0.1).
# Idempotent; run by scripts/test.sh after the system packages (node and npm among them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLAUDE_AGENT_ACP_VERSION=0.23.1
CODEX_ACP_VERSION=0.16.0
dir=.cache/acp-agents
stamp="$dir/.installed"
want="@zed-industries/claude-agent-acp@$CLAUDE_AGENT_ACP_VERSION @zed-industries/codex-acp@$CODEX_ACP_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "acp-agents: installing $want into $dir" >&2
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # two packages, split on purpose
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error $want >&2
  echo "$want" >"$stamp"
fi
