#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of the FastCGI connection, the
# query-string parser and the importer, seeded from tests/fuzz-seeds/.
#   bash bench/fuzz.sh [SECONDS_PER_TARGET]     # default 20; .ci/run uses 15
# Needs a nightly toolchain (cargo-fuzz builds with sanitizer flags) and installs cargo-fuzz
# from crates.io when missing. Working copies of the corpora live in fuzz/corpus/ (ignored).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs="${1:-20}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain on this machine; coverage-guided fuzzing skipped (the proptest targets still run)"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
cd "$root/fuzz"
for pair in fcgi_connection:fcgi query_string:query import_line:import; do
  target=${pair%%:*}
  seeds=${pair#*:}
  mkdir -p "corpus/$target"
  for seed in "$root/tests/fuzz-seeds/$seeds/"*; do
    [ -e "corpus/$target/$(basename "$seed")" ] || cp "$seed" "corpus/$target/"
  done
  echo "fuzz: $target for $secs s"
  log=$(mktemp)
  status=0
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" >"$log" 2>&1 || status=$?
  sed -n -E '/^Done|ERROR|panicked|SUMMARY/p' "$log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status); the end of its output:" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz: $target found a crash; inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
echo "fuzz: no crash"
