#!/usr/bin/env bash
# Size scaling: the same measurements at 100k, 1M and 3M videos (and 10M on request).
#   bash bench/scaling.sh            # SIZES="100000 1000000 3000000" by default
#   SIZES="100000 1000000 3000000 10000000" bash bench/scaling.sh   # the 10M point: ~40 minutes more
# For each size: the corpus (shared/bench/gen_corpus.py, seed 1), `videofeed import`
# (timed), the in-process query-log replay (cargo bench --bench search, rank index on),
# and videofeed behind nginx at 64 connections (bench/compare.sh, videofeed only).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
work="${WORK:-/var/tmp/peerbench}"
for count in ${SIZES:-100000 1000000 3000000}; do
  echo "== $count videos"
  corpus="$work/data/videos-$count.jsonl"
  [ -s "$corpus" ] || (cd "$shared" && "$work/venv/bin/python" gen_corpus.py --count "$count" --seed 1 --out "$corpus")
  (cd "$root" && cargo build --release --locked --quiet)
  db="$work/vf-$count.db"
  rm -f "$db" "$db-wal" "$db-shm"
  t0=$(date +%s%N)
  "$root/target/release/videofeed" import --db "$db" "$corpus" 2>/dev/null
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  echo "import: $count videos in $ms ms ($(( count * 1000 / (ms > 0 ? ms : 1) )) rows/s), database $(( $(stat -c %s "$db") / 1048576 )) MiB"
  (cd "$root" && VIDEOFEED_RANK_INDEX=on BENCH_QUERIES=20000 cargo bench --quiet --bench search -- "$db" "$shared/data/queries-1.txt" 20 \
    | grep -E "rank index:|query log|slowest")
  COUNT="$count" SKIP_IMPORT=1 ONLY_VIDEOFEED=1 WORKERS=4 CONCS=64 DURATION=15 bash "$root/bench/compare.sh" 2>&1 \
    | grep -E "round=|memory|start to first"
done
