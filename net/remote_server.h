// RemoteServer: serves one CAN channel to protocol v5 clients over TCP.
//
//   auto server = RemoteServer::Create(options, backend);   // binds; error if the port is taken
//   std::thread t([&] { (void)(*server)->ServeForever(); });
//   ...
//   (*server)->Shutdown();   // from any thread; returns once ServeForever has finished
//   t.join();
//
// Threads: the caller of ServeForever() runs the accept loop; the channel has its CAN thread;
// `io_threads` io threads own the sessions (spread round-robin at accept).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "io/can_backend.h"
#include "io/can_channel.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"
#include "net/io_thread.h"
#include "net/server_options.h"

namespace canserver {

class RemoteServer {
 public:
  // Binds the listening socket and creates the channel and io threads (started by ServeForever).
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
  // Closes the listening socket. Call after ServeForever() returned (or instead of it).
  void ServerClose();

  uint16_t port() const { return port_; }
  size_t session_count() const;
  CanChannel& channel() { return *channel_; }
  const ServerOptions& options() const { return options_; }

 private:
  RemoteServer(ServerOptions options, UniqueFd listener, std::unique_ptr<CanChannel> channel,
               Wakeup wakeup);
  void AcceptAll();
  // Tells a connection we will not serve why (best effort), before it is closed.
  static void Refuse(int fd, const std::string& reason);

  const ServerOptions options_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::unique_ptr<CanChannel> channel_;
  std::vector<std::unique_ptr<IoThread>> io_threads_;
  Wakeup stop_wakeup_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> serving_{false};
  absl::Notification finished_;
  uint64_t next_session_id_ = 1;  // accept thread only
  size_t next_thread_ = 0;        // accept thread only
};

}  // namespace canserver
