#include "io/wakeup.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "core/status_macros.h"

namespace canserver {

absl::StatusOr<Wakeup> Wakeup::Create() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus("eventfd");
  return Wakeup(UniqueFd(fd));
}

void Wakeup::Notify() const noexcept {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the fd is readable anyway.
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

void Wakeup::Drain() const noexcept {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd_.get(), &value, sizeof value);
}

}  // namespace canserver
