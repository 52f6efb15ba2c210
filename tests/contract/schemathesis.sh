#!/usr/bin/env bash
# Contract fuzzing: schemathesis (from PyPI) generates requests from
# docs/openapi.json, valid and invalid, and checks every answer of videofeed
# behind a real nginx against the document (status codes, headers, content
# types, bodies, no 5xx, bad input rejected, good input accepted). The rules
# JSON Schema cannot state are handled in tests/contract/hooks.py (read it).
#
#   bash tests/contract/schemathesis.sh [MAX_EXAMPLES]     (default 50 per operation)
#
# Env: VIDEOFEED_BIN (default target/debug/videofeed, built if missing),
# ST_VENV (where schemathesis is installed; default target/schemathesis-venv),
# ST_SEED (default fixed, so CI is repeatable; vary it to explore).
# Needs nginx and python3 (with venv). Exit status: schemathesis's (0 = no failure).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
examples=${1:-50}
bin=${VIDEOFEED_BIN:-$root/target/debug/videofeed}
venv=${ST_VENV:-$root/target/schemathesis-venv}
version=4.32.5

[ -x "$bin" ] || (cd "$root" && cargo build --locked --quiet)
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
command -v nginx >/dev/null || { echo "schemathesis.sh: nginx is not installed (apt-get install nginx)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; fi
  done
  # Their exit status (killed: 143) is not this script's.
  wait 2>/dev/null || echo "schemathesis.sh: stopped the servers" >&2
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" demo --db "$tmp/demo.db" --videos 3000 --seed 7 >/dev/null
token=contract-test-token
VIDEOFEED_ADMIN_TOKEN=$token VIDEOFEED_LOG=warn "$bin" serve --db "$tmp/demo.db" --socket "$tmp/vf.sock" --workers 4 \
  2> "$tmp/videofeed.log" &
pids+=($!)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -e "s|@USER_LINE@|$user_line|" -e "s|@DIR@|$tmp|g" -e "s|@SOCKET@|$tmp/vf.sock|" -e "s|@PORT@|$port|" \
  "$root/tests/fronts/nginx.conf.in" > "$tmp/nginx.conf"
for d in body fastcgi proxy uwsgi scgi; do mkdir -p "$tmp/$d"; done
nginx -c "$tmp/nginx.conf" &
pids+=($!)

for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$port/feed/health" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/feed/health" >/dev/null

status=0
PYTHONPATH="$root/tests/contract" SCHEMATHESIS_HOOKS=hooks "$venv/bin/st" run "$root/docs/openapi.json" --url "http://127.0.0.1:$port" \
  --max-examples "$examples" --seed "${ST_SEED:-20261126}" --checks all \
  -H "Authorization: Bearer $token" --request-timeout 10 --no-color \
  --generation-database none || status=$?
if grep -E "panicked|ERROR" "$tmp/videofeed.log"; then
  echo "schemathesis.sh: videofeed logged errors (above)" >&2
  status=1
fi
exit "$status"
