#!/usr/bin/env bash
# Same-run comparison of two videofeed builds (a refactor must not slow the feed):
#   bash bench/before_after.sh BEFORE_BIN AFTER_BIN [DB]
# Both serve the same database (default: $WORK/vf-1000000.db, as bench/compare.sh
# imports it) with the response cache off, each behind its own nginx (ports 18050 and
# 18051, the config of bench/nginx.conf.in), and shared/bench/compare.sh measures
# them interleaved: for every round and concurrency, before then after.
# Env: WORK (/var/tmp/peerbench), WORKERS (16), CONCS ("16 64"), DURATION (15),
#      ROUNDS (2), QUERY_LOG (shared/bench/data/queries-1.txt), BEFORE_DB (a copy of the
#      data for the before build, when its schema version differs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
work="${WORK:-/var/tmp/peerbench}"
before=$(realpath "${1:?usage: before_after.sh BEFORE_BIN AFTER_BIN [DB]}")
after=$(realpath "${2:?usage: before_after.sh BEFORE_BIN AFTER_BIN [DB]}")
db="${3:-$work/vf-1000000.db}"
[ -s "$db" ] || { echo "bench: no database at $db (run bench/compare.sh or pass one)" >&2; exit 2; }
for c in nginx wrk; do command -v "$c" >/dev/null || { echo "bench: $c is missing: apt-get install -y nginx wrk" >&2; exit 2; }; done

pids=()
cleanup() {
  set +e
  for n in before after; do
    [ -f "$work/run-$n/nginx.pid" ] && kill -QUIT "$(cat "$work/run-$n/nginx.pid")" 2>/dev/null
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
}
trap cleanup EXIT

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
port=18050
for n in before after; do
  bin=$before
  serve_db="${BEFORE_DB:-$db}"
  [ "$n" = after ] && bin=$after && serve_db=$db
  run="$work/run-$n"
  mkdir -p "$run/tmp"
  rm -f "$run/videofeed.sock"
  VIDEOFEED_CACHE_BYTES=0 VIDEOFEED_LOG=info "$bin" serve --db "$serve_db" --socket "$run/videofeed.sock" \
    --workers "${WORKERS:-16}" 2>"$run/videofeed.log" &
  pids+=("$!")
  for _ in $(seq 1 600); do grep -q "rank index ready" "$run/videofeed.log" && break; sleep 0.1; done
  grep -q "rank index ready" "$run/videofeed.log" || { echo "bench: $n: rank index not ready" >&2; exit 1; }
  sed -e "s|@RUN@|$run|g" -e "s|@SOCKET@|$run/videofeed.sock|g" -e "s|@USER_LINE@|$user_line|" \
    -e "s|127.0.0.1:18050|127.0.0.1:$port|" "$root/bench/nginx.conf.in" > "$run/nginx.conf"
  nginx -c "$run/nginx.conf" -p "$run" -e "$run/nginx-error.log"
  echo "bench: $n = $bin ($("$bin" --version)) on :$port"
  port=$((port + 1))
done

CONCS="${CONCS:-16 64}" DURATION="${DURATION:-15}" ROUNDS="${ROUNDS:-2}" \
  QUERY_LOG="${QUERY_LOG:-$shared/data/queries-1.txt}" \
  "$shared/compare.sh" before=http://127.0.0.1:18050 after=http://127.0.0.1:18051
