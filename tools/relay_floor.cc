#include "tools/relay_floor.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "core/status_macros.h"
#include "core/v5_codec.h"
#include "net/socket_util.h"

namespace canserver {
namespace {

struct Client {
  UniqueFd fd;
  bool answered = false;  // BusResponse sent
  std::string out;        // bytes the socket did not take yet
  bool want_out = false;  // EPOLLOUT registered
};

// Writes what `c` has pending; watches for room when the socket is full.
void Flush(int epfd, Client& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    c.out.erase(0, static_cast<size_t>(n));
  }
  const bool want = !c.out.empty();
  if (want != c.want_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    ev.data.fd = c.fd.get();
    (void)::epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd.get(), &ev);
    c.want_out = want;
  }
}

}  // namespace

UniqueFd EpollWatching(std::initializer_list<int> fds) {
  UniqueFd epfd(::epoll_create1(EPOLL_CLOEXEC));
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    (void)::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  return epfd;
}

std::vector<UniqueFd> AcceptAll(int listener, int epfd) {
  std::vector<UniqueFd> accepted;
  while (true) {
    UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn.valid()) break;
    (void)SetNoDelay(conn.get());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = conn.get();
    (void)::epoll_ctl(epfd, EPOLL_CTL_ADD, conn.get(), &ev);
    accepted.push_back(std::move(conn));
  }
  return accepted;
}

absl::StatusOr<std::unique_ptr<RelayFloor>> RelayFloor::Start(std::shared_ptr<CanBackend> backend) {
  ASSIGN_OR_RETURN(UniqueFd listener, ListenTcp({"127.0.0.1", 0}));
  RETURN_IF_ERROR(SetNonBlocking(listener.get()));
  ASSIGN_OR_RETURN(Wakeup stop, Wakeup::Create());
  std::unique_ptr<RelayFloor> relay(
      new RelayFloor(std::move(backend), std::move(listener), std::move(stop)));
  relay->thread_ = std::jthread([r = relay.get()](std::stop_token s) { r->Run(s); });
  return relay;
}

RelayFloor::RelayFloor(std::shared_ptr<CanBackend> backend, UniqueFd listener, Wakeup stop)
    : backend_(std::move(backend)),
      listener_(std::move(listener)),
      port_(LocalPort(listener_.get())),
      stop_wakeup_(std::move(stop)) {}

RelayFloor::~RelayFloor() {
  thread_.request_stop();
  stop_wakeup_.Notify();
  if (thread_.joinable()) thread_.join();
}

void RelayFloor::Run(std::stop_token stop) {
  NameThisThread("relay");
  UniqueFd epfd = EpollWatching({listener_.get(), stop_wakeup_.fd(), backend_->rx_fd()});
  std::map<int, Client> clients;
  CanFrame frames[256];
  std::string batch;
  char scratch[4096];
  while (!stop.stop_requested()) {
    // The bus first, as long as it has frames: one encoding per frame, one write per client.
    uint64_t kernel_drops = 0;
    const size_t n = backend_->Receive(frames, std::size(frames), &kernel_drops);
    if (n > 0) {
      batch.clear();
      uint8_t wire[v5::kCanMessageSize];
      for (size_t i = 0; i < n; ++i) {
        if (v5::EncodeCanMessage(frames[i], wire)) {
          batch.append(reinterpret_cast<const char*>(wire), sizeof wire);
        }
      }
      for (auto& [fd, c] : clients) {
        if (!c.answered) continue;
        c.out += batch;
        Flush(epfd.get(), c);
      }
      continue;
    }
    if (!backend_->PrepareSleep()) continue;
    epoll_event events[64];
    const int ready = ::epoll_wait(epfd.get(), events, 64, -1);
    backend_->WakeDone();
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_wakeup_.fd() || fd == backend_->rx_fd()) continue;
      if (fd == listener_.get()) {
        for (UniqueFd& conn : AcceptAll(listener_.get(), epfd.get())) {
          const int key = conn.get();
          clients[key].fd = std::move(conn);
        }
        continue;
      }
      auto it = clients.find(fd);
      if (it == clients.end()) continue;
      Client& c = it->second;
      if (events[i].events & EPOLLOUT) Flush(epfd.get(), c);
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        const ssize_t got = ::recv(fd, scratch, sizeof scratch, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
          clients.erase(it);  // closing the fd leaves the epoll set
          continue;
        }
        if (got > 0 && !c.answered) {
          // The client's BusRequest (and FilterConfig): answer it, ignore what it asked.
          (void)v5::Encode(v5::BusResponse{"relay floor (canbench)"}, &c.out);
          c.answered = true;
          Flush(epfd.get(), c);
        }
      }
    }
  }
}

}  // namespace canserver
