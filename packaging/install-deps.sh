#!/usr/bin/env bash
# Install Velostream's build and test dependencies from Debian packages.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt.
#
#   bash packaging/install-deps.sh          build + run dependencies
#   bash packaging/install-deps.sh --test   also what the tests need
#   bash packaging/install-deps.sh --bench  also what bench/run.sh compares with
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config git
  libevent-dev librdkafka-dev libpq-dev libhiredis-dev libjansson-dev
  libcurl4-openssl-dev libssl-dev libyaml-dev libcunit1-dev
  openssl ca-certificates curl
)
TEST_PKGS=(
  clang libclang-rt-14-dev   # libFuzzer, sanitizers
  prometheus                 # promtool checks the /metrics exposition
  procps psmisc              # ps, kill, fuser for the integration tests
  dpkg-dev file              # cpack -G DEB and checking its result
  redis-server               # the Redis plugin's tests (started per test)
  postgresql                 # the PostgreSQL plugin's tests (initdb per test)
  kcat                       # an independent Kafka client for the Kafka tests
  python3                    # small checks inside the plugin test scripts
  chromium                   # renders `velo run --dashboard` headless
)

BENCH_PKGS=(
  sqlite3                    # a real alternative engine on the same input
  linux-perf                 # profiles (perf record/stat)
)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${TEST_PKGS[@]}")
elif [[ "${1:-}" == "--bench" ]]; then
  want+=("${BENCH_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
