#!/usr/bin/env bash
# Measure two trees of this repo side by side: a benchmark on each in turn, ROUNDS times, so
# that a noisy shared machine's drift hits both alike. BENCH picks it (default runs.py).
#   git worktree add /tmp/old <commit>
#   bash bench/ab.sh /tmp/old 3 --n 500 --burst 1000
#   BENCH=drop_to_planned.py bash bench/ab.sh /tmp/old 3 --n 500
# The old tree gets this tree's bench/ files first, so both are measured the same way.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
old=$(cd "$1" && pwd)
rounds=$2
shift 2
cp "$here"/bench/*.py "$here"/bench/*.c "$old"/bench/
# The order alternates by round: on a journal-less ext4 the files a run deletes make creating
# files slower for the next minutes, which would always hit the tree that runs second.
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="$old $here"; else order="$here $old"; fi
  for tree in $order; do
    echo "== round $round: $tree ($(git -C "$tree" rev-parse --short HEAD))"
    (cd "$tree" && PYTHONPATH="$tree" "$here/.venv/bin/python" "bench/${BENCH:-runs.py}" "$@")
  done
done
