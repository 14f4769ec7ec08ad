#!/usr/bin/env bash
# canbench --senders on vcan0 (natively or in the qemu VM of scripts/vcan-vm.sh): client->bus
# throughput with 1 and 4 senders next to a raw SocketCAN writer, unshaped and with vcan0 shaped
# like a 125 kbit/s, 500 kbit/s and 1 Mbit/s bus (tbf, txqueuelen 10; see
# tests/vcan/transmit_scenarios.cc for the calibration). Figures in docs/benchmarks.md.
#   scripts/bench-tx-vcan.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="$(cd "${1:-build}" && pwd)"
if [ "${CANSERVER_IN_VM:-0}" != 1 ] && ! ip link show vcan0 >/dev/null 2>&1; then
  exec scripts/vcan-vm.sh -- "$PWD/scripts/bench-tx-vcan.sh" "$build"
fi
shape() {  # shape BITRATE (0: none)
  tc qdisc del dev vcan0 root 2>/dev/null || true
  ip link set vcan0 down; ip link set vcan0 txqueuelen 10; ip link set vcan0 up
  if [ "$1" -gt 0 ]; then
    tc qdisc add dev vcan0 root tbf rate "$(( $1 * 128 / 111 ))bit" burst 1600 limit 320
  fi
}
for rate in 0 125000 500000 1000000; do
  shape "$rate"
  count=20000
  [ "$rate" -gt 0 ] && count=$(( rate / 111 * 2 ))  # about two seconds of wire per sender
  echo "== vcan0 $([ "$rate" -gt 0 ] && echo "shaped at $rate bit/s" || echo unshaped), $count frames per sender"
  "$build/tools/canbench" --backend socketcan --channel vcan0 --senders 1,4 --count "$count" \
    --bus-bitrate "$rate" --progress=false
done
shape 0
