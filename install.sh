#!/usr/bin/env bash
# videofeed installer: build (or take) the binary, install it, create the
# database, and optionally start the responder on a local socket.
#
#   ./install.sh --demo            build, install, demo database, start, show a real answer
#   ./install.sh --db /srv/videofeed/videos.db --no-start
#   ./install.sh --stop            stop a responder this script started
#   ./install.sh --uninstall       remove what it installed (never a database)
#
# Idempotent: running it again rebuilds, reinstalls and restarts; an existing
# database is checked, never overwritten. Every step says what it did.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./install.sh [options]

  --demo [N]         create a demo database with N videos (default 20000) if it has none
  --db PATH          database path (default: /var/lib/videofeed/videos.db as root,
                     else ~/.local/share/videofeed/videos.db)
  --prefix DIR       install the binary in DIR/bin (default /usr/local as root, else ~/.local)
  --binary PATH      install this prebuilt binary instead of building with cargo
  --socket PATH      Unix socket to serve on (default /run/videofeed/videofeed.sock as root,
                     else ${XDG_RUNTIME_DIR:-/tmp}/videofeed-$UID/videofeed.sock)
  --workers N        worker threads (default 16)
  --run-dir DIR      where the pid file and log go (default /run/videofeed as root,
                     else ${XDG_RUNTIME_DIR:-/tmp}/videofeed-$UID)
  --no-start         install and create the database, but do not start the responder
  --stop             stop the responder this script started, then exit
  --uninstall        stop it and remove the installed binary and run files (keeps databases)
  -h, --help         this text
USAGE
}

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" = 0 ]; then
  prefix=/usr/local
  db=/var/lib/videofeed/videos.db
  rundir=/run/videofeed
else
  prefix="$HOME/.local"
  db="$HOME/.local/share/videofeed/videos.db"
  rundir="${XDG_RUNTIME_DIR:-/tmp}/videofeed-$(id -u)"
fi
socket=""
binary=""
demo=""
workers=16
start=1
action=install

while [ $# -gt 0 ]; do
  case "$1" in
    --demo)
      demo=20000
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then demo="$2"; shift; fi ;;
    --db) [ $# -gt 1 ] || die "--db needs a path"; db="$2"; shift ;;
    --prefix) [ $# -gt 1 ] || die "--prefix needs a directory"; prefix="$2"; shift ;;
    --binary) [ $# -gt 1 ] || die "--binary needs a path"; binary="$2"; shift ;;
    --socket) [ $# -gt 1 ] || die "--socket needs a path"; socket="$2"; shift ;;
    --workers) [ $# -gt 1 ] || die "--workers needs a number"; workers="$2"; shift ;;
    --run-dir) [ $# -gt 1 ] || die "--run-dir needs a directory"; rundir="$2"; shift ;;
    --no-start) start=0 ;;
    --stop) action=stop ;;
    --uninstall) action=uninstall ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done

[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a whole number of at least 1, got '$workers'"
socket="${socket:-$rundir/videofeed.sock}"
pidfile="$rundir/videofeed.pid"
logfile="$rundir/videofeed.log"
bin="$prefix/bin/videofeed"
case "$db" in /*) ;; *) db="$PWD/$db" ;; esac

stop_running() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping videofeed (pid $pid) with SIGTERM"
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then say "still running after 5 s; sending SIGKILL"; kill -KILL "$pid"; fi
    else
      say "pid file $pidfile names no running process"
    fi
    rm -f "$pidfile"
  else
    say "no responder started by install.sh is running (no $pidfile)"
  fi
}

case "$action" in
  stop) stop_running; exit 0 ;;
  uninstall)
    stop_running
    if [ -e "$bin" ]; then rm -f "$bin"; say "removed $bin"; else say "$bin was not installed"; fi
    rm -f "$logfile" "$socket"
    if rmdir "$rundir" 2>/dev/null; then say "removed $rundir"; fi
    say "databases are never deleted: $db is still there"
    exit 0 ;;
esac

# 1. The binary.
if [ -n "$binary" ]; then
  [ -x "$binary" ] || die "--binary $binary is not an executable file"
  src="$binary"
  say "using the prebuilt binary $binary"
else
  command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) or pass --binary PATH"
  say "building the release binary (cargo build --release --locked)"
  (cd "$here" && cargo build --release --locked --quiet)
  src="$here/target/release/videofeed"
fi
mkdir -p "$prefix/bin"
install -m 0755 "$src" "$bin.new"
mv -f "$bin.new" "$bin"   # atomic: a running process keeps its old inode
say "installed $bin ($("$bin" --version))"

# 2. The database: created or checked, never overwritten.
mkdir -p "$(dirname "$db")"
"$bin" init --db "$db" | sed 's/^/install.sh: /'
if [ -n "$demo" ]; then
  rows=$("$bin" init --db "$db" | sed -n 's/.* ready, \([0-9]*\) videos$/\1/p')
  if [ "${rows:-0}" = 0 ]; then
    say "generating $demo demo videos into $db"
    "$bin" demo --db "$db" --videos "$demo" | sed 's/^/install.sh: /'
  else
    say "$db already holds $rows videos; not adding demo data"
  fi
fi

if [ "$start" = 0 ]; then
  say "not starting (--no-start). Run: $bin serve --db $db --socket $socket"
  exit 0
fi

# 3. Start (or restart) the responder on a local socket.
mkdir -p "$rundir"
stop_running
say "starting: $bin serve --db $db --socket $socket --workers $workers (log: $logfile)"
nohup "$bin" serve --db "$db" --socket "$socket" --workers "$workers" </dev/null >>"$logfile" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 1 100); do [ -S "$socket" ] && break; sleep 0.05; done
if ! [ -S "$socket" ]; then
  tail -n 5 "$logfile" >&2 || true
  die "the responder did not start; see $logfile"
fi

# 4. Show a real answer through the socket.
say "asking it for a feed: $bin get --socket $socket '/feed?q=music&limit=2'"
"$bin" get --socket "$socket" '/feed?q=music&limit=2'
say "videofeed is running (pid $(cat "$pidfile")) on $socket"
say "stop it with: ./install.sh --stop   (or: kill -TERM \$(cat $pidfile))"
