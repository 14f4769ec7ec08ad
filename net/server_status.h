// ServerStatus: what the server is doing right now — channels, their bus, counters and clients —
// as /metrics (Prometheus text exposition) and /api/status (JSON) show it.
//
//   ServerStatus status = server.Status();      // any thread; a snapshot of the session list
//   std::string text = RenderMetrics(status);   // counters are read live while rendering
//
// The snapshot holds shared_ptrs to the sessions' Subscribers (counters and who the client is)
// and pointers to channels, which live as long as the server. Series of a session that closed
// are simply absent from the next snapshot, so the metrics' cardinality follows the open
// sessions (at most --max-clients).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/can_backend.h"
#include "io/can_channel.h"
#include "io/subscriber.h"

namespace canserver {

class TrafficView;

struct ChannelStatus {
  std::string name;  // "can0"
  std::string info;  // "socketcan channel 'can0'"
  uint16_t port = 0;
  uint16_t capture_port = 0;  // pcapng for Wireshark; 0: off
  BusTiming timing;  // bit rate, data bit rate, state and error counters where the bus has them
  double frames_per_second = 0;  // bus_rx + bus_tx over the last few seconds (RemoteServer::Status)
  double wire_bits_per_second = 0;  // bus_wire_bits over the same time: the bus load
  const CanChannel* channel = nullptr;
  TrafficView* traffic = nullptr;  // the status page's view of the traffic (thread-safe)
  std::vector<std::shared_ptr<const Subscriber>> sessions;
};

struct ServerStatus {
  std::string version;
  int64_t start_time_ns = 0;  // CLOCK_REALTIME
  int64_t now_ns = 0;
  int io_threads = 0;
  size_t max_clients = 0;
  std::string access;  // the --access rules in force (AccessRules::ToString)
  std::vector<ChannelStatus> channels;
  // Connections: held now (handshaking or open), still handshaking, and refused since the start
  // by reason ("full", "per_address", "handshakes", "channel", "not_allowed", "no_fds").
  size_t connections = 0;
  size_t handshakes = 0;
  std::vector<std::pair<std::string, uint64_t>> refused;
  uint64_t log_lines_suppressed = 0;  // CS_LOG_LIMITED (core/log.h)
  // /proc/net/sockstat: the whole machine's TCP sockets (canserver's limits bound its own share).
  int64_t tcp_memory_bytes = -1;  // -1: not readable
  int64_t tcp_orphans = -1;
};

// /proc/net/sockstat's TCP line (TCP memory in bytes, orphaned sockets); -1 where unreadable.
void ReadTcpSockstat(int64_t* memory_bytes, int64_t* orphans);

// Prometheus text exposition format 0.0.4: every counter the server keeps, per channel and per
// session, the delivery latency histogram, and process figures.
std::string RenderMetrics(const ServerStatus& status);

// The same as JSON for scripts and the status page (docs/operations.md describes the fields).
std::string RenderStatusJson(const ServerStatus& status);
// /api/traffic?channel=NAME: the channel's TrafficView as JSON (the first channel without a
// name); nullopt for a channel that does not exist.
// `history_only`: the bus load's history alone (the view does not start watching the channel).
std::optional<std::string> RenderTrafficJson(const ServerStatus& status, const std::string& channel,
                                             bool history_only = false);

// The status page: one HTML document without external assets that polls /api/status.
const std::string& StatusPageHtml();

}  // namespace canserver
