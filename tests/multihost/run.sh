#!/usr/bin/env bash
# The read-replica topology on one machine, as separate hosts (issue 20): network
# namespaces this script creates and removes, joined by a bridge in a namespace of
# its own (no traffic leaves them):
#   vf-store  10.77.0.1  sshd serving SFTP: the Litestream replica
#   vf-writer 10.77.0.2  videofeed serve with the write API (stamps the heartbeat),
#                        litestream replicate to sftp://…@10.77.0.1
#   vf-read1  10.77.0.3  videofeed replica --from sftp://… + serve + nginx :8080
#   vf-read2  10.77.0.4  the same
# Checks: writes through the writer's admin API reach both readers' /feed within
# 5 s (min/median/max printed); a reader whose follower and serve are killed comes
# back with nothing lost; with the storage host down the readers keep serving,
# stale, with health degraded (503 with ?strict=1), and catch up when it returns;
# PRAGMA integrity_check is ok on every database at the end.
#
#   sudo bash tests/multihost/run.sh            # needs root, iproute2, openssh-server,
#                                               # nginx, curl, python3; VIDEOFEED_LITESTREAM
#                                               # or litestream on PATH; about a minute
# Env: VIDEOFEED_BIN (default target/debug/videofeed, built if missing), KEEP=1 keeps the
# work directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'multihost: %s\n' "$*"; }
fail() { printf 'multihost: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (network namespaces)"
for c in ip curl nginx python3 ssh-keygen; do command -v "$c" >/dev/null || fail "$c is missing"; done
[ -x /usr/sbin/sshd ] || fail "/usr/sbin/sshd is missing (apt-get install openssh-server)"
litestream="${VIDEOFEED_LITESTREAM:-$(command -v litestream || true)}"
{ [ -n "$litestream" ] && [ -x "$litestream" ]; } || fail "no litestream (set VIDEOFEED_LITESTREAM)"
bin="${VIDEOFEED_BIN:-$root/target/debug/videofeed}"
if [ ! -x "$bin" ]; then (cd "$root" && cargo build --quiet --locked); fi

work=$(mktemp -d /tmp/vf-multihost.XXXXXX)
chmod 755 "$work"
hosts=(store writer read1 read2)
declare -A ip=([store]=10.77.0.1 [writer]=10.77.0.2 [read1]=10.77.0.3 [read2]=10.77.0.4)
token="multihost-token"
user=vfrepl
password="multihost-$$-secret"
url="sftp://$user:$password@${ip[store]}:22$work/store/replica"
pids=()

on() { local h=$1; shift; ip netns exec "vf-$h" "$@"; }
# Starts a background process in host $1, logging to $work/$2.log; records its pid in $work/$2.pid.
start() {
  local h=$1 name=$2; shift 2
  ip netns exec "vf-$h" "$@" >>"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
  pids+=($!)
  disown $!
}
stop() {
  local name=$1 sig=${2:-TERM}
  [ -f "$work/$name.pid" ] || return 0
  local pid; pid=$(cat "$work/$name.pid")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$work/$name.pid"
}

cleanup() {
  set +e
  for f in "$work"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for h in "${hosts[@]}"; do
    [ -f "$work/nginx-$h.pid" ] && kill -QUIT "$(cat "$work/nginx-$h.pid")" 2>/dev/null
  done
  sleep 0.3
  # Whatever still runs in a test namespace (nothing should).
  for h in "${hosts[@]}"; do ip netns pids "vf-$h" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; done
  for h in "${hosts[@]}" net; do ip netns del "vf-$h" 2>/dev/null; done
  userdel "$user" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ] || [ "${ok:-0}" != 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- the network: a bridge in vf-net, one veth per host ------------------------------------
for h in "${hosts[@]}" net; do ip netns del "vf-$h" 2>/dev/null || true; done
ip netns add vf-net
ip -n vf-net link add br0 type bridge
ip -n vf-net link set br0 up
for h in "${hosts[@]}"; do
  ip netns add "vf-$h"
  ip link add "vfh-$h" type veth peer name eth0 netns "vf-$h"
  ip link set "vfh-$h" netns vf-net
  ip -n vf-net link set "vfh-$h" master br0 up
  ip -n "vf-$h" addr add "${ip[$h]}/24" dev eth0
  ip -n "vf-$h" link set eth0 up
  ip -n "vf-$h" link set lo up
done
# (no ping here: a TCP listener on one host, a connect from another)
start store probe python3 -c 'import socket; s=socket.socket(); s.bind(("'"${ip[store]}"'", 9)); s.listen(1); s.accept()'
reached=0
for _ in $(seq 1 50); do
  if on writer timeout 1 bash -c "exec 3<>/dev/tcp/${ip[store]}/9" 2>/dev/null; then reached=1; break; fi
  sleep 0.1
done
stop probe
[ "$reached" = 1 ] || fail "the namespaces cannot reach each other"
say "4 hosts on 10.77.0.0/24 (namespaces vf-store, vf-writer, vf-read1, vf-read2)"

# --- the storage host: sshd with SFTP for one password user ------------------------------
userdel "$user" 2>/dev/null || true
useradd -M -d "$work/store" -s /usr/sbin/nologin "$user"
echo "$user:$password" | chpasswd
mkdir -p "$work/store/replica" /run/sshd
chown -R "$user" "$work/store"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh_host_key"
cat >"$work/sshd_config" <<EOF
ListenAddress ${ip[store]}:22
HostKey $work/ssh_host_key
PidFile $work/sshd.pidfile
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $user
Subsystem sftp internal-sftp
ForceCommand internal-sftp
EOF
start_storage() { start store sshd /usr/sbin/sshd -D -e -f "$work/sshd_config"; }
start_storage
for _ in $(seq 1 50); do on writer bash -c "exec 3<>/dev/tcp/${ip[store]}/22" 2>/dev/null && break; sleep 0.1; done

# --- the writer: a database, serve with the write API, litestream replicate ---------------
mkdir -p "$work/writer"
"$bin" init --db "$work/writer/videos.db" >/dev/null
"$bin" demo --db "$work/writer/videos.db" --videos 2000 >/dev/null
# (the environment goes through env, so ip netns exec passes it on)
start writer serve env VIDEOFEED_ADMIN_TOKEN="$token" VIDEOFEED_LOG=info "$bin" serve \
  --db "$work/writer/videos.db" --listen "${ip[writer]}:9000" --workers 2
start writer replicate "$litestream" replicate "$work/writer/videos.db" "$url"

# --- the readers: replica + serve + nginx ----------------------------------------------------
start_reader() {
  local h=$1
  mkdir -p "$work/$h"
  start "$h" "replica-$h" env VIDEOFEED_LOG=info "$bin" replica --from "$url" --db "$work/$h/videos.db" \
    --work-dir "$work/$h/replica" --litestream "$litestream" --min-swap-interval 500ms
  # serve waits for the first swap: the served file appears once the first restore is done.
  for _ in $(seq 1 300); do [ -s "$work/$h/videos.db" ] && break; sleep 0.1; done
  [ -s "$work/$h/videos.db" ] || fail "$h: no replica after 30 s: $(tail -n 5 "$work/replica-$h.log")"
  start "$h" "serve-$h" env VIDEOFEED_LOG=info VIDEOFEED_MAX_STALENESS=6 "$bin" serve \
    --db "$work/$h/videos.db" --socket "$work/$h/vf.sock" --socket-mode 0666 --workers 2
}
nginx_for() {
  local h=$1
  mkdir -p "$work/nginx-$h"
  cat >"$work/nginx-$h/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $work/nginx-$h.pid;
error_log $work/nginx-$h/error.log warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path $work/nginx-$h/body;
    fastcgi_temp_path $work/nginx-$h/fastcgi;
    proxy_temp_path $work/nginx-$h/proxy;
    uwsgi_temp_path $work/nginx-$h/uwsgi;
    scgi_temp_path $work/nginx-$h/scgi;
    upstream videofeed { server unix:$work/$h/vf.sock; keepalive 4; }
    server {
        listen ${ip[$h]}:8080;
        location = /feed { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass videofeed; }
        location /feed/  { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass videofeed; }
    }
}
EOF
  start "$h" "nginx-run-$h" nginx -c "$work/nginx-$h/nginx.conf"
}
for h in read1 read2; do start_reader "$h"; nginx_for "$h"; done

# From the writer host (a client on the network): status and body of a GET.
get() { on writer curl -s --max-time 3 -o "$work/body" -w '%{http_code}' "$1" || true; }
health() { get "http://${ip[$1]}:8080/feed/health$2" >/dev/null; python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",""))' "$work/body" 2>/dev/null || echo none; }
found() { # host, word: whether the reader's /feed answers a video whose title starts with the word
  [ "$(get "http://${ip[$1]}:8080/feed?q=$2&region=US&limit=5")" = 200 ] || return 1
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; sys.exit(0 if any(v["title"].startswith(sys.argv[2]+" ") for v in r) else 1)' "$work/body" "$2"
}
for h in read1 read2; do
  for _ in $(seq 1 100); do [ "$(health "$h" "")" = ok ] && break; sleep 0.1; done
  [ "$(health "$h" "")" = ok ] || fail "$h is not healthy: $(cat "$work/body")"
done
say "writer, storage and two readers up; the readers answer through nginx"

write() { # id, unique word: one video through the writer's admin API
  local line
  line=$(printf '{"id":"%s","title":"%s multihost probe","channel":"Multihost","duration_seconds":60,"thumbnail":"https://img.example/%s.jpg","region":"GLOBAL"}' "$1" "$2" "$1")
  on writer "$bin" get --connect "${ip[writer]}:9000" -H "Authorization: Bearer $token" -d "$line" /feed/admin/videos >"$work/write.out" \
    || fail "the write of $1 failed: $(cat "$work/write.out")"
  grep -q '"accepted":1' "$work/write.out" || fail "the write of $1 was not accepted: $(cat "$work/write.out")"
}
word() { python3 -c 'import sys; n=int(sys.argv[1]); s=""
for _ in range(6): s+=chr(97+n%26); n//=26
print("zq"+s)' "$1"; }

# --- 1. every write visible on both readers within 5 s ---------------------------------------
delays=()
for i in $(seq 1 12); do
  w=$(word "$i")
  t0=$(date +%s%N)
  write "mh$i" "$w"
  for h in read1 read2; do
    until found "$h" "$w"; do
      (( ($(date +%s%N) - t0) / 1000000 < 5000 )) || fail "write $i ($w) not on $h within 5 s"
      sleep 0.05
    done
  done
  delays+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
read -r dmin dmed dmax < <(printf '%s\n' "${delays[@]}" | sort -n | awk '{a[NR]=$1} END {print a[1], a[int((NR+1)/2)], a[NR]}')
say "write -> visible on both readers: min ${dmin} ms, median ${dmed} ms, max ${dmax} ms (12 writes)"

# --- 2. a reader whose follower and serve die recovers with nothing lost -----------------------
stop "replica-read1" KILL
stop "serve-read1" KILL
# Its Litestream follower dies with it (PR_SET_PDEATHSIG), not left writing into its work directory.
for _ in $(seq 1 40); do pgrep -f "restore -f .*$work/read1/" >/dev/null || break; sleep 0.05; done
! pgrep -f "restore -f .*$work/read1/" >/dev/null || fail "read1's litestream follower outlived videofeed replica"
for i in $(seq 13 16); do write "mh$i" "$(word "$i")"; done
start "read1" "replica-read1" env VIDEOFEED_LOG=info "$bin" replica --from "$url" --db "$work/read1/videos.db" \
  --work-dir "$work/read1/replica" --litestream "$litestream" --min-swap-interval 500ms
start "read1" "serve-read1" env VIDEOFEED_LOG=info VIDEOFEED_MAX_STALENESS=6 "$bin" serve \
  --db "$work/read1/videos.db" --socket "$work/read1/vf.sock" --socket-mode 0666 --workers 2
t0=$(date +%s)
for i in $(seq 1 16); do
  until found read1 "$(word "$i")"; do
    (( $(date +%s) - t0 < 30 )) || fail "after its restart read1 lacks write $i"
    sleep 0.1
  done
done
say "read1 killed (follower and serve, SIGKILL) and restarted: all 16 writes there after $(( $(date +%s) - t0 )) s"

# --- 3. the storage host down: readers serve stale, degraded; then catch up -------------------
stop sshd KILL
ip -n vf-store link set eth0 down
for i in $(seq 17 19); do write "mh$i" "$(word "$i")"; done
t0=$(date +%s)
for h in read1 read2; do
  until [ "$(health "$h" "")" = degraded ]; do
    (( $(date +%s) - t0 < 30 )) || fail "$h did not turn degraded with the storage host down: $(cat "$work/body")"
    sleep 0.2
  done
  [ "$(get "http://${ip[$h]}:8080/feed/health?strict=1")" = 503 ] || fail "$h: strict health is not 503 while stale"
  [ "$(get "http://${ip[$h]}:8080/feed?q=multihost&limit=5")" = 200 ] || fail "$h stopped serving while stale"
  ! found "$h" "$(word 17)" || fail "$h has a write the storage host never received"
done
say "storage host down: both readers still answer /feed (200), health degraded, strict health 503"
ip -n vf-store link set eth0 up
start_storage
t0=$(date +%s)
for h in read1 read2; do
  for i in 17 18 19; do
    until found "$h" "$(word "$i")"; do
      (( $(date +%s) - t0 < 60 )) || fail "$h did not catch up with write $i after the storage host returned"
      sleep 0.2
    done
  done
  until [ "$(health "$h" "")" = ok ]; do
    (( $(date +%s) - t0 < 60 )) || fail "$h health did not return to ok: $(cat "$work/body")"
    sleep 0.2
  done
done
say "storage host back: both readers caught up ($(( $(date +%s) - t0 )) s) and are healthy again"

# --- 4. nothing lost, every database sound --------------------------------------------------
for h in read1 read2; do
  for i in $(seq 1 19); do found "$h" "$(word "$i")" || fail "$h lacks write $i at the end"; done
done
stop replicate
for h in read1 read2; do stop "replica-$h"; stop "serve-$h"; done
stop serve
for db in "$work/writer/videos.db" "$work/read1/videos.db" "$work/read2/videos.db"; do
  result=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$db")
  [ "$result" = ok ] || fail "integrity_check of $db: $result"
done
say "integrity_check ok on the writer's and both readers' databases; 19 of 19 writes on both readers"
ok=1
say "passed"
