#!/bin/bash
# Alternates two canbench binaries (a previous build and this one), same flags, N pairs, and
# prints each run's totals and --baseline relay ratios on one line. Usage:
#   OLD_CANBENCH=/tmp/old/build/tools/canbench scripts/bench-against.sh LABEL N ARGS...
label=$1; n=$2; shift 2
old=${OLD_CANBENCH:?set OLD_CANBENCH to the canbench of the previous build}; new=${NEW_CANBENCH:-build/tools/canbench}
for i in $(seq 1 $n); do
  for which in old new; do
    bin=$old; [ $which = new ] && bin=$new
    out=$(timeout 300 $bin "$@" --progress=false 2>&1)
    tot=$(echo "$out" | grep -E "^total " | tail -1 | awk '{print "fps="$5, "lost="$3, "p50="$6, "p99="$8}')
    cpu=$(echo "$out" | grep -E "^canserver threads. CPU" | grep -oE "[0-9.]+ .?.?s per frame" | awk '{print "cpu_us_per_frame="$1}')
    ratio=$(echo "$out" | grep -E "^4 +ratio" | awk '{print "ratio_p50="$3, "ratio_p99="$4, "ratio_cpu="$6}')
    echo "$label pair=$i $which $tot $cpu $ratio"
  done
done
