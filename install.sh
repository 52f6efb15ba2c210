#!/usr/bin/env bash
# videofeed installer: build (or take) the binary, install it, create the
# database, and optionally start the responder on a local socket.
#
#   ./install.sh --demo            build, install, demo database, start, show a real answer
#   ./install.sh --db /srv/videofeed/videos.db --no-start
#   ./install.sh --stop            stop a responder this script started
#   ./install.sh --uninstall       remove what it installed (never a database)
#   ./install.sh --lsws-root /usr/local/lsws --apply --restart
#                                  also wire it into LiteSpeed and graceful-restart it
#
# Idempotent: running it again rebuilds, reinstalls and restarts (the new
# responder takes the socket over from the old one: no request is refused); an
# existing database is checked, never overwritten. Every step says what it did.
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
  --socket-group G   the group the socket is given (mode 0660), so the web server's workers
                     can connect; default: the web server's group when it can tell
                     (nginx's `user`, LiteSpeed's `group`, Apache's APACHE_RUN_GROUP,
                     lighttpd's server.groupname), else the socket stays owner-only
  --socket-mode MODE the socket's mode (default 0660)
  --nginx-conf FILE  the nginx config read for its `user` (default /etc/nginx/nginx.conf)
  --workers N        worker threads (default 2 per CPU, 2 to 64, as videofeed's own)
  --run-dir DIR      where the socket and pid file go (default /run/videofeed as root,
                     else ${XDG_RUNTIME_DIR:-/tmp}/videofeed-$UID; for a database other
                     than the default one, a directory of its own below that, named
                     after the database, so two installs on one box never share one)
  --env-file FILE    the responder's settings, one NAME=value a line (VIDEOFEED_ADMIN_TOKEN,
                     VIDEOFEED_CACHE_BYTES, ...; default /etc/videofeed/videofeed.env as
                     root, else ~/.config/videofeed/videofeed.env). Created (mode 0600, all
                     commented) when missing, never overwritten; the responder this script
                     starts gets exactly these (not the caller's environment), and --apply
                     renders them as LiteSpeed `env` lines, so no rerun drops a setting
  --log FILE         the responder's log (default /var/log/videofeed/NAME.log as root,
                     else ~/.local/state/videofeed/NAME.log: on persistent storage)
  --no-start         install and create the database, but do not start the responder
  --lsws-root DIR    LiteSpeed install to configure (default /usr/local/lsws); when
                     DIR/conf/httpd_config.conf exists, the snippets from lsws-config/ are
                     rendered with the chosen paths and the change is shown; given
                     explicitly without --apply, that preview is all it does (nothing
                     is installed, written or started)
  --lsws-vhost NAME  the virtual host that gets `context /feed` (default Example)
  --lsws-log FILE    the app's stderr log under LiteSpeed (default /var/log/videofeed/videofeed.log)
  --apply            write the shown LiteSpeed change (backups are kept as FILE.videofeed-bak);
                     LiteSpeed then starts videofeed itself, so no responder is started here
  --restart          graceful-restart LiteSpeed (lswsctrl restart) after --apply
  --systemd          run under systemd instead of starting a responder here: creates the
                     system user `videofeed` (when missing) and gives it the database
                     directory, writes videofeed.socket and videofeed.service (with this
                     install's paths, the socket group, EnvironmentFile=the --env-file) to
                     --systemd-dir, and enables them when systemd runs
  --systemd-dir DIR  where the units go (default /etc/systemd/system)
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
  default_db=/var/lib/videofeed/videos.db
  run_base=/run/videofeed
  log_base=/var/log/videofeed
  env_file=/etc/videofeed/videofeed.env
else
  prefix="$HOME/.local"
  default_db="$HOME/.local/share/videofeed/videos.db"
  run_base="${XDG_RUNTIME_DIR:-/tmp}/videofeed-$(id -u)"
  log_base="$HOME/.local/state/videofeed"
  env_file="$HOME/.config/videofeed/videofeed.env"
fi
db="$default_db"
rundir=""
logfile=""
lsws_explicit=0
socket=""
socket_group=""
socket_mode=0660
nginx_conf=/etc/nginx/nginx.conf
binary=""
demo=""
workers=""   # default: 2 per CPU, 2 to 64 (as videofeed's own default)
start=1
action=install
lsws_root=/usr/local/lsws
lsws_vhost=Example
lsws_log=/var/log/videofeed/videofeed.log
apply=0
restart=0
systemd=0
systemd_dir=/etc/systemd/system

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
    --socket-group) [ $# -gt 1 ] || die "--socket-group needs a group name"; socket_group="$2"; shift ;;
    --socket-mode) [ $# -gt 1 ] || die "--socket-mode needs an octal mode such as 0660"; socket_mode="$2"; shift ;;
    --nginx-conf) [ $# -gt 1 ] || die "--nginx-conf needs a file"; nginx_conf="$2"; shift ;;
    --run-dir) [ $# -gt 1 ] || die "--run-dir needs a directory"; rundir="$2"; shift ;;
    --log) [ $# -gt 1 ] || die "--log needs a file"; logfile="$2"; shift ;;
    --env-file) [ $# -gt 1 ] || die "--env-file needs a file"; env_file="$2"; shift ;;
    --no-start) start=0 ;;
    --lsws-root) [ $# -gt 1 ] || die "--lsws-root needs a directory"; lsws_root="$2"; lsws_explicit=1; shift ;;
    --lsws-vhost) [ $# -gt 1 ] || die "--lsws-vhost needs a name"; lsws_vhost="$2"; shift ;;
    --lsws-log) [ $# -gt 1 ] || die "--lsws-log needs a file"; lsws_log="$2"; shift ;;
    --apply) apply=1 ;;
    --restart) restart=1 ;;
    --systemd) systemd=1 ;;
    --systemd-dir) [ $# -gt 1 ] || die "--systemd-dir needs a directory"; systemd_dir="$2"; shift ;;
    --stop) action=stop ;;
    --uninstall) action=uninstall ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done

if [ -z "$workers" ] && [ -f "$env_file" ]; then
  workers=$(sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?VIDEOFEED_WORKERS="?([0-9]+)"?[[:space:]]*$/\2/p' "$env_file" | tail -n 1)
fi
if [ -z "$workers" ]; then
  workers=$(( $(nproc 2>/dev/null || echo 1) * 2 ))
  [ "$workers" -lt 2 ] && workers=2
  [ "$workers" -gt 64 ] && workers=64
fi
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a whole number of at least 1, got '$workers'"
case "$db" in /*) ;; *) db="$PWD/$db" ;; esac
# Each database gets its own run directory, socket, pid file and log: two installs
# on one box (another --db) never take over or stop each other's responder.
if [ "$db" = "$default_db" ]; then
  slug=videofeed
else
  stem=$(basename "$db"); stem=${stem%.*}; stem=$(printf '%s' "$stem" | tr -c 'A-Za-z0-9_.-' '_')
  slug="$stem-$(printf '%s' "$db" | sha256sum | cut -c1-8)"
fi
run_dir_given=1
if [ -z "$rundir" ]; then
  run_dir_given=0
  if [ "$slug" = videofeed ]; then rundir="$run_base"; else rundir="$run_base/$slug"; fi
fi
logfile="${logfile:-$log_base/$slug.log}"
socket="${socket:-$rundir/videofeed.sock}"
pidfile="$rundir/videofeed.pid"
bin="$prefix/bin/videofeed"

# The group the local web server's workers run as, when a config says so: nginx's
# `user NAME [GROUP];` (the user's primary group when no group is named), LiteSpeed's
# `group`, Apache's APACHE_RUN_GROUP, lighttpd's server.groupname. Prints
# "GROUP (from WHERE)" or nothing.
web_server_group() {
  local line user group
  if [ -f "$nginx_conf" ]; then
    line=$(awk '$1 == "user" {sub(/;.*/, ""); print $2, $3; exit}' "$nginx_conf")
    user=${line%% *}; group=${line#* }; [ "$group" = "$line" ] && group=""
    if [ -n "$user" ]; then
      [ -z "$group" ] && group=$(id -gn "$user" 2>/dev/null || true)
      if [ -n "$group" ]; then echo "$group (nginx's user in $nginx_conf)"; return; fi
    fi
  fi
  if [ -f "$lsws_root/conf/httpd_config.conf" ]; then
    group=$(awk '$1 == "group" {print $2; exit}' "$lsws_root/conf/httpd_config.conf")
    if [ -n "$group" ]; then echo "$group (LiteSpeed's group in $lsws_root/conf/httpd_config.conf)"; return; fi
  fi
  if [ -f /etc/apache2/envvars ]; then
    group=$(sed -n 's/^export APACHE_RUN_GROUP=\([A-Za-z0-9_.-]*\).*/\1/p' /etc/apache2/envvars | head -n 1)
    if [ -n "$group" ]; then echo "$group (Apache's APACHE_RUN_GROUP in /etc/apache2/envvars)"; return; fi
  fi
  if [ -f /etc/lighttpd/lighttpd.conf ]; then
    group=$(sed -n 's/^[[:space:]]*server\.groupname[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' /etc/lighttpd/lighttpd.conf | head -n 1)
    if [ -n "$group" ]; then echo "$group (lighttpd's server.groupname)"; return; fi
  fi
}

# The database the process $1 serves (its `serve --db PATH`), or nothing.
served_db() {
  [ -r "/proc/$1/cmdline" ] || return 0
  tr '\0' '\n' < "/proc/$1/cmdline" | awk 'prev == "--db" {print; exit} {prev = $0}'
}

# Refuses to touch a responder of another database (a pid file shared by two installs).
check_pid_owner() {
  local pid="$1" other
  other=$(served_db "$pid")
  if [ -n "$other" ] && [ "$other" != "$db" ]; then
    die "$pidfile names a responder (pid $pid) of another database ($other), not $db: pass that install's --db (or --run-dir) to manage it, or another --run-dir for this one"
  fi
}

# The settings file: created with every setting commented out when missing (mode 0600:
# it may hold the admin token), never overwritten.
ensure_env_file() {
  [ -f "$env_file" ] && return 0
  mkdir -p "$(dirname "$env_file")"
  (umask 077 && cat > "$env_file" <<'ENV'
# videofeed's settings, read by install.sh's responder, the systemd units
# (EnvironmentFile=) and rendered into LiteSpeed's extprocessor by
# `install.sh --apply`. One NAME=value a line, no quotes needed; rerun
# ./install.sh (or restart LiteSpeed after --apply) to apply a change.
# README.md lists every variable.
#VIDEOFEED_ADMIN_TOKEN=a-long-random-string   # turns the write API on
#VIDEOFEED_CACHE_BYTES=33554432
#VIDEOFEED_RANK_MEMO_BYTES=
#VIDEOFEED_LOG=info
#VIDEOFEED_MAX_STALENESS=60
ENV
  )
  say "created $env_file (mode 0600): put the responder's settings there"
}

# NAME=value lines of the settings file (comments, blanks and malformed lines skipped).
env_lines() {
  [ -f "$env_file" ] || return 0
  sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/\2=\3/p' "$env_file" |
    sed -E 's/^([^=]*)="(.*)"$/\1=\2/; s/^([^=]*)='"'"'(.*)'"'"'$/\1=\2/'
}

stop_running() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && [ "$run_dir_given" = 0 ]; then check_pid_owner "$pid"; fi
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

# --- LiteSpeed -------------------------------------------------------------------------
server_conf="$lsws_root/conf/httpd_config.conf"
vhost_conf="$lsws_root/conf/vhosts/$lsws_vhost/vhconf.conf"
begin_mark="# BEGIN videofeed (managed by install.sh; remove with install.sh --uninstall)"
end_mark="# END videofeed"

# The file's text without our managed block.
without_block() {
  awk -v b="$begin_mark" -v e="$end_mark" '$0 == b {skip = 1; next} skip && $0 == e {skip = 0; next} !skip' "$1"
}

# Writes $1 with our block replaced by the contents of $2 (or removed when $2 is empty);
# prints a unified diff of the change; writes only when $apply is 1. Keeps a backup.
update_block() {
  local file="$1" block="$2" new
  new=$(mktemp)
  without_block "$file" > "$new"
  if [ -n "$block" ]; then
    { printf '%s\n' "$begin_mark"; cat "$block"; printf '%s\n' "$end_mark"; } >> "$new"
  fi
  if cmp -s "$file" "$new"; then
    say "$file: already up to date"
    rm -f "$new"
    return 0
  fi
  if [ "$apply" = 1 ]; then
    cp -p "$file" "$file.videofeed-bak"
    cat "$new" > "$file"
    say "$file: updated (backup: $file.videofeed-bak)"
  else
    say "$file: would change as follows (run again with --apply to write it):"
    # diff exits 1 when the files differ: that is the answer here, not a failure.
    diff -u "$file" "$new" > "$new.diff" || [ $? -eq 1 ]
    sed 's/^/    /' "$new.diff"
    rm -f "$new.diff"
  fi
  rm -f "$new"
}

# The extprocessor and context snippets, rendered with this install's paths.
render_lsws() {
  local out="$1"
  sed -e "s|^\(  path  *\).*|\1$bin serve|" \
      -e "s|^\(  env  *VIDEOFEED_DB=\).*|\1$db|" \
      -e "s|^\(  env  *LSAPI_CHILDREN=\).*|\1$workers|" \
      -e "s|^\(  maxConns  *\).*|\1$workers|" \
      -e "s|^\(  env  *LS_STDERR_LOG=\).*|\1$lsws_log|" \
      -e '/^#/d' "$here/lsws-config/extprocessor.conf" > "$out/extprocessor.conf"
  # The settings file's lines as `env` lines (those the snippet sets itself excepted).
  local extra
  extra=$(env_lines | grep -v -E '^(VIDEOFEED_DB|LSAPI_CHILDREN|LS_STDERR_LOG)=' | sed 's/^/  env                     /' || true)
  if [ -n "$extra" ]; then
    awk -v extra="$extra" '{print} /^  env  *LS_STDERR_LOG=/ {print extra}' "$out/extprocessor.conf" > "$out/ext.tmp"
    mv "$out/ext.tmp" "$out/extprocessor.conf"
  fi
  sed -e '/^#/d' "$here/lsws-config/context.conf" > "$out/context.conf"
  # The server config must hold a CGIRLimit block, or LiteSpeed cannot start any app.
  if ! without_block "$server_conf" | grep -Eq '^[[:space:]]*CGIRLimit[[:space:]]*\{'; then
    say "warning: $server_conf has no CGIRLimit block; without it every app start fails (cgidSuEXEC failed, clients get 503); the change below adds the stock one (lsws-config/cgirlimit.conf)"
    sed -e '/^#/d' "$here/lsws-config/cgirlimit.conf" >> "$out/extprocessor.conf"
  fi
}

# Configures LiteSpeed when it is installed; returns 1 when it is not there.
configure_lsws() {
  if [ ! -f "$server_conf" ]; then
    say "no LiteSpeed at $lsws_root (no conf/httpd_config.conf): skipping its configuration"
    return 1
  fi
  say "LiteSpeed found at $lsws_root"
  if without_block "$server_conf" | grep -Eq '^[[:space:]]*extprocessor[[:space:]]+videofeed[[:space:]]*\{'; then
    die "$server_conf already defines 'extprocessor videofeed' outside install.sh's block; edit or remove it by hand first"
  fi
  [ -f "$vhost_conf" ] || die "no virtual host config at $vhost_conf: pass --lsws-vhost NAME"
  local tmp
  tmp=$(mktemp -d)
  render_lsws "$tmp"
  update_block "$server_conf" "$tmp/extprocessor.conf"
  update_block "$vhost_conf" "$tmp/context.conf"
  rm -rf "$tmp"
  if [ "$apply" = 1 ]; then
    # The run-as user must read the database and create its -shm/-wal files (WAL mode),
    # and write its log.
    local user group
    user=$(awk '$1 == "user" {print $2; exit}' "$server_conf"); user="${user:-nobody}"
    group=$(awk '$1 == "group" {print $2; exit}' "$server_conf"); group="${group:-nogroup}"
    mkdir -p "$(dirname "$lsws_log")"
    chown "$user:$group" "$(dirname "$lsws_log")" 2>/dev/null || say "warning: could not chown $(dirname "$lsws_log") to $user:$group"
    if ! { chgrp "$group" "$(dirname "$db")" "$db" && chmod g+rwx "$(dirname "$db")" && chmod g+rw "$db"; } 2>/dev/null; then
      say "warning: could not give group $group access to $(dirname "$db")"
    fi
    say "gave $user:$group access to $(dirname "$db") (database, WAL files) and $(dirname "$lsws_log") (log)"
    if [ "$restart" = 1 ]; then
      [ -x "$lsws_root/bin/lswsctrl" ] || die "$lsws_root/bin/lswsctrl not found: restart LiteSpeed from the WebAdmin console"
      say "graceful restart: $lsws_root/bin/lswsctrl restart"
      "$lsws_root/bin/lswsctrl" restart | sed 's/^/install.sh: lswsctrl: /'
    else
      say "not restarting LiteSpeed (no --restart): do a Graceful Restart to start videofeed"
    fi
  elif [ "$restart" = 1 ]; then
    say "--restart needs --apply: nothing was written, so LiteSpeed is not restarted"
  fi
  return 0
}

case "$action" in
  stop) stop_running; exit 0 ;;
  uninstall)
    stop_running
    if [ -e "$bin" ]; then rm -f "$bin"; say "removed $bin"; else say "$bin was not installed"; fi
    rm -f "$socket"
    [ -f "$logfile" ] && say "the log stays at $logfile"
    [ -f "$env_file" ] && say "the settings stay in $env_file"
    if [ -f "$server_conf" ]; then
      apply=1
      update_block "$server_conf" ""
      [ -f "$vhost_conf" ] && update_block "$vhost_conf" ""
      say "LiteSpeed: removed videofeed's blocks; do a Graceful Restart to stop the app"
    fi
    if rmdir "$rundir" 2>/dev/null; then say "removed $rundir"; fi
    say "databases are never deleted: $db is still there"
    exit 0 ;;
esac

# A LiteSpeed preview (--lsws-root given, no --apply): show the change, touch nothing.
if [ "$lsws_explicit" = 1 ] && [ "$apply" = 0 ] && [ -f "$server_conf" ]; then
  configure_lsws
  say "preview only (no --apply): nothing was installed, written or started; run again with --apply"
  exit 0
fi

ensure_env_file

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

lsws_applied=0
if configure_lsws && [ "$apply" = 1 ]; then lsws_applied=1; fi

if [ "$lsws_applied" = 1 ]; then
  say "LiteSpeed starts and stops videofeed from now on; check it with: $bin get --socket /tmp/lshttpd/videofeed.sock '/feed?q=music&limit=2'"
  exit 0
fi
if [ "$start" = 0 ]; then
  say "not starting (--no-start). Run: $bin serve --db $db --socket $socket"
  exit 0
fi

# Under systemd: the units, with a user of their own that owns the database directory.
if [ "$systemd" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "--systemd needs root (it creates a system user and writes units)"
  if ! getent passwd videofeed >/dev/null; then
    useradd --system --user-group --home-dir "$(dirname "$db")" --no-create-home --shell /usr/sbin/nologin videofeed
    say "created the system user videofeed"
  fi
  chown videofeed:videofeed "$(dirname "$db")"
  for f in "$db" "$db-wal" "$db-shm" "$db.rank" "$db.rank.lock" "$db.lscache"; do [ -e "$f" ] && chown videofeed:videofeed "$f"; done
  say "gave videofeed:videofeed $(dirname "$db") (the database, its WAL and the index file)"
  group="$socket_group"
  if [ -z "$group" ]; then found=$(web_server_group); group=${found%% *}; fi
  group="${group:-videofeed}"
  mkdir -p "$systemd_dir"
  sed -e "s|^ListenStream=.*|ListenStream=$socket|" -e "s|^SocketGroup=.*|SocketGroup=$group|" \
      -e "s|^SocketMode=.*|SocketMode=$socket_mode|" "$here/systemd/videofeed.socket" > "$systemd_dir/videofeed.socket"
  sed -e "s|^Environment=VIDEOFEED_DB=.*|Environment=VIDEOFEED_DB=$db|" \
      -e "s|^Environment=VIDEOFEED_WORKERS=.*|Environment=VIDEOFEED_WORKERS=$workers|" \
      -e "s|^EnvironmentFile=.*|EnvironmentFile=-$env_file|" \
      -e "s|^ExecStart=.*|ExecStart=$bin serve|" \
      -e "s|^ReadWritePaths=.*|ReadWritePaths=$(dirname "$db")|" "$here/systemd/videofeed.service" > "$systemd_dir/videofeed.service"
  say "wrote $systemd_dir/videofeed.socket (socket $socket, group $group) and $systemd_dir/videofeed.service"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl enable --now videofeed.socket
    systemctl try-restart videofeed.service
    say "enabled videofeed.socket; systemd starts videofeed on the first request"
  else
    say "systemd is not running here: start it with: systemctl daemon-reload && systemctl enable --now videofeed.socket"
  fi
  exit 0
fi

# 3. Start (or restart) the responder on a local socket, reachable by the web server's group.
mkdir -p "$rundir"
access=(--socket-mode "$socket_mode")
if [ -z "$socket_group" ]; then
  found=$(web_server_group)
  if [ -n "$found" ]; then
    socket_group=${found%% *}
    say "socket group: $found"
  else
    say "socket group: no web server config says which group its workers run as; the socket is"
    say "  mode $socket_mode for $(id -un) only. Pass --socket-group GROUP (nginx: the group of its 'user')"
  fi
fi
if [ -n "$socket_group" ]; then
  getent group "$socket_group" >/dev/null || die "--socket-group $socket_group: no such group on this machine"
  access+=(--socket-group "$socket_group")
  # The workers must also pass through the directory to reach the socket: the run
  # directory this script made is given the group; any other directory is left as it is.
  if [ "$(dirname "$socket")" = "$rundir" ]; then
    if ! { chgrp "$socket_group" "$rundir" && chmod g+x "$rundir"; }; then
      say "warning: could not let group $socket_group through $rundir"
    fi
  fi
fi
# An upgrade or a rerun takes the socket over from the running responder (the new
# process binds beside the path and renames its socket over it; the old one serves
# what it accepted and exits 0): no request is refused in between.
old_pid=""
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then old_pid=$(cat "$pidfile"); check_pid_owner "$old_pid"; fi
mkdir -p "$(dirname "$logfile")"
old_inode=$(stat -c %i "$socket" 2>/dev/null || true)
if [ -n "$old_pid" ]; then
  say "taking over from the running responder (pid $old_pid): $bin serve --db $db --socket $socket ${access[*]} --workers $workers (log: $logfile)"
else
  say "starting: $bin serve --db $db --socket $socket ${access[*]} --workers $workers (log: $logfile)"
fi
# Exactly the settings file's environment (not the caller's): a rerun from any shell
# starts the same responder.
settings=()
while IFS= read -r line; do settings+=("$line"); done < <(env_lines)
say "settings from $env_file: ${#settings[@]} variable(s)"
nohup env -i PATH="$PATH" HOME="${HOME:-/root}" "${settings[@]}" \
  "$bin" serve --db "$db" --socket "$socket" "${access[@]}" --workers "$workers" </dev/null >>"$logfile" 2>&1 &
new_pid=$!
started=0
for _ in $(seq 1 200); do
  if ! kill -0 "$new_pid" 2>/dev/null; then break; fi
  inode=$(stat -c %i "$socket" 2>/dev/null || true)
  if [ -S "$socket" ] && { [ -z "$old_pid" ] || [ "$inode" != "$old_inode" ]; }; then started=1; break; fi
  sleep 0.05
done
if [ "$started" != 1 ]; then
  if [ -f "$logfile" ]; then tail -n 5 "$logfile" >&2; fi
  kill -TERM "$new_pid" 2>/dev/null || true
  if [ -n "$old_pid" ]; then die "the new responder did not start; the old one (pid $old_pid) still serves. See $logfile"; fi
  die "the responder did not start; see $logfile"
fi
echo "$new_pid" > "$pidfile"
if [ -n "$old_pid" ]; then
  # The old responder drains what it accepted and exits by itself; a stuck one is stopped.
  for _ in $(seq 1 100); do kill -0 "$old_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$old_pid" 2>/dev/null; then
    say "the old responder (pid $old_pid) is still running after 10 s; sending SIGTERM"
    kill -TERM "$old_pid" 2>/dev/null || true
  else
    say "the old responder (pid $old_pid) finished its requests and exited"
  fi
fi

# 4. Show a real answer through the socket.
say "asking it for a feed: $bin get --socket $socket '/feed?q=music&limit=2'"
"$bin" get --socket "$socket" '/feed?q=music&limit=2'
say "videofeed is running (pid $(cat "$pidfile")) on $socket"
say "stop it with: ./install.sh --stop   (or: kill -TERM \$(cat $pidfile))"
