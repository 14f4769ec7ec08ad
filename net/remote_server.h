// RemoteServer: serves one or more CAN channels to protocol v5 clients over TCP, each channel on
// its own port, and optionally to socketcand clients on one more port (a client opens a channel by
// name), all of them on one set of io threads.
//
//   std::vector<ServedChannel> channels = {{can0_backend, 54701}, {can1_backend, 54702}};
//   auto server = RemoteServer::Create(options, std::move(channels));  // binds every port
//   std::thread t([&] { (void)(*server)->ServeForever(); });
//   ...
//   (*server)->Shutdown();   // from any thread; returns once ServeForever has finished
//   t.join();
//
// Threads: the caller of ServeForever() runs the accept loop for every listener; each channel has
// its CAN thread (its own rings and counters); `io_threads` io threads own the sessions of all
// channels (spread round-robin at accept).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "io/can_backend.h"
#include "io/can_channel.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"
#include "net/admission.h"
#include "net/beacon.h"
#include "net/io_thread.h"
#include "net/server_options.h"
#include "net/server_status.h"
#include "net/traffic_view.h"

namespace canserver {

// One channel to serve: its backend and the TCP port its clients connect to (0: any free port).
struct ServedChannel {
  std::shared_ptr<CanBackend> backend;
  uint16_t port = 0;
};

class RemoteServer {
 public:
  // Binds every channel's listening socket on options.host and creates the channels and io
  // threads (started by ServeForever). Errors name the channel and the port.
  static absl::StatusOr<std::unique_ptr<RemoteServer>> Create(ServerOptions options,
                                                              std::vector<ServedChannel> channels,
                                                              bool error_frames = false);
  // One channel on options.port.
  static absl::StatusOr<std::unique_ptr<RemoteServer>> Create(ServerOptions options,
                                                              std::shared_ptr<CanBackend> backend,
                                                              bool error_frames = false);
  ~RemoteServer();

  // Accepts and serves clients until Shutdown(). Call once, from one thread.
  absl::Status ServeForever();
  // Stops accepting, tells every session "server shutting down", flushes (bounded by
  // shutdown_grace) and closes them, stops the threads. Returns once ServeForever() has finished
  // (at once if it never ran). Thread-safe; idempotent.
  void Shutdown();
  // Closes the listening sockets. Call after ServeForever() returned (or instead of it).
  void ServerClose();

  size_t channel_count() const { return channels_.size(); }
  // The port and channel of channel `i` (in the order given to Create). Thread-safe.
  uint16_t port(size_t i = 0) const { return channels_[i].port; }
  // Channel i's capture (pcapng) port; 0 when --capture-port is off.
  uint16_t capture_port(size_t i = 0) const { return channels_[i].capture_port; }
  // The socketcand listener's port; 0 when it is off.
  uint16_t socketcand_port() const { return socketcand_port_; }
  CanChannel& channel(size_t i = 0) { return *channels_[i].channel; }
  size_t session_count() const;
  // CPU time the CAN threads and io threads have used (the accepting thread, idle under load, is
  // not counted). Call while the server runs, e.g. before and after a benchmark. Thread-safe.
  absl::Duration ThreadCpuTime();
  // Channels, their bus and counters, and the sessions on each, for /metrics and the status page.
  // Thread-safe (one netlink query per channel for the bus's timing).
  ServerStatus Status();
  const ServerOptions& options() const { return options_; }
  // The CAN and io threads ("can:vcan0", "io:1") whose loops have not passed since a call at
  // least `quiet` ago: wedged. Every thread passes at least once a second when idle, so `quiet`
  // of a few seconds never names a healthy one. Call from one thread (the watchdog's).
  std::vector<std::string> StalledThreads(absl::Duration quiet);
  // Connections held (handshaking or open) and still handshaking. Thread-safe.
  const Admission& admission() const { return *admission_; }

 private:
  struct Served {
    UniqueFd listener;
    uint16_t port = 0;
    std::unique_ptr<CanChannel> channel;
    UniqueFd capture_listener;  // --capture-port
    uint16_t capture_port = 0;
    std::unique_ptr<TrafficView> traffic;  // the status page's; after `channel`: goes first
  };
  RemoteServer(ServerOptions options, std::vector<Served> channels, Wakeup wakeup);
  // Accepts on `listener`, whose clients speak `front_end`: a channel's (v5, capture) or the
  // socketcand one (channel == kSocketcand: the client names its channel later).
  void AcceptAll(int listener, size_t channel, const FrontEnd& front_end);
  static constexpr size_t kSocketcand = SIZE_MAX;
  // Tells a connection we will not serve why (best effort), before it is closed.
  static void Refuse(int fd, const FrontEnd& front_end, const std::string& reason);
  // accept() found no free file descriptor: refuses the waiting connections with the reserve
  // descriptor, so they hear why, and stops accepting for kAcceptPause instead of spinning.
  void OutOfDescriptors(int listener, const FrontEnd& front_end, int error);
  void PauseAccepting(bool paused);
  static constexpr absl::Duration kAcceptPause = absl::Milliseconds(250);
  static constexpr size_t kRefusedPerPause = 64;

  // Bus frame counts sampled by Status(), for a frames/s figure over the last seconds.
  struct RateSample {
    int64_t at_ns;
    uint64_t frames;
    uint64_t wire_bits;
  };
  struct ChannelRates {
    double frames_per_second = 0;
    double wire_bits_per_second = 0;
  };
  // Frames and wire bits per second on `channel` over the last 1..2 s, from the counters now.
  ChannelRates Rates(size_t channel, int64_t now_ns, uint64_t frames, uint64_t wire_bits);

  const ServerOptions options_;
  const int64_t start_time_ns_;
  std::mutex rates_mu_;
  std::vector<std::deque<RateSample>> rate_samples_;  // per channel; guarded by rates_mu_
  std::vector<Served> channels_;
  UniqueFd socketcand_listener_;
  uint16_t socketcand_port_ = 0;
  std::unique_ptr<Beacon> beacon_;        // accept thread, once serving
  std::unique_ptr<Admission> admission_;  // before io_threads_: sessions hold its tickets
  std::vector<std::unique_ptr<IoThread>> io_threads_;
  EventLoop* accept_loop_ = nullptr;  // accept thread, while serving
  UniqueFd resume_timer_;             // ends an accept pause
  UniqueFd reserve_fd_;               // kept free for OutOfDescriptors
  bool accept_paused_ = false;        // accept thread only
  struct Progress {
    uint64_t passes = 0;
    absl::Time since;  // when `passes` was first seen
  };
  std::map<std::string, Progress> progress_;  // StalledThreads' caller only
  std::atomic<uint64_t> refused_not_allowed_{0};
  std::atomic<uint64_t> refused_no_fds_{0};
  Wakeup stop_wakeup_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> serving_{false};
  absl::Notification finished_;
  uint64_t next_session_id_ = 1;  // accept thread only
  size_t next_thread_ = 0;        // accept thread only
};

}  // namespace canserver
