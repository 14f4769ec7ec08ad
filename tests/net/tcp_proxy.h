// TcpProxy: a TCP relay between clients and a server on loopback, for tests of broken
// connections. Cut() resets every connection through it at once, both ways, and resets new ones
// while it is down (a switch rebooting, a Wi-Fi drop with the peer's stack answering); Restore()
// lets connections through again. (A black hole, where packets vanish and nobody answers, is a
// network namespace with its loopback down: see reliability_test.cc.)
//
// Thread-safe: the relay runs on its own thread; every method may be called from any thread.
#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/unique_fd.h"
#include "net/socket_util.h"

namespace canserver::testing {

class TcpProxy {
 public:
  explicit TcpProxy(uint16_t target_port) : target_port_(target_port) {
    absl::StatusOr<UniqueFd> listener = ListenTcp(HostPort{"127.0.0.1", 0});
    if (listener.ok()) listener_ = *std::move(listener);
    port_ = listener_.valid() ? LocalPort(listener_.get()) : 0;
    thread_ = std::thread([this] { Run(); });
  }
  ~TcpProxy() {
    stop_ = true;
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // Resets every connection (both sides) now, and each new one until Restore().
  void Cut() {
    down_ = true;
    cut_ = true;
  }
  void Restore() { down_ = false; }
  // Connections relayed so far.
  size_t connections() const { return connections_.load(); }

 private:
  struct Pair {
    UniqueFd client;
    UniqueFd server;
  };
  static void Reset(UniqueFd& fd) {
    const linger reset{1, 0};
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    fd.Reset();
  }
  // Copies what `from` has to `to`; false at the end of either.
  static bool Relay(int from, int to) {
    char buf[16 << 10];
    const ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::send(to, buf + done, static_cast<size_t>(n - done), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return false;
        pollfd p{to, POLLOUT, 0};
        (void)::poll(&p, 1, 10);
        continue;
      }
      done += w;
    }
    return true;
  }
  void Run() {
    std::vector<Pair> pairs;
    while (!stop_) {
      if (cut_.exchange(false)) {
        for (Pair& p : pairs) {
          Reset(p.client);
          Reset(p.server);
        }
        pairs.clear();
      }
      std::vector<pollfd> fds{{listener_.get(), POLLIN, 0}};
      for (const Pair& p : pairs) {
        fds.push_back({p.client.get(), POLLIN, 0});
        fds.push_back({p.server.get(), POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 5) <= 0) continue;
      const size_t polled = pairs.size();  // a pair accepted now has no entry in fds yet
      if (fds[0].revents & POLLIN) {
        UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (client.valid() && down_) {
          Reset(client);
        } else if (client.valid()) {
          absl::StatusOr<UniqueFd> server =
              ConnectTcp(HostPort{"127.0.0.1", target_port_}, absl::Seconds(5));
          if (server.ok()) {
            pairs.push_back({std::move(client), *std::move(server)});
            ++connections_;
          }
        }
      }
      std::vector<Pair> kept;
      for (size_t i = 0; i < pairs.size(); ++i) {
        if (i >= polled) {
          kept.push_back(std::move(pairs[i]));
          continue;
        }
        const pollfd& c = fds[1 + 2 * i];
        const pollfd& s = fds[2 + 2 * i];
        bool alive = true;
        if (c.revents & (POLLIN | POLLHUP | POLLERR)) alive = Relay(c.fd, s.fd);
        if (alive && (s.revents & (POLLIN | POLLHUP | POLLERR))) alive = Relay(s.fd, c.fd);
        if (alive) {
          kept.push_back(std::move(pairs[i]));
        } else {
          Reset(pairs[i].client);  // one side ended: so does the other
          Reset(pairs[i].server);
        }
      }
      pairs = std::move(kept);
    }
  }

  const uint16_t target_port_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> down_{false};
  std::atomic<bool> cut_{false};
  std::atomic<size_t> connections_{0};
  std::thread thread_;
};

// Takes the loopback interface of the caller's network namespace up or down: down, packets
// vanish and nobody says goodbye (a black hole). Run in a namespace of the test's own
// (unshare(CLONE_NEWNET)).
inline bool SetLoopback(bool up) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return false;
  if (up) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  }
  return ::ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0;
}

// A network namespace of the test's own (its loopback up), so a test may take the network away;
// the loopback is brought up again when this goes away, for the tests after it in the process.
// ok() is false where unshare(CLONE_NEWNET) is not allowed (needs CAP_SYS_ADMIN): skip then.
class OwnNetwork {
 public:
  OwnNetwork() : error_(::unshare(CLONE_NEWNET) == 0 ? 0 : errno) {
    if (error_ == 0 && !SetLoopback(true)) error_ = EPERM;
  }
  ~OwnNetwork() {
    if (error_ == 0) SetLoopback(true);
  }
  bool ok() const { return error_ == 0; }
  std::string why() const {
    return absl::StrCat("no network namespace of our own (", std::strerror(error_),
                        "; needs CAP_SYS_ADMIN)");
  }

 private:
  int error_;
};

}  // namespace canserver::testing
