#!/usr/bin/env bash
# Soak run (not in CI): canserver on the virtual bus for MINUTES (default 10) under a moderate
# load from canbench, in one-minute rounds, with clients joining and leaving all the while.
# Every round prints the server's RSS, open fds, drops and the round's latency, so growth shows.
#   scripts/soak.sh [MINUTES] [RATE]      (defaults: 10 minutes, 2000 frames/s, 4 clients)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
rate="${2:-2000}"
build=build
port=54790
log=$(mktemp)
"$build/tools/canserver" --interface virtual --host 127.0.0.1 --port "$port" --socketcand-port 0 -v \
  --stats-interval 60s 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; kill $churn 2>/dev/null; rm -f "$log"' EXIT
sleep 1

# Clients joining and leaving: a dump that takes 50 frames and goes, over and over.
( while true; do
    "$build/tools/canremote" dump -c 127.0.0.1:$port -n 50 >/dev/null 2>&1 || true
  done ) &
churn=$!

sample() {
  local rss fds
  rss=$(awk '/VmRSS/{print $2}' /proc/$server/status)
  fds=$(ls /proc/$server/fd | wc -l)
  echo "$rss $fds"
}
printf '%-6s %10s %6s %9s %9s %8s %8s %8s\n' minute rss_kib fds opened lost p50_us p99_us max_us
for ((m = 1; m <= minutes; m++)); do
  json=$(mktemp)
  "$build/tools/canbench" --server 127.0.0.1:$port --source client --clients 4 --rate "$rate" \
    --duration 60 --progress=false --json "$json" >/dev/null
  read -r rss fds < <(sample)
  sessions=$(grep -c "opened" "$log" || true)
  /usr/bin/python3 - "$json" "$m" "$rss" "$fds" "$sessions" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
lost = sum(c["lost"] for c in r["per_client"])
p50 = max(c["p50_us"] for c in r["per_client"])
p99 = max(c["p99_us"] for c in r["per_client"])
mx = max(c["max_us"] for c in r["per_client"])
print("%-6s %10s %6s %9s %9d %8.0f %8.0f %8.0f" % (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], lost, p50, p99, mx))
PY
  rm -f "$json"
done
kill $churn; wait $churn 2>/dev/null || true
kill -TERM $server; wait $server
echo "server exit: $?; its last summary:"
grep -E "stopped;" "$log" | tail -1
