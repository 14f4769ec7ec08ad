// Settings of a RemoteServer. Every limit is here, with the default canserver's flags show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/bitrate_policy.h"
#include "core/cpu_affinity.h"
#include "core/v5_codec.h"
#include "net/access_list.h"
#include "net/access_rules.h"
#include "net/resumable_sessions.h"
#include "net/socket_util.h"
#include "net/tls.h"

namespace canserver {

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = v5::kDefaultPort;  // 0: any free port (tests)
  // socketcand's ASCII protocol for every channel on this port (canserver's default 29536);
  // nullopt: off; 0: any free port (tests).
  std::optional<uint16_t> socketcand_port;
  // pcapng for Wireshark (`dumpcap -i TCP@HOST:PORT`): channel i on capture_port + i; nullopt:
  // off; 0: any free port for each (tests).
  std::optional<uint16_t> capture_port;
  // socketcand's discovery beacon (net/beacon.h) every 2 s, with the socketcand listener only;
  // sent to every interface's broadcast address and to each of beacon_to.
  bool beacon = false;
  std::vector<HostPort> beacon_to;
  int io_threads = 2;
  // The CAN thread writes frames straight to a v5/v6 client's socket while its io thread sleeps
  // with nothing pending for it (io/subscriber.h, SocketLoan); false: always through the io thread.
  bool direct_write = true;
  CpuAffinity cpu_affinity;  // --cpu-affinity: where the CAN and io threads run (none: anywhere)
  // > 0: the rate BusResponse reports for a bus without bit timing (canserver also sets it on
  // buses that have bit timing, at start).
  int32_t forced_bitrate = 0;
  BitratePolicy bitrate_policy = BitratePolicy::kCheck;
  AccessList allow;    // empty: anyone may connect
  AccessRules access;  // roles per channel (net/access_rules.h); none: everyone configures
  // TLS on the v5/v6 ports, detected per connection (net/tls.h); null: plain text only.
  std::shared_ptr<TlsServer> tls;

  // Limits. Memory per session is about (ring_frames + client_tx_frames) * 80 B +
  // output_buffer_bytes.
  size_t ring_frames = 8192;               // frames waiting for one client
  size_t output_buffer_bytes = 256 << 10;  // encoded bytes waiting for one client's socket
  size_t max_clients = 256;
  // Per address, handshaking or open: a rig's PC runs a handful (a test script, a logger, a
  // dashboard, a flashing tool); 0: no limit. net/admission.h.
  size_t max_clients_per_address = 16;
  // Connections that have not opened a bus yet; silent ones are closed after handshake_timeout.
  size_t max_handshakes = 64;
  // Open sessions of one channel; 0: only max_clients.
  size_t max_clients_per_channel = 64;
  size_t client_tx_frames = 1024;  // frames from one client waiting for the bus
  // The kernel receive buffer of each client's socket (SO_RCVBUF on the listener, which the
  // kernel doubles for its bookkeeping). It bounds how far a sending client runs ahead of a busy
  // bus; with the kernel's autotuning (0) a burst vanishes into it and the client never feels the
  // bus rate (docs/benchmarks.md, "The client's receive window").
  size_t client_rcvbuf_bytes = 16 << 10;
  // The kernel send buffer of each client's socket (SO_SNDBUF, doubled by the kernel), fixed so
  // that clients that stop reading cannot hold megabytes each of kernel memory (autotuning grows
  // it to 4 MiB; docs/reliability.md). 0: autotuning.
  size_t client_sndbuf_bytes = 64 << 10;
  // The bus took nothing for this long: waiting frames are refused (TransmitFail). Zero: never.
  absl::Duration tx_timeout = absl::Seconds(1);
  size_t max_periodic_jobs = 64;  // per session
  // The shortest period a job may have (both protocols: socketcand's "add" takes microseconds).
  absl::Duration min_periodic_period = absl::Milliseconds(1);
  // Frames per second all periodic jobs of one channel may add up to; 0: what the bus carries at
  // its bit rate (shortest frames: 50 bits each), or kDefaultPeriodicRate without bit timing.
  int64_t max_periodic_rate = 0;
  static constexpr int64_t kDefaultPeriodicRate = 10'000;
  size_t write_budget_bytes = 64 << 10;  // bytes one session may write per wakeup (fairness)

  absl::Duration handshake_timeout = absl::Seconds(10);
  // A client whose ring keeps overflowing this long is disconnected; zero: never, only drop.
  absl::Duration slow_client_timeout = absl::Seconds(10);
  // A client that vanished without a word is found dead within about this (TCP keepalive and
  // TCP_USER_TIMEOUT, net/socket_util.h SetKeepalive); zero: the kernel's defaults (minutes).
  absl::Duration keepalive = absl::Seconds(10);
  // A session whose client asked for it (ResumeRequest) outlives a broken connection this long:
  // its filters and periodic jobs go on, its ring fills (bounded, overflow counted), and the
  // client may take it back with its token (net/resumable_sessions.h). Zero: sessions end with
  // their connection.
  absl::Duration resume_grace = absl::Seconds(10);
  // Frames a resumable session keeps of what it sent, to send again what a broken connection
  // lost in transit (80 B each).
  size_t resume_replay_frames = 4096;
  // The server's resumable sessions; RemoteServer::Create makes it when resume_grace > 0.
  std::shared_ptr<ResumableSessions> resumable;
  absl::Duration stats_interval = absl::ZeroDuration();  // periodic summary log; zero: none
  absl::Duration shutdown_grace = absl::Seconds(2);      // flushing to clients on shutdown
};

}  // namespace canserver
