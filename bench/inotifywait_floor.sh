#!/usr/bin/env bash
# The floor: how fast a shell reacts to a rename with inotifywait (no parsing, no writing).
#   bash bench/inotifywait_floor.sh [N]      (needs inotify-tools: apt-get install inotify-tools)
set -euo pipefail
n=${1:-300}
command -v inotifywait >/dev/null || { echo "inotifywait missing: apt-get install inotify-tools" >&2; exit 1; }
dir=$(mktemp -d /tmp/aie-floor-XXXXXX)
mkdir "$dir/watch" "$dir/stage"
trap 'kill $watcher 2>/dev/null || true; rm -rf "$dir"' EXIT
fifo="$dir/fifo"; mkfifo "$fifo"
inotifywait -q -m -e moved_to --format '%f' "$dir/watch" >"$fifo" &
watcher=$!
exec 3<"$fifo"
sleep 0.5  # let inotifywait set its watch up (it prints nothing when ready)
for i in $(seq 1 "$n"); do
  : >"$dir/stage/f$i"
  t0=$EPOCHREALTIME
  mv "$dir/stage/f$i" "$dir/watch/f$i"
  read -r _ <&3
  t1=$EPOCHREALTIME
  echo "$t0 $t1"
done | awk '{ printf "%.4f\n", ($2 - $1) * 1000 }' | sort -n | awk '{ d[NR] = $1 } END {
  printf "inotifywait floor (incl. the mv process): n=%d p50=%.3f ms p99=%.3f ms\n", NR, d[int(NR*0.5)], d[int(NR*0.99)] }'
