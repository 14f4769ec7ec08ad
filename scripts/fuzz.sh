#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and fuzzes each for a bounded time: the
# v5/v6 decoder and session logic (v5_fuzz, seeds in tests/fuzz/corpus) and socketcand's element
# parser and session logic (socketcand_fuzz, seeds in tests/fuzz/socketcand_corpus).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60, both targets)
# New inputs go to a temporary corpus; with FUZZ_KEEP=1 those that add coverage are merged into
# the repository's corpus. Crashes are written to build-fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(v5_fuzz socketcand_fuzz)
scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCANSERVER_FUZZ=ON \
  -DCANSERVER_WERROR=ON -DCANSERVER_BUILD_BENCH=OFF
cmake --build build-fuzz --target "${targets[@]}"
for target in "${targets[@]}"; do
  case "$target" in
    v5_fuzz) seeds=tests/fuzz/corpus ;;
    socketcand_fuzz) seeds=tests/fuzz/socketcand_corpus ;;
    *) echo "fuzz.sh: unknown target $target" >&2; exit 2 ;;
  esac
  corpus=$(mktemp -d)
  echo "== $target, $seconds s"
  build-fuzz/tests/"$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/ "$corpus" "$seeds" 2>&1 |
    grep -E "^#|stat::|ERROR|SUMMARY|Done" | tail -15
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    build-fuzz/tests/"$target" -merge=1 "$seeds" "$corpus" 2>&1 | grep -E "MERGE-OUTER: [0-9]+ new" || true
  fi
  rm -rf "$corpus"
done
