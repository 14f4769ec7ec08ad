// Wakeup: an eventfd that one thread sleeps on (in its epoll set) and others poke.
//
// Notify() is cheap but still a syscall, so callers notify only on an empty→non-empty edge
// (see Subscriber::ArmWakeup and CanChannel's sleeping flag), never per frame.
#pragma once

#include "absl/status/statusor.h"
#include "io/unique_fd.h"

namespace canserver {

class Wakeup {
 public:
  static absl::StatusOr<Wakeup> Create();

  int fd() const { return fd_.get(); }
  // Makes fd() readable. Thread-safe.
  void Notify() const noexcept;
  // Clears readability. Owner thread only.
  void Drain() const noexcept;

 private:
  explicit Wakeup(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace canserver
