#!/usr/bin/env bash
# Start-up of several responders at once on one database (issue 32, point 1): how
# LiteSpeed starts one videofeed per httpd worker. Two cases at VIDEOS videos:
#   fresh: no index file (deleted): one process builds it under the lock beside it,
#          the others wait and map its file;
#   file:  the file `import`/`demo` left: every process maps it.
# For each process: how it got its index (built / mapped), when its rank index was
# ready after its start, its CPU time, and whether any maps a deleted or other file.
# Usage: bash bench/startup_many.sh [VIDEOS [PROCESSES]]   (default 1000000 4)
# Env: WORK (default /var/tmp/vf-startup; the database is kept there and reused).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
videos="${1:-1000000}"
procs="${2:-4}"
work="${WORK:-/var/tmp/vf-startup}"
bin="$root/target/release/videofeed"
db="$work/videos-$videos.db"
mkdir -p "$work"
(cd "$root" && cargo build --release --locked --quiet)
if [ ! -s "$db" ]; then
  "$bin" demo --db "$db" --videos "$videos" --seed 11 | sed 's/^/bench: /'
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

run_case() {
  local name=$1
  pids=()
  for i in $(seq 1 "$procs"); do
    VIDEOFEED_LOG=info "$bin" serve --db "$db" --socket "$work/vf$i.sock" --workers 2 2>"$work/$name-$i.log" &
    pids+=("$!")
  done
  for i in $(seq 1 "$procs"); do
    for _ in $(seq 1 1800); do grep -q "rank index ready" "$work/$name-$i.log" && break; sleep 0.1; done
    "$bin" get --socket "$work/vf$i.sock" "/feed?q=music&limit=3" >/dev/null
  done
  local inode
  inode=$(stat -c %i "$db.rank")
  for i in $(seq 1 "$procs"); do
    local pid=${pids[$((i - 1))]} log="$work/$name-$i.log" how started ready ms cpu maps
    how=$(grep -q "written to" "$log" && echo built || echo mapped)
    started=$(grep -m1 "serving db=" "$log" | sed -E 's/^\[([^ ]+) .*/\1/')
    ready=$(grep -m1 "rank index ready" "$log" | sed -E 's/^\[([^ ]+) .*/\1/')
    ms=$(( ($(date -d "$ready" +%s%N) - $(date -d "$started" +%s%N)) / 1000000 ))
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
    maps=$(grep "videos-$videos.db.rank" "/proc/$pid/maps" | awk -v ino="$inode" '$5 != ino || /deleted/ {bad++} END {print bad ? "OTHER/DELETED" : "the current file"}')
    echo "bench: $name process $i: $how, index ready $ms ms after start, CPU $cpu s, maps $maps"
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

rm -f "$db.rank"
echo "bench: $procs processes started at once on $videos videos without an index file"
run_case fresh
echo "bench: $procs processes started at once with the index file in place"
run_case file
