// The status page served at "/": plain HTML, CSS and JavaScript in one document (the rig has no
// internet, so no external assets), polling /api/status once a second and computing rates from
// the difference of two polls.
#include "net/server_status.h"

namespace canserver {

const std::string& StatusPageHtml() {
  static const std::string* const kPage = new std::string(R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>canserver</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  .meta { color: #666; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; }
  th { background: #f4f4f4; font-weight: 600; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .bad { color: #b00; font-weight: 600; }
  .ok { color: #070; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>canserver</h1>
<div class="meta">version <span id="version">?</span> · up <span id="uptime">?</span> ·
  <span id="io">?</span> io threads · updated <span id="updated">never</span>
  <span id="error"></span></div>
<h2>Channels</h2>
<table id="channels"><thead><tr>
  <th>channel</th><th>port</th><th>bit rate</th><th>state</th><th>clients</th>
  <th>frames/s</th><th>bus load</th><th>received</th><th>sent</th><th>refused</th><th>kernel drops</th><th>client drops</th><th>leased by</th>
</tr></thead><tbody></tbody></table>
<h2>Clients</h2>
<p class="meta">Peer addresses are shown to whoever may open this page (canserver --allow).</p>
<table id="clients"><thead><tr>
  <th>channel</th><th>session</th><th>peer</th><th>protocol</th><th>connected</th><th>filters</th>
  <th>role</th><th>frames/s to</th><th>frames/s from</th><th>dropped</th><th>refused</th>
</tr></thead><tbody></tbody></table>
<script>
"use strict";
let last = null;
const fmt = (n) => Math.round(n).toLocaleString("en");
const rate = (now, before, key, dt) => before && dt > 0 ? Math.max(0, now[key] - before[key]) / dt : 0;
function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (h || d ? h + "h " : "") + m + "m " + (s % 60) + "s";
}
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
}
function render(st) {
  const dt = last ? st.now - last.now : 0;
  const prevChannel = (name) => last && last.channels.find((c) => c.name === name);
  document.getElementById("version").textContent = st.version;
  document.getElementById("uptime").textContent = duration(st.now - st.start_time);
  document.getElementById("io").textContent = st.io_threads;
  document.getElementById("updated").textContent = new Date(st.now * 1000).toLocaleTimeString();
  const ch = document.querySelector("#channels tbody");
  const cl = document.querySelector("#clients tbody");
  ch.replaceChildren();
  cl.replaceChildren();
  for (const c of st.channels) {
    const p = prevChannel(c.name);
    const fps = c.frames_per_second;  // the server's figure over the last second or two
    const row = ch.insertRow();
    row.dataset.channel = c.name;
    cell(row, c.name);
    cell(row, c.port, "n");
    cell(row, c.bitrate ? fmt(c.bitrate) + " bit/s" + (c.data_bitrate ? " / " + fmt(c.data_bitrate) : "") : "no bit timing");
    cell(row, c.state, c.state === "error-active" ? "ok" : "bad");
    cell(row, c.clients, "n clients");
    cell(row, fmt(fps), "n rate");
    // An 8-byte standard frame is 111 bits on the wire (without stuff bits).
    cell(row, c.bitrate ? (100 * fps * 111 / c.bitrate).toFixed(1) + " %" : "—", "n");
    cell(row, fmt(c.bus_rx), "n");
    cell(row, fmt(c.bus_tx), "n");
    cell(row, fmt(c.bus_tx_failed), c.bus_tx_failed ? "n bad" : "n");
    cell(row, fmt(c.kernel_drops), c.kernel_drops ? "n bad" : "n");
    cell(row, fmt(c.ring_drops), c.ring_drops ? "n bad" : "n");
    // The exclusive transmit lease (canremote lease, bus.lease()): who, and for how long yet.
    cell(row, c.lease ? c.lease.holder + ", " + Math.ceil(c.lease.remaining_s) + " s left" +
             (c.lease.members ? " (+" + c.lease.members + " joined)" : "") : "—",
         c.lease ? "lease" : "");
    for (const s of c.sessions) {
      const ps = p && p.sessions.find((x) => x.id === s.id);
      const r = cl.insertRow();
      cell(r, c.name);
      cell(r, s.id, "n");
      cell(r, s.peer);
      cell(r, s.protocol + (s.protocol === "v6" ? " (CAN FD)" : ""));
      cell(r, duration(st.now - s.connected_at) +
              (s.connection && s.connection.startsWith("detached") ? " · " + s.connection : ""),
           s.connection && s.connection.startsWith("detached") ? "bad" : "");
      cell(r, s.filters || "everything");
      cell(r, s.access + (s.transport && s.transport !== "plain TCP" ? " · " + s.transport : ""));
      cell(r, fmt(rate(s, ps, "frames_to_client", dt)), "n");
      cell(r, fmt(rate(s, ps, "frames_from_client", dt)), "n");
      const dropped = s.drops_ring_full + s.drops_unsupported;
      cell(r, fmt(dropped), dropped ? "n bad" : "n");
      const refused = s.tx_failed + s.refused_role + s.refused_lease;
      cell(r, fmt(refused), refused ? "n bad" : "n");
    }
  }
  last = st;
}
async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "· canserver not reachable: " + e.message;
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
)html");
  return *kPage;
}

}  // namespace canserver
