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
  svg.load { width: 100%; height: 80px; background: #fafafa; border: 1px solid #ddd; }
  svg.load polyline { fill: none; stroke: #2a6; stroke-width: 1.5; }
  code { background: #f4f4f4; padding: 0 .3em; }
</style>
</head>
<body>
<h1>canserver</h1>
<div class="meta">version <span id="version">?</span> · up <span id="uptime">?</span> ·
  <span id="io">?</span> io threads · updated <span id="updated">never</span>
  <span id="error"></span> ·
  <a href="/metrics">/metrics</a> (Prometheus) · <a href="/api/status">/api/status</a> (JSON)</div>
<h2>Channels</h2>
<table id="channels"><thead><tr>
  <th>channel</th><th>port</th><th>bit rate</th><th>state</th><th>clients</th>
  <th>frames/s</th><th>bus load</th><th>received</th><th>sent</th><th>refused</th><th>kernel drops</th><th>client drops</th><th>errors tx/rx</th><th>bus-off</th><th>latency</th><th>leased by</th>
</tr></thead><tbody></tbody></table>
<h2>Bus load, the last minutes</h2>
<p class="meta">Frames received and frames clients sent, as nominal bits on the wire (no stuff
bits) against the bit rate; frames/s where the bus has no bit timing.</p>
<div id="graphs"></div>
<div class="meta" id="capture"></div>
<h2>Traffic on <select id="view-channel"></select></h2>
<p class="meta">Summed up by the server (it watches the channel while this page is open, like a
monitor client); <span id="view-meta"></span></p>
<table id="ids"><thead><tr>
  <th>id</th><th>frames</th><th>rate /s</th><th>period ms</th><th>jitter ms</th><th>last data</th><th>last seen</th>
</tr></thead><tbody></tbody></table>
<h2>Newest frames <button id="pause">pause</button>
  <input id="trace-filter" placeholder="filter by id, e.g. 1A0" size="16"></h2>
<table id="trace"><thead><tr><th>time</th><th>frame</th></tr></thead><tbody></tbody></table>
<h2>Clients</h2>
<p class="meta">Peer addresses are shown to whoever may open this page (canserver --allow).</p>
<table id="clients"><thead><tr>
  <th>channel</th><th>session</th><th>peer</th><th>protocol</th><th>connected</th><th>filters</th>
  <th>role</th><th>frames/s to</th><th>frames/s from</th><th>dropped</th><th>refused</th>
</tr></thead><tbody></tbody></table>
<script>
"use strict";
let last = null;
function graph(name, points, unit) {
  let box = document.getElementById("graph-" + name);
  if (!box) {
    box = document.createElement("div");
    box.id = "graph-" + name;
    box.innerHTML = '<div class="meta"></div><svg class="load" viewBox="0 0 300 100" ' +
                    'preserveAspectRatio="none"><polyline/></svg>';
    document.getElementById("graphs").appendChild(box);
  }
  const now = points.length ? points[points.length - 1][0] : 0;
  // The width is the last minute until more is known, then up to 5 minutes.
  const span = Math.max(60, points.length ? now - points[0][0] : 0);
  const top = unit === "%" ? 100 : Math.max(1, ...points.map((p) => p[1]));
  box.querySelector("polyline").setAttribute("points", points.map((p) =>
      (300 - 300 * (now - p[0]) / span).toFixed(1) + "," + (100 - 100 * p[1] / top).toFixed(1)).join(" "));
  const latest = points.length ? points[points.length - 1][1] : 0;
  box.querySelector(".meta").textContent = name + ": " +
      (unit === "%" ? latest.toFixed(1) + " % now" : fmt(latest) + " frames/s now") +
      " (scale " + (unit === "%" ? "0–100 %" : "0–" + fmt(top) + " frames/s") + ")";
}
const fmt = (n) => Math.round(n).toLocaleString("en");
const rate = (now, before, key, dt) => before && dt > 0 ? Math.max(0, now[key] - before[key]) / dt : 0;
function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (h || d ? h + "h " : "") + m + "m " + (s % 60) + "s";
}
// Delivery latency (bus timestamp to a client's socket) over the frames since the last poll: the
// mean, and the bucket bounds the median and the 99th percentile fall under.
// Without frames since then, over every frame since the server started.
function latency(now, before) {
  const d = now.delivery_latency;
  if (!d || !d.count) return "—";
  let b = before && before.delivery_latency;
  if (!b || b.count === d.count) b = { buckets: d.buckets.map(() => 0), sum_s: 0, count: 0 };
  const counts = d.buckets.map((n, i) => n - b.buckets[i]);
  const total = counts.reduce((x, y) => x + y, 0);
  if (total <= 0) return "—";
  const under = (q) => {
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen >= q * total) return d.bounds_us[i] === null ? "> 1 s" : "≤ " + fmt(d.bounds_us[i]) + " µs";
    }
    return "?";
  };
  const mean = (d.sum_s - b.sum_s) / total * 1e6;
  return "mean " + fmt(mean) + " µs, p50 " + under(0.5) + ", p99 " + under(0.99) +
         (b.count ? "" : " (since start)");
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
  const capture = document.getElementById("capture");
  ch.replaceChildren();
  cl.replaceChildren();
  capture.replaceChildren();
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
    // Nominal wire bits of the frames received and of those clients sent, per second.
    const load = c.bus_load_percent;  // the server's, over its last 1..2 s
    cell(row, load === null ? "—" : load.toFixed(1) + " %", "n load");
    cell(row, fmt(c.bus_rx), "n");
    cell(row, fmt(c.bus_tx), "n");
    cell(row, fmt(c.bus_tx_failed), c.bus_tx_failed ? "n bad" : "n");
    cell(row, fmt(c.kernel_drops), c.kernel_drops ? "n bad" : "n");
    cell(row, fmt(c.ring_drops), c.ring_drops ? "n bad" : "n");
    cell(row, c.tx_errors >= 0 ? c.tx_errors + " / " + c.rx_errors : "—", "n");
    cell(row, fmt(c.bus_off) + (c.state_changes ? " (" + fmt(c.state_changes) + " state changes)" : ""),
         c.bus_off ? "n bad" : "n");
    cell(row, latency(c, p), "latency");
    // The exclusive transmit lease (canremote lease, bus.lease()): who, and for how long yet.
    cell(row, c.lease ? c.lease.holder + ", " + Math.ceil(c.lease.remaining_s) + " s left" +
             (c.lease.members ? " (+" + c.lease.members + " joined)" : "") : "—",
         c.lease ? "lease" : "");

    if (c.capture_port) {
      const line = document.createElement("div");
      const code = document.createElement("code");
      code.textContent = "wireshark -k -i TCP@" + location.hostname + ":" + c.capture_port;
      line.append("Live capture of " + c.name + " in Wireshark: ", code);
      capture.append(line);
    }
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
      cell(r, s.filters_readable || s.filters || "everything");
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
let paused = false;
document.getElementById("pause").onclick = (e) => {
  paused = !paused;
  e.target.textContent = paused ? "resume" : "pause";
};
function renderTraffic(tv, now) {
  document.getElementById("view-meta").textContent = fmt(tv.frames) + " frames since " +
      new Date(tv.since * 1000).toLocaleTimeString() +
      (tv.not_seen ? ", " + fmt(tv.not_seen) + " not seen (too many at once)" : "") +
      (tv.ids_not_listed ? ", " + fmt(tv.ids_not_listed) + " frames of ids beyond the table" : "");
  const ids = document.querySelector("#ids tbody");
  ids.replaceChildren();
  for (const s of tv.ids) {
    const r = ids.insertRow();
    r.dataset.id = s.id;
    cell(r, s.id);
    cell(r, fmt(s.count), "n");
    cell(r, s.rate ? s.rate.toFixed(1) : "—", "n");
    cell(r, s.period_ms ? s.period_ms.toFixed(2) : "—", "n");
    cell(r, s.jitter_ms ? s.jitter_ms.toFixed(2) : "—", "n");
    cell(r, s.last);
    cell(r, Math.max(0, now - s.last_seen).toFixed(1) + " s ago", "n");
  }
  if (paused) return;
  const want = document.getElementById("trace-filter").value.trim().toUpperCase();
  const trace = document.querySelector("#trace tbody");
  trace.replaceChildren();
  for (const f of tv.trace.slice().reverse()) {
    if (want && !f.frame.split("#")[0].includes(want)) continue;
    const r = trace.insertRow();
    cell(r, new Date(f.t * 1000).toISOString().slice(11, 23), "n");
    cell(r, f.frame);
  }
}
// The bus load's last minutes, kept by the server (one point a second, whether anyone looks).
async function pollHistory(st) {
  for (const c of st.channels) {
    const response = await fetch("/api/traffic?history=only&channel=" + encodeURIComponent(c.name),
                                 { cache: "no-store" });
    if (!response.ok) continue;
    const points = (await response.json()).history.map((p) =>
        [p[0], c.bitrate ? 100 * p[1] / c.bitrate : p[2]]);
    graph(c.name, points, c.bitrate ? "%" : "frames/s");
  }
}
async function pollTraffic(st) {
  const select = document.getElementById("view-channel");
  if (select.options.length !== st.channels.length) {
    select.replaceChildren(...st.channels.map((c) => new Option(c.name, c.name)));
  }
  if (!select.value) return;
  const response = await fetch("/api/traffic?channel=" + encodeURIComponent(select.value),
                               { cache: "no-store" });
  if (response.ok) renderTraffic(await response.json(), st.now);
}
async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const st = await response.json();
    render(st);
    await pollHistory(st);
    await pollTraffic(st);
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
