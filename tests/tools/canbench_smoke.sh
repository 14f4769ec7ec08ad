#!/usr/bin/env bash
# canbench end to end at a modest rate: every frame offered reaches every client, in order.
# (A functional check of the harness and the server; the figures themselves are in docs/.)
set -euo pipefail
bench="$1"
out=$(mktemp)
trap 'rm -f "$out" "$out.txt"' EXIT
check() {
/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for run in r["runs"]:
    assert run["sent"] > 0, run
    for c in run["per_client"]:
        assert c["received"] == run["sent"] and c["lost"] == 0 and c["reordered"] == 0, (run["sent"], c)
    t = run["total"]
    assert t["received"] == run["sent"] * run["clients"] and t["lost"] == 0, t
    # Every frame's write time was found, and nothing arrives before it was written.
    w = t["from_write"]
    assert w["unmatched"] == 0 and 0 < w["max_us"] and w["p50_us"] <= w["max_us"], w
print("canbench smoke (dlc %s, %s ids): %d frames to %d clients, none lost" % (
    r["dlc"], r["mix"], r["runs"][0]["sent"], r["runs"][0]["clients"]))
PY
}
"$bench" --clients 2 --rate 5000 --duration 1 --progress=false --json "$out" >/dev/null
check
# Every dlc, standard and extended ids: the sequence number survives frames with no data bytes.
"$bench" --clients 2 --rate 5000 --duration 1 --dlc 0-8 --mix mixed --progress=false \
  --json "$out" >/dev/null
check
# Client -> bus (--senders): 2 senders into an emulated 1 Mbit/s wire; every frame reaches the
# bus in each sender's order, none refused.
"$bench" --senders 2 --count 1000 --virtual-bitrate 1000000 --progress=false --json "$out" >/dev/null
/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
run = r["runs"][-1]
assert run["writer"] == "canserver" and run["sent"] == 2000, run
assert run["on_bus"] == 2000 and run["lost"] == 0 and run["refused"] == 0 and run["reordered"] == 0, run
print("canbench smoke (--senders 2 at 1 Mbit/s): %d frames on the bus, %.0f frames/s, none refused" % (
    run["on_bus"], run["fps"]))
PY
# --baseline relay: the floor and canserver alternate on the same bus; both deliver every frame,
# and each run reports its threads' CPU.
"$bench" --clients 2 --rate 5000 --duration 1 --baseline relay --repeat 1 --progress=false \
  --json "$out" >/dev/null
check
/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
targets = sorted(run["target"] for run in r["runs"])
assert targets == ["canserver", "relay"], targets
for run in r["runs"]:
    assert run["server_cpu_s"] > 0, run
print("canbench smoke (--baseline relay): " + ", ".join(
    "%s %.1f us CPU/frame" % (run["target"], run["server_cpu_s"] * 1e6 / run["sent"]) for run in r["runs"]))
PY
# A run that fails after its server started (the 257th client is refused: --max-clients) says why
# and exits 1; it used to std::terminate on the server thread it left joinable.
set +e
err=$("$bench" --clients 257 --duration 1 --progress=false 2>&1 >/dev/null)
rc=$?
set -e
[ "$rc" = 1 ] || { echo "canbench with a refused client: exit $rc, want 1: $err"; exit 1; }
echo "$err" | grep -q "canbench: server full" || { echo "no reason given: $err"; exit 1; }
echo "canbench smoke (a refused client): $(echo "$err" | grep 'canbench:')"
# --source client: a v5 client's frames reach the other clients, and the run splits the path into
# its hops (#31): the write-to-bus time contains the server's own decode-to-bus wait.
"$bench" --source client --clients 2 --rate 5000 --duration 1 --progress=false --json "$out" \
  >"$out.txt"
check
grep -q "^client path hops" "$out.txt" || { echo "no hop profile:"; cat "$out.txt"; exit 1; }
/usr/bin/python3 - "$out" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["runs"][0]
to_bus, wait = run["total"]["to_bus"], run["server_tx_wait_p50_us"]
assert 0 < to_bus["p50_us"] <= run["total"]["from_write"]["max_us"], run["total"]
assert 0 <= wait <= to_bus["max_us"], (wait, to_bus)
print("canbench smoke (--source client): write -> bus p50 %.0f us, of which the server's wait %.0f" % (
    to_bus["p50_us"], wait))
PY
# The same from a socketcand client to socketcand clients (canbench's comparison with socketcand
# itself uses this path against another server).
"$bench" --source client --protocol socketcand --clients 2 --rate 5000 --duration 1 \
  --progress=false --json "$out" >/dev/null
check
