#!/usr/bin/env bash
# Import speed and single-query latency on the 1M-video benchmark corpus,
# with the peers' database floor measured in the same run for the ratio.
#
#   bash bench/import_and_query.sh        # from nothing; ~3 minutes on 2 cores
#
# Uses ../shared/bench (gen_corpus.py, load_sqlite.py, raw_sqlite.py and the
# query log). Large files go to /var/tmp/peerbench (override with WORK=...).
# Leaves nothing running. Paste the printed block into docs/benchmarks.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared="$root/../shared/bench"
work="${WORK:-/var/tmp/peerbench}"
py="$work/venv/bin/python"
corpus="$work/data/videos-1m.jsonl"
ours="$work/vf-1m.db"
peers="$work/db/videos-1m.db"
log="$shared/data/queries-1.txt"
mkdir -p "$work/data" "$work/db"

if [ ! -x "$py" ]; then
  echo "bench: creating $work/venv with wordfreq (the corpus vocabulary)"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q wordfreq
fi
if [ ! -s "$corpus" ]; then
  echo "bench: generating the 1M corpus (seed 1)"
  (cd "$shared" && "$py" gen_corpus.py --count 1000000 --seed 1 --out "$corpus")
fi

(cd "$root" && cargo build --release --locked --quiet)
rm -f "$ours" "$ours-wal" "$ours-shm"
echo "bench: videofeed import (timed)"
start=$(date +%s%N)
"$root/target/release/videofeed" import --db "$ours" "$corpus"
end=$(date +%s%N)
echo "import_wall_ms=$(( (end - start) / 1000000 ))"

echo "bench: the peers' bulk loader (load_sqlite.py), for comparison"
python3 "$shared/load_sqlite.py" "$corpus" "$peers"

echo "bench: videofeed single-query latency (in process, one connection)"
(cd "$root" && cargo bench --quiet --bench search -- "$ours" "$log" 50)

echo "bench: peers' database floor (raw_sqlite.py, same 2000 queries)"
python3 "$shared/raw_sqlite.py" "$peers" "$log" --max 2000 --counts 0
echo "bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
