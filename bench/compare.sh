#!/usr/bin/env bash
# The speed comparison, from nothing, in one interleaved run:
#   bash bench/compare.sh                 # ~10 minutes on 2 cores
# 1. the 1M corpus (shared/bench/gen_corpus.py, seed 1), unless already there;
# 2. `videofeed import` of it, timed;
# 3. the peers' database (shared/bench/load_sqlite.py);
# 4. videofeed behind nginx (fastcgi_pass to its Unix socket, upstream keep-alive) on :18050,
#    with the response cache off and the shipped default worker count (WORKERS overrides),
#    and its start-to-first-answer time; the FastCGI-hop ceiling on :18051 (the same nginx
#    and process answering /feed/health to every request, no search);
# 5. the best peer configurations (Litestar/uvicorn 2 workers :18011, PHP-FPM persistent PDO
#    :18012) and the static ceiling (:18003) via shared/bench/peers/peers.sh;
# 6. shared/bench/compare.sh at 16, 64 and 256 connections, then videofeed's memory.
# Leaves nothing running (a trap stops everything, also on failure).
# Env: WORK (/var/tmp/peerbench), COUNT (1000000), CONCS ("16 64 256"), DURATION (15),
#      ROUNDS (1), WORKERS (videofeed's workers; default: the shipped 2 per CPU), SKIP_IMPORT=1 (reuse the imported database), ONLY_VIDEOFEED=1 (no peers),
#      CACHE_BYTES (videofeed's response cache, default 0 = off), QUERY_LOG (the log to replay),
#      SMOKE=1 (start and stop every piece on a small corpus, no measurement),
#      SOAK=1 (videofeed alone, 256 connections for 1 + 9 minutes, memory after each part).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
work="${WORK:-/var/tmp/peerbench}"
count="${COUNT:-1000000}"
[ "${SMOKE:-0}" = 1 ] && count=2000
run="$work/run-videofeed"
corpus="$work/data/videos-$count.jsonl"
ours="$work/vf-$count.db"
peers_db="$work/db/videos-$count.db"
py="$work/venv/bin/python"
bin="$root/target/release/videofeed"
mkdir -p "$work/data" "$work/db" "$run/tmp"

cleanup() {
  set +e
  [ -f "$run/nginx.pid" ] && kill -QUIT "$(cat "$run/nginx.pid")" 2>/dev/null
  [ -f "$run/videofeed.pid" ] && kill -TERM "$(cat "$run/videofeed.pid")" 2>/dev/null
  [ -f "$run/vmtouch.pid" ] && kill -TERM "$(cat "$run/vmtouch.pid")" 2>/dev/null
  [ "${ONLY_VIDEOFEED:-0}" = 1 ] || FEED_DB="$peers_db" "$shared/peers/peers.sh" stop >/dev/null 2>&1
  sleep 0.5
  rm -f "$run"/*.pid
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing: apt-get install -y nginx php-fpm php-sqlite3 wrk vmtouch" >&2; exit 2; }; }
for c in nginx wrk vmtouch php-fpm8.2; do need "$c"; done
if [ ! -x "$py" ] || ! "$py" -c 'import wordfreq, litestar, uvicorn' 2>/dev/null; then
  echo "bench: setting up $work/venv (wordfreq, litestar, uvicorn, granian, aiosqlite, msgspec)"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q wordfreq litestar msgspec aiosqlite 'uvicorn[standard]' granian
fi

echo "bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
(cd "$root" && cargo build --release --locked --quiet)
if [ ! -s "$corpus" ]; then
  echo "bench: generating $count videos (seed 1)"
  (cd "$shared" && "$py" gen_corpus.py --count "$count" --seed 1 --out "$corpus")
fi
if [ "${SKIP_IMPORT:-0}" != 1 ] || [ ! -s "$ours" ]; then
  rm -f "$ours" "$ours-wal" "$ours-shm"
  echo "bench: videofeed import (timed)"
  "$bin" import --db "$ours" "$corpus"
fi
if [ "${ONLY_VIDEOFEED:-0}" != 1 ] && [ ! -s "$peers_db" ]; then
  python3 "$shared/load_sqlite.py" "$corpus" "$peers_db"
fi

# videofeed: start, and time the first answer from the moment the process starts.
# Pages in first (synchronously), then the lock in the background; vmtouch -d returns
# before it has locked, and its crawl used to run during the start-up being timed.
vmtouch -q -t "$ours"
[ -f "$ours.rank" ] && vmtouch -q -t "$ours.rank"
vmtouch -q -d -l -P "$run/vmtouch.pid" "$ours"
sleep 2
rm -f "$run/videofeed.sock"
t0=$(date +%s%N)
# The shipped default worker count (2 per CPU) unless WORKERS is set.
workers_arg=()
[ -n "${WORKERS:-}" ] && workers_arg=(--workers "$WORKERS")
VIDEOFEED_CACHE_BYTES="${CACHE_BYTES:-0}" VIDEOFEED_LOG=info "$bin" serve --db "$ours" --socket "$run/videofeed.sock" "${workers_arg[@]}" \
  2>"$run/videofeed.log" &
echo $! > "$run/videofeed.pid"
until "$bin" get --socket "$run/videofeed.sock" '/feed?q=disdain&limit=24' >/dev/null 2>&1; do sleep 0.001; done
t1=$(date +%s%N)
"$bin" get --socket "$run/videofeed.sock" '/feed?q=music&limit=24' >/dev/null
t2=$(date +%s%N)
echo "bench: videofeed start to first answer: $(( (t1 - t0) / 1000000 )) ms; then a common word before the rank index is ready: $(( (t2 - t1) / 1000000 )) ms"
for _ in $(seq 1 3000); do grep -q "rank index ready" "$run/videofeed.log" && break; sleep 0.1; done
grep "rank index ready" "$run/videofeed.log" | sed 's/^/bench: /'
grep -o 'workers=[0-9]*' "$run/videofeed.log" | head -1 | sed 's/^/bench: videofeed /'

# nginx workers must reach the socket (mode 0660, owned by whoever runs this).
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -e "s|@RUN@|$run|g" -e "s|@SOCKET@|$run/videofeed.sock|g" -e "s|@USER_LINE@|$user_line|" \
  "$root/bench/nginx.conf.in" > "$run/nginx.conf"
nginx -c "$run/nginx.conf" -p "$run" -e "$run/nginx-error.log"
# fcgi-hop-ceiling (:18051): the same nginx and process, every request answered by
# /feed/health (no search): what the FastCGI hop and our protocol layer cost alone.
targets=(videofeed=http://127.0.0.1:18050 fcgi-hop-ceiling=http://127.0.0.1:18051)
if [ "${ONLY_VIDEOFEED:-0}" != 1 ]; then
  FEED_DB="$peers_db" "$shared/peers/peers.sh" start litestar2 nginx
  targets+=(litestar-uvicorn-2w=http://127.0.0.1:18011 php-fpm-persistent=http://127.0.0.1:18012
            static-nginx=http://127.0.0.1:18003)
fi

rss() { awk '/VmRSS/{print $2}' "/proc/$(cat "$run/videofeed.pid")/status"; }
if [ "${SOAK:-0}" = 1 ]; then
  log="${QUERY_LOG:-$shared/data/queries-1.txt}"
  echo "bench: soak: 256 connections, 60 s then 540 s, query log $log"
  first=$("$shared/run_load.sh" http://127.0.0.1:18050 256 60 "$log")
  rss1=$(rss)
  echo "bench: soak minute 1: $first rss_kb=$rss1"
  rest=$("$shared/run_load.sh" http://127.0.0.1:18050 256 540 "$log")
  rss2=$(rss)
  echo "bench: soak minutes 2-10: $rest rss_kb=$rss2"
  echo "bench: soak memory change after minute 1: $(( (rss2 - rss1) * 100 / rss1 ))%"
  exit 0
fi

if [ "${SMOKE:-0}" = 1 ]; then
  for t in "${targets[@]}"; do
    url=${t#*=}
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/feed?q=music&limit=3")
    echo "bench: smoke $url -> $code"
    [ "$code" = 200 ]
  done
  echo "bench: smoke test passed"
  exit 0
fi

CONCS="${CONCS:-16 64 256}" DURATION="${DURATION:-15}" ROUNDS="${ROUNDS:-1}" QUERY_LOG="${QUERY_LOG:-$shared/data/queries-1.txt}" \
  "$shared/compare.sh" "${targets[@]}"
pid=$(cat "$run/videofeed.pid")
echo "bench: videofeed memory after the run: $(grep -E 'VmHWM|VmRSS|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t' ' ' | paste -sd ' ')"
heap() {
  "$bin" get --socket "$run/videofeed.sock" /feed/metrics |
    grep -E '^videofeed_(heap_bytes|prefix_memo_bytes|rank_index_classes_bytes|rank_index_memo_evictions_total|response_cache_bytes)' | paste -sd ' '
}
echo "bench: videofeed heap and memo after the run: $(heap)"
sleep 11   # the heap trimmer's round (every 10 s)
echo "bench: videofeed 11 s later: $(grep -E 'RssAnon' "/proc/$pid/status" | tr -s ' \t' ' ') $(heap)"
