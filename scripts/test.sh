#!/usr/bin/env bash
# Installs dependencies, builds and runs every test. Usage:
#   scripts/test.sh                     # the normal build, all labels (README's test command)
#   scripts/test.sh --sanitize address  # ASan+UBSan build in build-asan/
#   scripts/test.sh --sanitize thread   # TSan build in build-tsan/
# Extra arguments after -- go to ctest (e.g. -- -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
build_dir="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize="$2"; build_dir="build-${2/address/asan}"; build_dir="${build_dir/thread/tsan}"; shift 2 ;;
    --) shift; break ;;
    *) echo "test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
compiler=()
if [ "$sanitize" = thread ]; then
  # GCC cannot see through the atomic fences in moodycamel's queues and warns (-Wtsan); clang
  # builds them with the TSan annotations moodycamel provides.
  compiler=(-DCMAKE_CXX_COMPILER=clang++)
fi
cmake -S . -B "$build_dir" -G Ninja "${compiler[@]}" -DCANSERVER_WERROR=ON -DCANSERVER_SANITIZE="$sanitize" \
  -DCANSERVER_BUILD_BENCH="$([ -z "$sanitize" ] && echo ON || echo OFF)"
cmake --build "$build_dir"
# halt_on_error: a sanitizer report fails the test that caused it.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "$@"
