#include "net/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace canserver {
namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

absl::StatusOr<AddrInfoPtr> Resolve(const HostPort& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string port = std::to_string(address.port);
  addrinfo* result = nullptr;
  const char* host = address.host.empty() ? nullptr : address.host.c_str();
  const int rc = ::getaddrinfo(host, port.c_str(), &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot resolve '%s': %s", address.ToString(), ::gai_strerror(rc)));
  }
  return AddrInfoPtr(result);
}

std::string SockaddrToString(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return absl::StrCat(host, ":", port);
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return absl::StrCat("[", host, "]:", port);
  }
  return "?";
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, uint16_t default_port) {
  HostPort out{std::string(text), default_port};
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrFormat("'%s': missing ']'", text));
    }
    out.host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return absl::InvalidArgumentError(absl::StrFormat("'%s': expected ':' after ']'", text));
      }
      port_text = rest.substr(1);
    }
  } else if (const size_t colon = text.rfind(':'); colon != absl::string_view::npos) {
    if (text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s': write IPv6 addresses as [addr]:port", text));
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (!port_text.empty()) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s': port '%s' is not a number from 0 to 65535", text, port_text));
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

absl::Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus("fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

absl::Status SetNoDelay(int fd) {
  const int on = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) {
    return ErrnoStatus("setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

absl::Status SetKeepalive(int fd, absl::Duration dead_after, absl::Duration unacked_limit) {
  if (dead_after <= absl::ZeroDuration()) return absl::OkStatus();
  const int64_t seconds = std::max<int64_t>(3, absl::ToInt64Seconds(dead_after));
  const int on = 1;
  const int idle = static_cast<int>(std::max<int64_t>(1, seconds / 2));
  const int interval = static_cast<int>(std::max<int64_t>(1, seconds / 6));
  const int probes = 3;
  if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) != 0) {
    return ErrnoStatus("setsockopt(keepalive)");
  }
  if (unacked_limit > absl::ZeroDuration()) {
    const unsigned ms = static_cast<unsigned>(absl::ToInt64Milliseconds(unacked_limit));
    if (::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
      return ErrnoStatus("setsockopt(TCP_USER_TIMEOUT)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ListenTcp(const HostPort& address, int backlog, int rcvbuf, int sndbuf) {
  ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(address, /*passive=*/true));
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
      last = ErrnoStatus(absl::StrCat("socket() for ", address.ToString()));
      continue;
    }
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (rcvbuf > 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
      last = ErrnoStatus(absl::StrCat("setsockopt(SO_RCVBUF) for ", address.ToString()));
      continue;
    }
    if (sndbuf > 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0) {
      last = ErrnoStatus(absl::StrCat("setsockopt(SO_SNDBUF) for ", address.ToString()));
      continue;
    }
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = ErrnoStatus(absl::StrCat("bind(", address.ToString(), ")"));
      continue;
    }
    if (::listen(fd.get(), backlog) != 0) {
      last = ErrnoStatus(absl::StrCat("listen(", address.ToString(), ")"));
      continue;
    }
    return fd;
  }
  return last;
}

uint16_t LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return SockaddrToString(reinterpret_cast<sockaddr*>(&ss));
}

void ResetOnClose(int fd) {
  const linger reset{1, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
}

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
  } else if (ss.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {  // an IPv4 client of an IPv6 listener is that IPv4 host
      ::inet_ntop(AF_INET, &a.s6_addr[12], host, sizeof host);
    } else {
      ::inet_ntop(AF_INET6, &a, host, sizeof host);
    }
  }
  return host;
}

absl::StatusOr<UniqueFd> ConnectTcp(const HostPort& address, absl::Duration timeout) {
  ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(address, /*passive=*/false));
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) continue;
    const std::string what = absl::StrCat("connect(", address.ToString(), ")");
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = ErrnoStatus(what);
        continue;
      }
      pollfd p{fd.get(), POLLOUT, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      if (rc == 0) {
        last = absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (rc < 0 || err != 0) {
        last = ErrnoStatus(what, rc < 0 ? errno : err);
        continue;
      }
    }
    const int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    RETURN_IF_ERROR(SetNoDelay(fd.get()));
    RETURN_IF_ERROR(SetKeepalive(fd.get(), kClientKeepalive));
    return fd;
  }
  return last;
}

}  // namespace canserver
