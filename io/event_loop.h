// EventLoop: a small epoll wrapper. Handlers are registered per fd and called with the ready
// event mask; the loop knows nothing about protocols.
//
//   std::unique_ptr<EventLoop> loop = *EventLoop::Create();
//   (void)loop->Add(fd, EPOLLIN, [&](uint32_t events) { ... });
//   while (running) (void)loop->Poll(timeout_ms);
// (tests/core/header_examples_test.cc compiles this example.)
//
// Owner thread only: every method must be called from the thread that runs Poll().
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/unique_fd.h"

namespace canserver {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();

  absl::Status Add(int fd, uint32_t events, Handler handler);
  absl::Status Modify(int fd, uint32_t events);
  // Safe to call from inside a handler, also for the fd being handled.
  void Remove(int fd);

  // Waits up to timeout_ms (-1: forever) and dispatches ready handlers. Returns the number of
  // events handled, or an error if epoll_wait failed for a reason other than EINTR.
  absl::StatusOr<int> Poll(int timeout_ms);

 private:
  explicit EventLoop(UniqueFd epfd) : epfd_(std::move(epfd)) {}
  UniqueFd epfd_;
  // shared_ptr so a handler that removes itself does not destroy the function it is running in.
  std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
};

}  // namespace canserver
