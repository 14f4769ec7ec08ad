#include "net/server_status.h"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "core/bus_state.h"
#include "core/text_format.h"
#include "net/traffic_view.h"

namespace canserver {
namespace {

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string Escape(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Writes metric families: HELP and TYPE once, then every sample of the family together, as the
// format requires.
class Exposition {
 public:
  void Family(absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void Sample(absl::string_view name, absl::string_view labels, double value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ",
                    Number(value), "\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  static std::string Number(double v) {
    if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 9e15 && v > -9e15) {
      return absl::StrCat(static_cast<int64_t>(v));
    }
    return absl::StrFormat("%.15g", v);  // start time to the 10 µs, small figures exactly
  }
  std::string out_;
};

std::string ChannelLabel(const ChannelStatus& c) {
  return absl::StrCat("channel=\"", Escape(c.name), "\"");
}

std::string SessionLabels(const ChannelStatus& c, const Subscriber& s) {
  return absl::StrCat(ChannelLabel(c), ",session=\"", s.id, "\",peer=\"", Escape(s.info.peer),
                      "\",protocol=\"", s.info.protocol, "\"");
}

// One metric family of a table below: its name, type, help, and how to read it from T.
template <typename T>
struct Metric {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const T&);
};

double V(const Counter& c) { return static_cast<double>(c.Get()); }

}  // namespace

void ReadTcpSockstat(int64_t* memory_bytes, int64_t* orphans) {
  *memory_bytes = -1;
  *orphans = -1;
  std::FILE* f = std::fopen("/proc/net/sockstat", "re");
  if (f == nullptr) return;
  char line[256];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long inuse, orphan, tw, alloc, pages;
    if (std::sscanf(line, "TCP: inuse %lld orphan %lld tw %lld alloc %lld mem %lld", &inuse,
                    &orphan, &tw, &alloc, &pages) == 5) {
      *memory_bytes = pages * ::sysconf(_SC_PAGESIZE);  // "mem" counts pages
      *orphans = orphan;
    }
  }
  std::fclose(f);
}

std::string RenderMetrics(const ServerStatus& status) {
  Exposition e;
  e.Family("canserver_build_info", "gauge", "canserver's version (always 1)");
  e.Sample("canserver_build_info", absl::StrCat("version=\"", Escape(status.version), "\""), 1);
  e.Family("canserver_start_time_seconds", "gauge", "When the server started (Unix time)");
  e.Sample("canserver_start_time_seconds", "", static_cast<double>(status.start_time_ns) / 1e9);
  e.Family("canserver_io_threads", "gauge", "io threads serving the clients");
  e.Sample("canserver_io_threads", "", status.io_threads);
  e.Family("canserver_max_clients", "gauge", "Sessions allowed at once (--max-clients)");
  e.Sample("canserver_max_clients", "", static_cast<double>(status.max_clients));
  e.Family("canserver_connections", "gauge",
           "Connections held, by stage (handshake: no bus opened yet)");
  e.Sample("canserver_connections", "stage=\"handshake\"", static_cast<double>(status.handshakes));
  e.Sample("canserver_connections", "stage=\"open\"",
           static_cast<double>(status.connections - status.handshakes));
  e.Family(
      "canserver_connections_refused_total", "counter",
      "Connections refused at accept by the limit named, or at the TLS handshake (reason tls)");
  for (const auto& [reason, n] : status.refused) {
    e.Sample("canserver_connections_refused_total", absl::StrCat("reason=\"", reason, "\""),
             static_cast<double>(n));
  }
  e.Family("canserver_log_lines_suppressed_total", "counter",
           "Log lines held back by the rate limit on lines remote peers cause");
  e.Sample("canserver_log_lines_suppressed_total", "",
           static_cast<double>(status.log_lines_suppressed));
  if (status.tcp_memory_bytes >= 0) {
    e.Family("canserver_kernel_tcp_memory_bytes", "gauge",
             "TCP buffer memory of the whole machine (/proc/net/sockstat)");
    e.Sample("canserver_kernel_tcp_memory_bytes", "", static_cast<double>(status.tcp_memory_bytes));
    e.Family("canserver_kernel_tcp_orphans", "gauge",
             "Orphaned TCP sockets on the whole machine (closed, still holding unsent data)");
    e.Sample("canserver_kernel_tcp_orphans", "", static_cast<double>(status.tcp_orphans));
  }

  // Per channel.
  static const Metric<ChannelStatus> kChannel[] = {
      {"canserver_clients", "gauge", "Clients connected to the channel",
       [](const ChannelStatus& c) { return static_cast<double>(c.sessions.size()); }},
      {"canserver_bus_rx_frames_total", "counter", "Frames received from the bus",
       [](const ChannelStatus& c) { return V(c.channel->counters().bus_rx); }},
      {"canserver_bus_tx_frames_total", "counter", "Frames written to the bus",
       [](const ChannelStatus& c) { return V(c.channel->counters().bus_tx); }},
      {"canserver_bus_tx_deferred_total", "counter",
       "Writes the bus deferred (ENOBUFS/EAGAIN: device queue full), each retried",
       [](const ChannelStatus& c) { return V(c.channel->counters().tx_busy); }},
      {"canserver_bus_tx_wait_max_seconds", "gauge",
       "Longest time a client's frame waited from queued to written",
       [](const ChannelStatus& c) { return V(c.channel->counters().tx_wait_max_us) / 1e6; }},
      {"canserver_kernel_drops_total", "counter",
       "Frames the kernel dropped before canserver read them (SO_RXQ_OVFL)",
       [](const ChannelStatus& c) { return V(c.channel->counters().kernel_drops); }},
      {"canserver_ring_drops_total", "counter",
       "Frames dropped for a client that did not keep up (sum over clients)",
       [](const ChannelStatus& c) { return V(c.channel->counters().ring_drops); }},
      {"canserver_direct_frames_total", "counter",
       "Frames the CAN thread wrote to idle clients' sockets itself (no io thread hand-off)",
       [](const ChannelStatus& c) { return V(c.channel->counters().direct_frames); }},
      {"canserver_bus_wire_bytes_total", "counter",
       "Nominal bits on the wire of the frames received and of those written for clients, "
       "without stuffing, in bytes (bus load = 8 * rate / canserver_bus_bitrate)",
       [](const ChannelStatus& c) { return V(c.channel->counters().bus_wire_bits) / 8; }},
      {"canserver_bus_state_changes_total", "counter", "Controller state changes",
       [](const ChannelStatus& c) { return V(c.channel->counters().state_changes); }},
      {"canserver_bus_off_total", "counter", "Times the controller went bus-off",
       [](const ChannelStatus& c) { return V(c.channel->counters().bus_off); }},
      {"canserver_bus_bitrate", "gauge",
       "The bus's nominal bit rate in bit/s (0: no bit timing, e.g. vcan)",
       [](const ChannelStatus& c) { return static_cast<double>(c.timing.bitrate); }},
      {"canserver_bus_data_bitrate", "gauge", "The CAN FD data phase bit rate in bit/s (0: none)",
       [](const ChannelStatus& c) { return static_cast<double>(c.timing.data_bitrate); }},
  };
  for (const auto& m : kChannel) {
    e.Family(m.name, m.type, m.help);
    for (const ChannelStatus& c : status.channels) e.Sample(m.name, ChannelLabel(c), m.value(c));
  }
  e.Family("canserver_bus_tx_refused_total", "counter",
           "Client frames refused with TransmitFail, by reason");
  for (const ChannelStatus& c : status.channels) {
    const ChannelCounters& k = c.channel->counters();
    for (auto [reason, counter] :
         {std::pair{"timeout", &k.tx_timeout}, std::pair{"bus_error", &k.tx_bus_error},
          std::pair{"no_fd", &k.tx_no_fd}}) {
      e.Sample("canserver_bus_tx_refused_total",
               absl::StrCat(ChannelLabel(c), ",reason=\"", reason, "\""), V(*counter));
    }
  }
  e.Family("canserver_bus_state", "gauge",
           "The controller's state as canserver last saw it (1 for the current state)");
  for (const ChannelStatus& c : status.channels) {
    e.Sample("canserver_bus_state",
             absl::StrCat(ChannelLabel(c), ",state=\"", BusStateName(c.channel->bus_state()), "\""),
             1);
  }
  e.Family("canserver_bus_error_counter", "gauge",
           "The controller's error counters, where the driver reports them");
  for (const ChannelStatus& c : status.channels) {
    if (c.timing.tx_errors < 0) continue;
    e.Sample("canserver_bus_error_counter", absl::StrCat(ChannelLabel(c), ",direction=\"tx\""),
             c.timing.tx_errors);
    e.Sample("canserver_bus_error_counter", absl::StrCat(ChannelLabel(c), ",direction=\"rx\""),
             c.timing.rx_errors);
  }
  auto histogram = [&](const std::string& name, const char* help,
                       const DeliveryLatency& (*of)(const CanChannel&)) {
    e.Family(name, "histogram", help);
    for (const ChannelStatus& c : status.channels) {
      const DeliveryLatency& h = of(*c.channel);
      uint64_t cumulative = 0;
      for (size_t b = 0; b < DeliveryLatency::kBuckets; ++b) {
        cumulative += h.bucket(b);
        const std::string le = b < std::size(DeliveryLatency::kBounds)
                                   ? absl::StrFormat("%g", DeliveryLatency::kBounds[b])
                                   : "+Inf";
        e.Sample(name + "_bucket", absl::StrCat(ChannelLabel(c), ",le=\"", le, "\""),
                 static_cast<double>(cumulative));
      }
      e.Sample(name + "_sum", ChannelLabel(c), h.sum_seconds());
      e.Sample(name + "_count", ChannelLabel(c), static_cast<double>(h.count()));
    }
  };
  histogram("canserver_delivery_latency_seconds",
            "From a frame's bus timestamp to its encoding for a client's socket",
            [](const CanChannel& ch) -> const DeliveryLatency& { return ch.delivery_latency(); });
  histogram("canserver_tx_wait_seconds",
            "From a client's frame decoded by the server to written to the bus",
            [](const CanChannel& ch) -> const DeliveryLatency& { return ch.tx_wait_latency(); });

  // Per session.
  static const Metric<Subscriber> kSession[] = {
      {"canserver_session_frames_to_client_total", "counter", "Frames sent to the client",
       [](const Subscriber& s) { return V(s.counters.frames_to_client); }},
      {"canserver_session_frames_from_client_total", "counter", "Frames received from the client",
       [](const Subscriber& s) { return V(s.counters.frames_from_client); }},
      {"canserver_session_bytes_to_client_total", "counter", "Bytes sent to the client",
       [](const Subscriber& s) { return V(s.counters.bytes_to_client); }},
      {"canserver_session_bytes_from_client_total", "counter", "Bytes received from the client",
       [](const Subscriber& s) { return V(s.counters.bytes_from_client); }},
      {"canserver_session_tx_written_total", "counter", "The client's frames the bus took",
       [](const Subscriber& s) { return V(s.counters.tx_written); }},
      {"canserver_session_tx_paused_total", "counter",
       "Times reading from the client stopped because its transmit queue was full",
       [](const Subscriber& s) { return V(s.counters.tx_paused); }},
      {"canserver_session_client_errors_total", "counter",
       "Client commands that could not be carried out (socketcand: syntax errors, unknown "
       "commands), each logged",
       [](const Subscriber& s) { return V(s.counters.client_errors); }},
      {"canserver_session_ring_high_water_frames", "gauge",
       "Most frames seen waiting for the client at once",
       [](const Subscriber& s) { return V(s.counters.ring_high_water); }},
      {"canserver_session_connected_since_seconds", "gauge", "When the client connected",
       [](const Subscriber& s) { return static_cast<double>(s.info.connected_at_ns) / 1e9; }},
  };
  for (const auto& m : kSession) {
    e.Family(m.name, m.type, m.help);
    for (const ChannelStatus& c : status.channels) {
      for (const auto& s : c.sessions) e.Sample(m.name, SessionLabels(c, *s), m.value(*s));
    }
  }
  e.Family("canserver_session_drops_total", "counter",
           "Frames the client did not get, by reason (ring_full: it did not keep up; "
           "unsupported: CAN FD for a protocol version 5 client)");
  for (const ChannelStatus& c : status.channels) {
    for (const auto& s : c.sessions) {
      const std::string labels = SessionLabels(c, *s);
      e.Sample("canserver_session_drops_total", labels + ",reason=\"ring_full\"",
               V(s->counters.drops_ring_full));
      e.Sample("canserver_session_drops_total", labels + ",reason=\"unsupported\"",
               V(s->counters.drops_unsupported));
    }
  }
  e.Family("canserver_session_tx_refused_total", "counter",
           "The client's frames refused with TransmitFail, by reason");
  for (const ChannelStatus& c : status.channels) {
    for (const auto& s : c.sessions) {
      const SessionCounters& k = s->counters;
      const std::string labels = SessionLabels(c, *s);
      e.Sample("canserver_session_tx_refused_total", labels + ",reason=\"timeout\"",
               V(k.tx_timeout));
      e.Sample("canserver_session_tx_refused_total", labels + ",reason=\"bus_error\"",
               V(k.tx_bus_error));
      e.Sample("canserver_session_tx_refused_total", labels + ",reason=\"no_fd\"", V(k.tx_no_fd));
      e.Sample("canserver_session_tx_refused_total", labels + ",reason=\"role\"",
               V(k.refused_role));
      e.Sample("canserver_session_tx_refused_total", labels + ",reason=\"lease\"",
               V(k.refused_lease));
    }
  }
  return e.Take();
}

namespace {

// The channel's lease holder, or null: {"holder": "session 7 (…)", "session": 7,
// "remaining_s": 23.5, "members": 1}.
nlohmann::json LeaseJson(const CanChannel& channel) {
  const absl::Time now = absl::Now();
  const std::optional<ChannelLease::Holder> held = channel.lease().Current(now);
  if (!held.has_value()) return nullptr;
  return {{"holder", held->who},
          {"session", held->session},
          {"remaining_s", absl::ToDoubleSeconds(held->until - now)},
          {"members", held->members}};
}

// The channel's delivery latency histogram (bus timestamp to a client's socket): per bucket, not
// cumulative, with the buckets' upper bounds in µs (the last, +Inf, as null), the sum and count.
nlohmann::json LatencyJson(const DeliveryLatency& d) {
  nlohmann::json bounds = nlohmann::json::array();
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t i = 0; i < DeliveryLatency::kBuckets; ++i) {
    bounds.push_back(i < std::size(DeliveryLatency::kBounds)
                         ? nlohmann::json(DeliveryLatency::kBounds[i] * 1e6)
                         : nlohmann::json(nullptr));
    buckets.push_back(d.bucket(i));
  }
  return {{"bounds_us", std::move(bounds)},
          {"buckets", std::move(buckets)},
          {"sum_s", d.sum_seconds()},
          {"count", d.count()}};
}

// "connected" ("connected, resumable" when the client asked), or "detached, resumable for 7 s".
std::string ConnectionState(const Subscriber& s, int64_t now_ns) {
  const int64_t until = s.detached_until_ns.load(std::memory_order_relaxed);
  if (until != 0) {
    return absl::StrFormat("detached, resumable for %d s",
                           std::max<int64_t>(0, (until - now_ns + 999'999'999) / 1'000'000'000));
  }
  return s.resumable.load(std::memory_order_relaxed) ? "connected, resumable" : "connected";
}

}  // namespace

std::optional<std::string> RenderTrafficJson(const ServerStatus& status, const std::string& channel,
                                             bool history_only) {
  for (const ChannelStatus& c : status.channels) {
    if ((channel.empty() || c.name == channel) && c.traffic != nullptr) {
      return history_only ? c.traffic->HistoryJson() : c.traffic->Json();
    }
  }
  return std::nullopt;
}

std::string RenderStatusJson(const ServerStatus& status) {
  using nlohmann::json;
  json channels = json::array();
  for (const ChannelStatus& c : status.channels) {
    const ChannelCounters& k = c.channel->counters();
    json sessions = json::array();
    for (const auto& s : c.sessions) {
      const SessionCounters& sc = s->counters;
      sessions.push_back({
          {"id", s->id},
          {"peer", s->info.peer},
          {"protocol", s->info.protocol},
          {"access", s->info.access},
          {"transport", s->info.transport},
          {"connection", ConnectionState(*s, status.now_ns)},
          {"resumes", s->resumes.load(std::memory_order_relaxed)},
          {"refused_role", sc.refused_role.Get()},
          {"refused_lease", sc.refused_lease.Get()},
          {"connected_at", static_cast<double>(s->info.connected_at_ns) / 1e9},
          {"filters", s->filters_text()},
          {"filters_readable", ReadableFilters(s->filters_text())},
          {"frames_to_client", sc.frames_to_client.Get()},
          {"frames_from_client", sc.frames_from_client.Get()},
          {"bytes_to_client", sc.bytes_to_client.Get()},
          {"bytes_from_client", sc.bytes_from_client.Get()},
          {"drops_ring_full", sc.drops_ring_full.Get()},
          {"drops_unsupported", sc.drops_unsupported.Get()},
          {"tx_written", sc.tx_written.Get()},
          {"tx_failed", sc.tx_failed.Get()},
          {"ring_high_water", sc.ring_high_water.Get()},
          {"client_errors", sc.client_errors.Get()},
      });
    }
    channels.push_back({
        {"name", c.name},
        {"info", c.info},
        {"port", c.port},
        {"capture_port", c.capture_port},
        {"tx_errors", c.timing.tx_errors},
        {"rx_errors", c.timing.rx_errors},
        {"bitrate", c.timing.bitrate},
        {"data_bitrate", c.timing.data_bitrate},
        {"state", c.timing.state.empty() ? std::string(BusStateName(c.channel->bus_state()))
                                         : c.timing.state},
        {"frames_per_second", c.frames_per_second},
        {"bus_load_percent", c.timing.bitrate > 0
                                 ? json(100.0 * c.wire_bits_per_second / c.timing.bitrate)
                                 : json(nullptr)},
        {"bus_rx", k.bus_rx.Get()},
        {"bus_tx", k.bus_tx.Get()},
        {"bus_tx_failed", k.bus_tx_failed.Get()},
        {"bus_wire_bits", k.bus_wire_bits.Get()},
        {"delivery_latency", LatencyJson(c.channel->delivery_latency())},
        {"tx_wait_latency", LatencyJson(c.channel->tx_wait_latency())},
        {"state_changes", k.state_changes.Get()},
        {"bus_off", k.bus_off.Get()},
        {"kernel_drops", k.kernel_drops.Get()},
        {"ring_drops", k.ring_drops.Get()},
        {"clients", sessions.size()},
        {"lease", LeaseJson(*c.channel)},
        {"sessions", std::move(sessions)},
    });
  }
  const json doc = {
      {"version", status.version},
      {"start_time", static_cast<double>(status.start_time_ns) / 1e9},
      {"now", static_cast<double>(status.now_ns) / 1e9},
      {"io_threads", status.io_threads},
      {"max_clients", status.max_clients},
      {"access", status.access},
      {"connections", status.connections},
      {"handshakes", status.handshakes},
      {"channels", std::move(channels)},
  };
  return doc.dump(1);
}

}  // namespace canserver
