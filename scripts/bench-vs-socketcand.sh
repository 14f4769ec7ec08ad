#!/bin/bash
# A test script's frame to the other clients, canserver against socketcand, on one SocketCAN
# interface in the same boot (#31). Run it where vcan0 exists, e.g. in the VM:
#
#   scripts/vcan-vm.sh -- scripts/bench-vs-socketcand.sh /path/to/socketcand [RUNS] [RATE] [SECONDS]
#
# socketcand is not in Debian (12 or sid); build it from its source (github.com/linux-can/
# socketcand) and pass the binary. One sender and 1, then 4 receivers; each run is canbench
# --source client against an already running server: canserver over v5 (a v5 sender and v5
# receivers), canserver's socketcand front end, and socketcand (one process per client, RAW mode),
# in turn, the order reversed every other round. Latency is canbench's write of a frame to each
# receiver's decode ("from write"); the raw reader beside them shows when the frame was on the bus.
# Prints one line per run and the medians per target.
set -euo pipefail
socketcand=${1:?usage: $0 SOCKETCAND_BINARY [RUNS] [RATE] [SECONDS]}
runs=${2:-5}
rate=${3:-1000}
seconds=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT

"$build/tools/canserver" --interface socketcan --channel vcan0 --host 127.0.0.1 --port 54701 \
  --socketcand-port 29537 --max-clients-per-address 0 --max-clients-per-channel 0 \
  >"$out/canserver.log" 2>&1 &
"$socketcand" -i vcan0 -l lo -p 29536 -n >"$out/socketcand.log" 2>&1 &
sleep 2

common=(--channel vcan0 --source client --rate "$rate" --duration "$seconds" --progress=false)
run() {  # target clients round
  local target=$1 n=$2 i=$3 args
  case $target in
    canserver-v5) args=(--server 127.0.0.1:54701) ;;
    canserver-sc) args=(--server 127.0.0.1:29537 --protocol socketcand --socketcand_port 29537) ;;
    socketcand) args=(--server 127.0.0.1:29536 --protocol socketcand --socketcand_port 29536
                      --socketcand_itself) ;;
  esac
  "$build/tools/canbench" "${common[@]}" "${args[@]}" --clients "$n" \
    --json "$out/$target-$n-$i.json" >"$out/$target-$n-$i.txt" 2>&1 ||
    { echo "$target $n clients run $i failed:"; cat "$out/$target-$n-$i.txt"; return 1; }
}

for n in 1 4; do
  for i in $(seq 1 "$runs"); do
    order=(canserver-v5 canserver-sc socketcand)
    [ $((i % 2)) = 0 ] && order=(socketcand canserver-sc canserver-v5)
    for t in "${order[@]}"; do run "$t" "$n" "$i"; done
  done
done

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print("target        clients run  sent   lost  write->bus p50/p99 us  write->clients p50/p99 us")
med = {}
for n in (1, 4):
    for t in ("canserver-v5", "canserver-sc", "socketcand"):
        for i in range(1, runs + 1):
            r = json.load(open(f"{out}/{t}-{n}-{i}.json"))["runs"][0]
            fw, raw = r["total"]["from_write"], (r["raw"] or {}).get("from_write", {})
            lost = r["total"]["lost"]
            print(f"{t:13} {n:7} {i:3} {r['sent']:6} {lost:6}  "
                  f"{raw.get('p50_us', 0):8.0f} / {raw.get('p99_us', 0):8.0f}  "
                  f"{fw['p50_us']:10.0f} / {fw['p99_us']:8.0f}")
            med.setdefault((t, n), []).append((fw["p50_us"], fw["p99_us"], lost))
print("\nmedians of", runs, "runs (from canbench's write to the receivers' decode):")
for n in (1, 4):
    base = med[("socketcand", n)]
    b50 = statistics.median(x[0] for x in base); b99 = statistics.median(x[1] for x in base)
    for t in ("canserver-v5", "canserver-sc", "socketcand"):
        xs = med[(t, n)]
        p50 = statistics.median(x[0] for x in xs); p99 = statistics.median(x[1] for x in xs)
        print(f"{n} receiver(s) {t:13} p50 {p50:7.0f} us  p99 {p99:7.0f} us  "
              f"lost {sum(x[2] for x in xs):6}  vs socketcand p50 {p50 / b50:.2f}x p99 {p99 / b99:.2f}x")
PY
