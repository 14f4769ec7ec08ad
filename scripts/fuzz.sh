#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan+UBSan) and fuzzes the v5 decoder and session
# logic for a bounded time. Usage: scripts/fuzz.sh [SECONDS]   (default 60)
# New inputs go to a temporary corpus; crashes are written to build-fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCANSERVER_FUZZ=ON \
  -DCANSERVER_WERROR=ON -DCANSERVER_BUILD_BENCH=OFF
cmake --build build-fuzz --target v5_fuzz
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
build-fuzz/tests/v5_fuzz -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix=build-fuzz/ "$corpus" tests/fuzz/corpus 2>&1 | grep -E "^#|stat::|ERROR|SUMMARY|Done" | tail -15
