// RelayFloor: the least any server could do to bring a bus's frames to v5 clients, as the floor
// that canbench --baseline relay measures canserver against. One thread, one epoll set: it reads
// frames from the backend in batches, encodes each as a CanMessage once per batch and writes the
// batch to every client. No filters, rings, counters, slow-client policy, periodic jobs or
// transmit; a client's bytes after the handshake are read and ignored. Output a client does not
// take at once waits in that client's buffer (unbounded: a benchmark tool, not a server).
//
//   auto relay = RelayFloor::Start(backend);   // serves 127.0.0.1:relay->port()
//   ... v5 clients connect, frames flow ...
//   absl::Duration cpu = relay->CpuTime();
//   relay.reset();                              // stops and joins the thread
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/can_backend.h"
#include "io/thread_util.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"

namespace canserver {

// The floors' accept: every connection waiting on `listener`, non-blocking, TCP_NODELAY, each
// watched for EPOLLIN in `epfd`.
std::vector<UniqueFd> AcceptAll(int listener, int epfd);
// The floors' epoll set: a new one with each of `fds` watched for EPOLLIN (data.fd = the fd).
UniqueFd EpollWatching(std::initializer_list<int> fds);

class RelayFloor {
 public:
  // Listens on 127.0.0.1, an ephemeral port, and starts the relay thread on `backend`.
  static absl::StatusOr<std::unique_ptr<RelayFloor>> Start(std::shared_ptr<CanBackend> backend);
  ~RelayFloor();

  uint16_t port() const { return port_; }
  // CPU time the relay thread has used. Any thread.
  absl::Duration CpuTime() { return ThreadCpuTime(thread_); }

 private:
  RelayFloor(std::shared_ptr<CanBackend> backend, UniqueFd listener, Wakeup stop);
  void Run(std::stop_token stop);

  std::shared_ptr<CanBackend> backend_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  Wakeup stop_wakeup_;
  std::jthread thread_;
};

}  // namespace canserver
