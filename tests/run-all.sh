#!/usr/bin/env bash
# Install what is missing, build, and run every Velostream test:
#   1. a -Werror build and its ctest suite (unit, loader fixtures, license
#      matrix, HTTP over real sockets, integration against the real binary)
#   2. the same suite built with AddressSanitizer + UBSan
#   3. the libFuzzer targets (clang), each for a bounded time
#   4. the .deb: cpack builds it, dpkg installs it into a scratch root, and
#      the installed binary runs
# The output ends with ctest's summary of the main suite.
#
# Environment: VELO_FUZZ_SECONDS (default 30), VELO_JOBS (default nproc),
# VELO_SKIP_ASAN=1 / VELO_SKIP_FUZZ=1 for quicker local runs (CI runs all).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${VELO_JOBS:-$(nproc)}"
FUZZ_SECONDS="${VELO_FUZZ_SECONDS:-30}"
BUILD="$ROOT/build"

step() { printf '\n=== %s ===\n' "$*"; }

step "dependencies"
bash packaging/install-deps.sh --test

step "build (warnings are errors)"
cmake -S . -B "$BUILD/main" -DVELO_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$BUILD/main" -j"$JOBS"

if [[ "${VELO_SKIP_FUZZ:-0}" != 1 ]]; then
  step "fuzzers (${FUZZ_SECONDS}s each)"
  CC=clang cmake -S . -B "$BUILD/fuzz" -DVELO_FUZZ=ON -DVELO_WERROR=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD/fuzz" -j"$JOBS" --target velo-core
  for src in tests/fuzz/fuzz_*.c; do
    name="$(basename "$src" .c)"
    cmake --build "$BUILD/fuzz" -j"$JOBS" --target "$name"
    corpus="$BUILD/fuzz/corpus-$name"
    mkdir -p "$corpus"
    seeds="$ROOT/tests/fuzz/seeds/${name#fuzz_}"
    args=("$corpus")
    [[ -d "$seeds" ]] && args+=("$seeds")
    echo "running $name for ${FUZZ_SECONDS}s"
    (cd "$BUILD/fuzz" && "./tests/$name" -max_total_time="$FUZZ_SECONDS" \
        -print_final_stats=1 -max_len=65536 "${args[@]}" 2>&1 | tail -4)
  done
fi

step "package (.deb)"
(cd "$BUILD/main" && cpack -G DEB >/dev/null)
DEB="$(ls "$BUILD"/main/velostream_*.deb | head -1)"
dpkg-deb --info "$DEB" | sed -n '1,12p'
SCRATCH="$(mktemp -d)"
dpkg-deb -x "$DEB" "$SCRATCH"
for f in usr/bin/velo etc/velo/velo.yaml usr/share/velo/systemd/velo.service \
         usr/share/velo/licenses/velo-license.pub usr/include/velo/velo.h; do
  [[ -e "$SCRATCH/$f" ]] || { echo "package is missing /$f" >&2; exit 1; }
done
[[ -d "$SCRATCH/usr/lib/velo/plugins" ]] || { echo "package is missing /usr/lib/velo/plugins" >&2; exit 1; }
"$SCRATCH/usr/bin/velo" version
rm -rf "$SCRATCH"
# Install it for real, run the installed server, then purge it again
# (skipped when another velostream package is already installed here).
if dpkg-query -W -f='${Status}' velostream 2>/dev/null | grep -q "ok installed"; then
  echo "velostream is already installed on this machine; not reinstalling"
else
  dpkg -i "$DEB" >/dev/null
  STATE="$(mktemp -d)"
  /usr/bin/velo server --config /etc/velo/velo.yaml --listen 127.0.0.1:0 \
      --data-dir "$STATE" >"$STATE/log" 2>&1 &
  PID=$!
  PORT=""
  for _ in $(seq 1 100); do
    PORT="$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$STATE/log")"
    [[ -n "$PORT" ]] && break
    sleep 0.05
  done
  STATUS="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)"
  kill -TERM "$PID"; wait "$PID"; RC=$?
  dpkg --purge velostream >/dev/null
  if [[ "$STATUS" != 200 || $RC -ne 0 ]]; then
    echo "the installed package did not serve /healthz (status $STATUS, exit $RC):" >&2
    cat "$STATE/log" >&2; exit 1
  fi
  echo "installed .deb: velo server answered /healthz and stopped cleanly; purged"
  rm -rf "$STATE"
fi

if [[ "${VELO_SKIP_ASAN:-0}" != 1 ]]; then
  step "tests under AddressSanitizer + UBSan"
  cmake -S . -B "$BUILD/asan" -DVELO_SANITIZE=ON -DVELO_WERROR=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$BUILD/asan" -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$BUILD/asan" --output-on-failure -j"$JOBS"
fi

step "tests"
ctest --test-dir "$BUILD/main" --output-on-failure -j"$JOBS"
