#include "io/event_loop.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return ErrnoStatus("epoll_create1");
  return std::unique_ptr<EventLoop>(new EventLoop(UniqueFd(fd)));
}

absl::Status EventLoop::Add(int fd, uint32_t events, Handler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
  }
  handlers_[fd] = std::make_shared<Handler>(std::move(handler));
  return absl::OkStatus();
}

absl::Status EventLoop::Modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return ErrnoStatus(absl::StrCat("epoll_ctl(MOD, fd ", fd, ")"));
  }
  return absl::OkStatus();
}

void EventLoop::Remove(int fd) {
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

absl::StatusOr<int> EventLoop::Poll(int timeout_ms) {
  epoll_event events[64];
  const int n = ::epoll_wait(epfd_.get(), events, 64, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return ErrnoStatus("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    auto it = handlers_.find(events[i].data.fd);
    if (it == handlers_.end()) continue;  // removed by an earlier handler in this batch
    std::shared_ptr<Handler> handler = it->second;
    (*handler)(events[i].events);
  }
  return n;
}

}  // namespace canserver
