#!/usr/bin/env bash
# An operator's day, scripted (issue 30): each step is the command docs/operations.md
# gives ("An operator's day"), run as written against 100,000 videos behind nginx while
# a constant read load goes through nginx the whole time. After each step: no failed
# request so far, `PRAGMA integrity_check` ok, and the rows expected.
#   install -> import -> write -> back up -> write more -> restore -> upgrade (twice)
#   -> change a setting -> stop
# Usage: bash tests/operator_day/run.sh [COUNT]      (100000 in .ci/run, ~1-2 minutes)
# Needs nginx, curl and python3; root (nginx's workers reach the socket as root here).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
count="${1:-100000}"
work=$(mktemp -d /tmp/videofeed-operator-day.XXXXXX)
port=$((20000 + RANDOM % 20000))
bin_src="$root/target/release/videofeed"
prefix="$work/prefix"; db="$work/lib/videos.db"; run="$work/run"; sock="$run/videofeed.sock"
env_file="$work/etc/videofeed.env"; log="$work/log/videofeed.log"
install=("$root/install.sh" --binary "$bin_src" --prefix "$prefix" --db "$db" --socket "$sock"
  --run-dir "$run" --log "$log" --env-file "$env_file" --socket-group root
  --nginx-conf "$work/nginx.conf" --lsws-root "$work/no-lsws")
token="operator-day-token"
say() { printf 'operator-day: %s\n' "$*"; }
fail() { printf 'operator-day: FAILED: %s\n' "$*" >&2; exit 1; }

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  set +e
  touch "$work/stop-load"
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
  [ -f "$run/videofeed.pid" ] && kill -TERM "$(cat "$run/videofeed.pid")" 2>/dev/null
  sleep 0.5
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
for c in nginx curl python3; do command -v "$c" >/dev/null || fail "$c is missing"; done
(cd "$root" && cargo build --release --locked --quiet)

venv="${TMPDIR:-/tmp}/videofeed-differential-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import wordfreq' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q wordfreq
fi
(cd "$shared" && "$venv/bin/python" gen_corpus.py --count "$count" --seed 11 --out "$work/videos.jsonl")

# What the site asks all day: a few searches, through nginx, counted by status.
cat > "$work/load.py" <<'PY'
import http.client, os, sys, threading, time, collections
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
paths = ["/feed?q=music", "/feed?q=the%20best&region=GB", "/feed?q=lo&limit=5", "/feed?q=day%20one&region=DE", "/feed/health"]
counts = collections.Counter(); lock = threading.Lock()
def loop(k):
    i = k
    while not os.path.exists(stop):
        i += 1
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", paths[i % len(paths)])
            status = c.getresponse().status
            c.close()
        except Exception as e:
            status = type(e).__name__
        with lock:
            counts[status] += 1
            with open(out + ".tmp", "w") as f:
                f.write(" ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str)) + "\n")
            os.replace(out + ".tmp", out)
ts = [threading.Thread(target=loop, args=(k,)) for k in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
load_ok() {
  local counts
  counts=$(cat "$work/load.counts" 2>/dev/null || echo "")
  [ -n "$counts" ] || fail "no load counts yet"
  if echo "$counts" | tr ' ' '\n' | grep -v -E '^200=' | grep -q .; then fail "$1: requests failed under load: $counts"; fi
  say "$1: load so far: $counts"
}
rows() { python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('SELECT count(*) FROM videos').fetchone()[0])" "$db"; }
integrity() {
  local r
  r=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('PRAGMA integrity_check').fetchone()[0])" "$db")
  [ "$r" = ok ] || fail "$1: integrity_check: $r"
}
ids_like() { python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('SELECT count(*) FROM videos WHERE id LIKE ?', (sys.argv[2],)).fetchone()[0])" "$db" "$1"; }
feed_count() { curl -s "http://127.0.0.1:$port/feed?q=$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
post() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" --data-binary "@$1" "http://127.0.0.1:$port/feed/admin/videos"; }
check() { integrity "$1"; load_ok "$1"; }

# 1. Install: the settings file first (the token turns the write API on), then install.sh.
mkdir -p "$(dirname "$env_file")"
printf 'VIDEOFEED_ADMIN_TOKEN=%s\n' "$token" > "$env_file"; chmod 0600 "$env_file"
"${install[@]}" > "$work/install-1.log"
grep -q "settings from $env_file: 1 variable" "$work/install-1.log" || fail "install did not read the settings file"
sed -e "s|@USER_LINE@|user root;|" -e "s|@DIR@|$work|g" -e "s|@SOCKET@|$sock|" -e "s|@PORT@|$port|" \
  "$root/tests/fronts/nginx.conf.in" > "$work/nginx.conf"
nginx -p "$work" -c "$work/nginx.conf" &
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/feed/health" && break; sleep 0.05; done
python3 "$work/load.py" "$port" "$work/stop-load" "$work/load.counts" &
sleep 1
check "installed (empty database)"
[ "$(rows)" = 0 ] || fail "a new install holds rows"

# 2. Import the catalogue while serving.
"$prefix/bin/videofeed" import --db "$db" "$work/videos.jsonl" > "$work/import.log" 2>&1
[ "$(rows)" = "$count" ] || fail "import: $(rows) rows, expected $count"
check "imported $count videos"

# 3. Write through the write API (behind nginx).
for i in $(seq 1 10); do
  printf '{"id":"day-before-%s","title":"Zebrafinch morning %s","channel":"Day","duration_seconds":60,"thumbnail":"https://img.example/%s.jpg","region":"US"}\n' "$i" "$i" "$i"
done > "$work/before.jsonl"
[ "$(post "$work/before.jsonl")" = 200 ] || fail "write"
sleep 0.3
[ "$(feed_count zebrafinch)" = 10 ] || fail "the 10 written videos are not all found"
check "wrote 10 videos"

# 4. Back up (a name per second), then write more (these will not survive the restore).
backup="$work/backups/videos-$(date +%FT%H%M%S).db"
mkdir -p "$work/backups"
"$prefix/bin/videofeed" backup --db "$db" "$backup" > /dev/null
sed 's/day-before/day-after/; s/Zebrafinch morning/Zebrafinch evening/' "$work/before.jsonl" | head -n 5 > "$work/after.jsonl"
[ "$(post "$work/after.jsonl")" = 200 ] || fail "write after the backup"
[ "$(rows)" = $((count + 15)) ] || fail "rows before the restore: $(rows)"
check "backed up, then wrote 5 more"

# 5. Restore the backup while serving: exactly its rows.
"$prefix/bin/videofeed" restore --db "$db" "$backup" > "$work/restore.log"
[ "$(rows)" = $((count + 10)) ] || fail "rows after the restore: $(rows), expected $((count + 10))"
sleep 0.5
[ "$(feed_count zebrafinch)" = 10 ] || fail "after the restore, zebrafinch finds $(feed_count zebrafinch), expected the 10 before the backup"
[ "$(ids_like 'day-after-%')" = 0 ] || fail "rows written after the backup survived the restore"
check "restored the backup"

# 6. Upgrade twice (git pull && ./install.sh with the same options): the socket is taken over.
for n in 2 3; do
  before=$(cat "$run/videofeed.pid")
  "${install[@]}" > "$work/install-$n.log"
  grep -q "taking over from the running responder (pid $before)" "$work/install-$n.log" || fail "upgrade $n did not take over"
  [ "$(cat "$run/videofeed.pid")" != "$before" ] || fail "upgrade $n: the pid file still names $before"
  check "upgrade $((n - 1))"
done
printf '{"id":"day-upgraded","title":"Zebrafinch after upgrades","channel":"Day","duration_seconds":60,"thumbnail":"https://img.example/u.jpg","region":"US"}\n' > "$work/upgraded.jsonl"
[ "$(post "$work/upgraded.jsonl")" = 200 ] || fail "the write API is off after the upgrades"

# 7. Change a setting: edit the settings file, rerun install.sh.
echo "VIDEOFEED_MAX_STALENESS=120" >> "$env_file"
"${install[@]}" > "$work/install-4.log"
staleness=$(curl -s "http://127.0.0.1:$port/feed/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_staleness_seconds"])')
[ "$staleness" = 120 ] || fail "the changed setting is not in force: max_staleness_seconds=$staleness"
[ "$(post "$work/upgraded.jsonl")" = 200 ] || fail "the token was lost with the setting change"
check "changed a setting"

# 8. Stop (the load first: a stopped service is expected to refuse).
touch "$work/stop-load"; wait_for=50
while pgrep -f "$work/load.py" >/dev/null && [ $wait_for -gt 0 ]; do sleep 0.1; wait_for=$((wait_for - 1)); done
load_ok "final"
pid=$(cat "$run/videofeed.pid")
"$root/install.sh" --stop --db "$db" --run-dir "$run" > /dev/null
! kill -0 "$pid" 2>/dev/null || fail "still running after --stop"
[ ! -e "$sock" ] || fail "the socket is left behind"
integrity "stopped"
[ "$(rows)" = $((count + 11)) ] || fail "rows at the end: $(rows), expected $((count + 11))"
say "ok: a day at $count videos behind nginx, no failed request, integrity ok at every step"
