// A socketcand client on a raw socket for tests: sends text, reads elements one at a time.
#pragma once

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "io/unique_fd.h"
#include "net/socket_util.h"

namespace canserver::testing {

// A socketcand client on a raw socket: sends text, reads elements.
class SocketcandClient {
 public:
  explicit SocketcandClient(uint16_t port, int rcvbuf = 0) {
    if (rcvbuf > 0) {
      fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    } else {
      auto fd = ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
      EXPECT_TRUE(fd.ok()) << fd.status();
      if (fd.ok()) fd_ = *std::move(fd);
    }
  }
  void Send(const std::string& text) {
    ASSERT_EQ(::send(fd_.get(), text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  }
  // The next element ("< ok >"), or "" after `timeout` or at EOF.
  std::string Next(absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const size_t open = buf_.find('<');
      const size_t close = buf_.find('>', open == std::string::npos ? 0 : open);
      if (open != std::string::npos && close != std::string::npos) {
        std::string element = buf_.substr(open, close - open + 1);
        buf_.erase(0, close + 1);
        return element;
      }
      const int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p{fd_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, left) <= 0) return "";
      char chunk[4096];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n <= 0) {
        eof_ = true;
        return "";
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  bool eof() const { return eof_; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string buf_;
  bool eof_ = false;
};

// "< frame ID SECONDS DATA >" → "ID#DATA" (spaces between data bytes or not).
inline std::string FrameText(const std::string& element) {
  std::vector<std::string> w = absl::StrSplit(element, ' ', absl::SkipEmpty());
  if (w.size() < 4 || w[1] != "frame") return "not a frame: " + element;
  std::string data;
  for (size_t i = 4; i + 1 < w.size(); ++i) data += w[i];
  return w[2] + "#" + data;
}

}  // namespace canserver::testing
