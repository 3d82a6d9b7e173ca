#!/usr/bin/env bash
# The programs the tests drive for real, from Debian's packages, installed when missing:
# systemd (systemd-analyze, and `systemd --test` to read a unit back as systemd parses it),
# util-linux (setpriv, to run that as an unprivileged user when the tests run as root), and
# the tools vaults live in (tests/test_sync_tools.py): git, syncthing, vim; the browser the
# web page's tests drive with Playwright (tests/test_web_browser.py): Debian's chromium; and
# node with npm, for the ACP agents the tests install from the npm registry; bubblewrap, the
# sandbox of `sandbox = "bwrap"`, and socat, which Claude Code's own sandbox needs beside it
# (tests/test_sandbox.py).
set -euo pipefail

need=()
command -v systemd-analyze >/dev/null 2>&1 && [ -x /lib/systemd/systemd ] || need+=(systemd)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v git >/dev/null 2>&1 || need+=(git)
command -v syncthing >/dev/null 2>&1 || need+=(syncthing)
command -v vim >/dev/null 2>&1 || need+=(vim)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm) # node and npm: the ACP agents (scripts/acp-agents.sh)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "system-packages: the tests need ${need[*]} (apt-get install ${need[*]}); run as root or with sudo" >&2
  exit 1
fi
echo "system-packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
