#!/usr/bin/env bash
# Does a running thumbnail checker slow the feed? One interleaved run:
#   bash bench/jobs.sh                     # ~3 minutes on 2 cores
# videofeed (4 workers, response cache off, rank index on) serves the 100k-video
# corpus behind nginx; every thumbnail points at a local origin. The query log is
# replayed with wrk (shared/bench/run_load.sh, 16 connections) in three states,
# ROUNDS times in turn: no checker; `videofeed check-thumbnails` at its defaults
# (8 threads, 20 requests/s); and unthrottled (32 threads, --rate 0). Each line
# gives the feed's rps and latency and the checks per second the checker made.
# Env: WORK (/var/tmp/peerbench), COUNT (100000), ROUNDS (2), DURATION (20), CONC (16).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
work="${WORK:-/var/tmp/peerbench}"
count="${COUNT:-100000}"
run="$work/run-jobs"
corpus="$work/data/videos-$count.jsonl"
db="$work/vf-jobs-$count.db"
bin="$root/target/release/videofeed"
mkdir -p "$work/data" "$run/tmp"

checker_pid=""
cleanup() {
  set +e
  [ -n "$checker_pid" ] && kill -TERM "$checker_pid" 2>/dev/null
  [ -f "$run/nginx.pid" ] && kill -QUIT "$(cat "$run/nginx.pid")" 2>/dev/null
  [ -f "$run/videofeed.pid" ] && kill -TERM "$(cat "$run/videofeed.pid")" 2>/dev/null
  sleep 0.5
  rm -f "$run"/*.pid
}
trap cleanup EXIT
for c in nginx wrk python3; do
  command -v "$c" >/dev/null || { echo "bench: $c is missing (apt-get install -y nginx wrk)" >&2; exit 2; }
done

(cd "$root" && cargo build --release --locked --quiet)
if [ ! -s "$corpus" ]; then
  echo "bench: generating $count videos (seed 1)"
  (cd "$shared" && python3 gen_corpus.py --count "$count" --seed 1 --out "$corpus")
fi
rm -f "$db" "$db-wal" "$db-shm"
"$bin" import --db "$db" "$corpus" >/dev/null
python3 - "$db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE videos SET thumbnail = 'http://127.0.0.1:18060/vi/' || id || '/hqdefault.jpg'")
c.commit()
PY

rm -f "$run/videofeed.sock"
VIDEOFEED_CACHE_BYTES=0 VIDEOFEED_LOG=info "$bin" serve --db "$db" --socket "$run/videofeed.sock" --workers 4 \
  2>"$run/videofeed.log" &
echo $! > "$run/videofeed.pid"
until "$bin" get --socket "$run/videofeed.sock" '/feed/health' >/dev/null 2>&1; do sleep 0.05; done
for _ in $(seq 1 300); do grep -q "rank index ready" "$run/videofeed.log" && break; sleep 0.1; done
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -e "s|@RUN@|$run|g" -e "s|@SOCKET@|$run/videofeed.sock|g" -e "s|@USER_LINE@|$user_line|" \
  "$root/bench/jobs.nginx.conf.in" > "$run/nginx.conf"
nginx -c "$run/nginx.conf" -p "$run" -e "$run/nginx-error.log"
curl -fsS -o /dev/null -I "http://127.0.0.1:18060/vi/x/hqdefault.jpg"

echo "bench: machine: $(nproc) cores; $count videos; wrk ${CONC:-16} connections, ${DURATION:-20} s per line"
measure() {  # LABEL [checker args...]
  local label=$1
  shift
  local before after checks=""
  if [ $# -gt 0 ]; then
    # A fresh pass each time: every thumbnail is due again.
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM thumbnail_checks'); c.commit()" "$db"
    "$bin" check-thumbnails --db "$db" --max-age 30d "$@" > "$run/checker.out" 2>/dev/null &
    checker_pid=$!
    sleep 2
    before=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM thumbnail_checks').fetchone()[0])" "$db")
  fi
  line=$(LABEL="$label" "$shared/run_load.sh" http://127.0.0.1:18050 "${CONC:-16}" "${DURATION:-20}" "$shared/data/queries-1.txt")
  if [ -n "$checker_pid" ]; then
    after=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM thumbnail_checks').fetchone()[0])" "$db")
    checks="checks_per_s=$(( (after - before) / ${DURATION:-20} ))"
    # It may have finished its pass already; a stopped checker exits 0 (it writes what it finished).
    if kill -0 "$checker_pid" 2>/dev/null; then kill -TERM "$checker_pid"; fi
    wait "$checker_pid"
    checks="$checks checker: $(cat "$run/checker.out")"
    checker_pid=""
  fi
  echo "bench: $line $checks"
}
for round in $(seq 1 "${ROUNDS:-2}"); do
  echo "bench: round $round"
  measure no-checker
  measure checker-defaults --concurrency 8 --rate 20
  measure checker-unthrottled --concurrency 32 --rate 0
done
