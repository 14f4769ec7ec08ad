// AccessList: which client addresses may connect (`canserver --allow 10.1.0.0/16,::1`).
// An empty list allows everyone. IPv4 clients reaching an IPv6 listener ("::ffff:a.b.c.d")
// match IPv4 entries.
//
// Immutable after Parse(); any thread may call Allows().
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canserver {

class AccessList {
 public:
  // Each entry is an address ("192.168.1.5", "::1") or a CIDR block ("10.0.0.0/8", "fd00::/8").
  static absl::StatusOr<AccessList> Parse(const std::vector<std::string>& entries);

  bool empty() const { return blocks_.empty(); }
  bool Allows(const sockaddr* addr) const;
  bool Allows(int connected_fd) const;  // its peer address
  std::string ToString() const;

 private:
  struct Block {
    std::array<uint8_t, 16> prefix{};  // IPv4 as IPv4-mapped IPv6
    int bits = 0;                      // of the 128
    std::string text;
  };
  std::vector<Block> blocks_;
};

}  // namespace canserver
