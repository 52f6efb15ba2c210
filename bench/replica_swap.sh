#!/usr/bin/env bash
# The cost of one read-replica swap (docs/scale-out.md) at 1M videos: the copy
# `videofeed replica` takes (VACUUM INTO: time, bytes written), and what `serve`
# does meanwhile: the old file keeps answering through its rank index while the
# new file's index is built, then workers switch. A client asks /feed in a loop
# the whole time; its slowest answers show whether the swap cost any.
#   bash bench/replica_swap.sh     # DB=/var/tmp/peerbench/vf-1000000.db (bench/compare.sh makes it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="${WORK:-/var/tmp/peerbench}"
src="${DB:-$work/vf-1000000.db}"
bin="$root/target/release/videofeed"
run="$work/run-swap"
[ -s "$src" ] || { echo "bench: $src is missing: run bench/compare.sh first (or set DB)" >&2; exit 2; }
(cd "$root" && cargo build --release --locked --quiet)
rm -rf "$run" && mkdir -p "$run"
cleanup() { [ -f "$run/serve.pid" ] && kill -TERM "$(cat "$run/serve.pid")" 2>/dev/null; [ -f "$run/load.pid" ] && kill "$(cat "$run/load.pid")" 2>/dev/null; return 0; }
trap cleanup EXIT

"$bin" backup --db "$src" "$run/videos.db" >/dev/null
VIDEOFEED_LOG=info VIDEOFEED_CACHE_BYTES=0 "$bin" serve --db "$run/videos.db" --socket "$run/vf.sock" --workers 4 2>"$run/serve.log" &
echo $! > "$run/serve.pid"
for _ in $(seq 1 1200); do grep -q "rank index ready" "$run/serve.log" && break; sleep 0.1; done
grep -q "rank index ready" "$run/serve.log" || { echo "bench: the index was not built" >&2; exit 1; }

# The client: one request after another, each timed (ms), until stopped.
(
  words=(music live night rain lofi video official best remix cover)
  i=0
  while true; do
    w=${words[$((i % ${#words[@]}))]}
    t0=$(date +%s%N)
    "$bin" get --socket "$run/vf.sock" "/feed?q=$w&limit=24" >/dev/null
    t1=$(date +%s%N)
    echo "$(( (t1 - t0) / 1000 ))" >> "$run/latency_us"
    i=$((i + 1))
  done
) &
echo $! > "$run/load.pid"
sleep 3
before=$(wc -l < "$run/latency_us")

t0=$(date +%s%N)
"$bin" backup --db "$src" "$run/videos.db.swap-tmp" >/dev/null
t1=$(date +%s%N)
bytes=$(stat -c %s "$run/videos.db.swap-tmp")
mv "$run/videos.db.swap-tmp" "$run/videos.db"
echo "bench: copy (VACUUM INTO) $(( (t1 - t0) / 1000000 )) ms, $(( bytes / 1048576 )) MiB written"
for _ in $(seq 1 1200); do [ "$(grep -c "rank index ready" "$run/serve.log")" -ge 2 ] && break; sleep 0.1; done
grep "rank index ready" "$run/serve.log" | tail -1 | sed 's/^/bench: new file: /'
sleep 3
kill "$(cat "$run/load.pid")" && rm -f "$run/load.pid"
grep -c "reopening" "$run/serve.log" | sed 's/^/bench: worker switches logged: /'
tail -n +"$((before + 1))" "$run/latency_us" | sort -n | awk '{a[NR]=$1} END {printf "bench: %d requests from the swap on: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000}'
head -n "$before" "$run/latency_us" | sort -n | awk '{a[NR]=$1} END {printf "bench: %d requests before: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000}'
