#include "net/access_list.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace canserver {
namespace {

std::array<uint8_t, 16> Mapped(const in_addr& v4) {
  std::array<uint8_t, 16> out{};
  out[10] = out[11] = 0xFF;
  std::memcpy(out.data() + 12, &v4, 4);
  return out;
}

}  // namespace

absl::StatusOr<AccessList> AccessList::Parse(const std::vector<std::string>& entries) {
  AccessList list;
  for (const std::string& entry : entries) {
    if (absl::StripAsciiWhitespace(entry).empty()) {
      return absl::InvalidArgumentError(
          "--allow has an empty entry (an empty value or a stray comma), which would let "
          "everyone in; list addresses or CIDR blocks, e.g. --allow 10.1.0.0/16,::1, or leave "
          "--allow out to allow everyone");
    }
    const size_t slash = entry.find('/');
    const std::string addr = entry.substr(0, slash);
    Block block;
    block.text = entry;
    int max_bits;
    in_addr v4;
    in6_addr v6;
    if (::inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
      block.prefix = Mapped(v4);
      max_bits = 32;
    } else if (::inet_pton(AF_INET6, addr.c_str(), &v6) == 1) {
      std::memcpy(block.prefix.data(), &v6, 16);
      max_bits = 128;
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("--allow '%s': '%s' is not an IPv4 or IPv6 address", entry, addr));
    }
    int bits = max_bits;
    if (slash != std::string::npos &&
        (!absl::SimpleAtoi(entry.substr(slash + 1), &bits) || bits < 0 || bits > max_bits)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--allow '%s': prefix length must be 0..%d", entry, max_bits));
    }
    block.bits = bits + (max_bits == 32 ? 96 : 0);
    list.blocks_.push_back(block);
  }
  return list;
}

bool AccessList::Allows(const sockaddr* addr) const {
  if (blocks_.empty()) return true;
  std::array<uint8_t, 16> peer{};
  if (addr->sa_family == AF_INET) {
    peer = Mapped(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
  } else if (addr->sa_family == AF_INET6) {
    std::memcpy(peer.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
  } else {
    return false;
  }
  for (const Block& b : blocks_) {
    const int whole = b.bits / 8;
    const int rest = b.bits % 8;
    if (std::memcmp(peer.data(), b.prefix.data(), whole) != 0) continue;
    if (rest != 0) {
      const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
      if ((peer[whole] & mask) != (b.prefix[whole] & mask)) continue;
    }
    return true;
  }
  return false;
}

bool AccessList::Allows(int connected_fd) const {
  if (blocks_.empty()) return true;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(connected_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  return Allows(reinterpret_cast<const sockaddr*>(&ss));
}

std::string AccessList::ToString() const {
  if (blocks_.empty()) return "everyone";
  return absl::StrJoin(blocks_, ",", [](std::string* out, const Block& b) { out->append(b.text); });
}

}  // namespace canserver
