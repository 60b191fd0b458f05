#!/usr/bin/env bash
# Install what is missing, build, and run Velostream's main job on its
# embedded default (no Kafka, no database): the bundled sample pipeline,
# a 5-minute tumbling-window VWAP per symbol over examples/trades.csv
# (examples/vwap.sql), printed as a table.
#
# Then try:  build/release/velo run -e "SELECT symbol, COUNT(*) FROM
#            'file://examples/trades.csv' GROUP BY symbol"
#       or:  build/release/velo server   (the HTTP API on 127.0.0.1:8080)
#
# Environment: VELO_JOBS (default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash packaging/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DVELO_TESTS=OFF >/dev/null
cmake --build build/release -j"${VELO_JOBS:-$(nproc)}" >/dev/null
VELO="$ROOT/build/release/velo"
"$VELO" version
echo
echo "Running examples/vwap.sql:"
echo
sed -n '/^CREATE/,$p' examples/vwap.sql | grep -v '^-- @'
echo
"$VELO" run --format table --stats examples/vwap.sql
