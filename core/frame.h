// CanFrame: one CAN or CAN FD frame as it travels through canserver.
//
// A plain value type (trivially copyable, 80 bytes) so rings can hold it without allocation.
// Classic frames use up to 8 data bytes; CAN FD frames (kCanFlagFd) up to 64, in one of the FD
// lengths (IsCanFdLength).
//
//   CanFrame f = CanFrame::Classic(0x123, {0x01, 0x02});
//   f.flags |= kCanFlagExtended;
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>

namespace canserver {

inline constexpr uint32_t kCanStdIdMax = 0x7FF;
inline constexpr uint32_t kCanExtIdMax = 0x1FFFFFFF;
inline constexpr uint8_t kCanClassicMaxLen = 8;
inline constexpr uint8_t kCanFdMaxLen = 64;

// Bits of CanFrame::flags. The low three match protocol v5's CanMessage flags on purpose.
inline constexpr uint8_t kCanFlagExtended = 0x01;
inline constexpr uint8_t kCanFlagRemote = 0x02;
inline constexpr uint8_t kCanFlagError = 0x04;
inline constexpr uint8_t kCanFlagFd = 0x08;
inline constexpr uint8_t kCanFlagBrs = 0x10;  // FD bit rate switch
inline constexpr uint8_t kCanFlagEsi = 0x20;  // FD error state indicator

// True for the lengths a CAN FD frame can have: 0..8, 12, 16, 20, 24, 32, 48, 64.
constexpr bool IsCanFdLength(uint8_t len) {
  return len <= 8 || len == 12 || len == 16 || len == 20 || len == 24 || len == 32 || len == 48 ||
         len == 64;
}

struct CanFrame {
  uint32_t id = 0;    // 11-bit or 29-bit arbitration id (no flag bits)
  uint8_t flags = 0;  // kCanFlag*
  uint8_t len = 0;    // dlc for classic frames (0..8; remote frames carry it without data)
  uint8_t reserved[2] = {0, 0};
  uint8_t data[kCanFdMaxLen] = {};
  int64_t timestamp_ns = 0;  // receive time, nanoseconds since the Unix epoch (CLOCK_REALTIME)

  bool extended() const { return (flags & kCanFlagExtended) != 0; }
  bool remote() const { return (flags & kCanFlagRemote) != 0; }
  bool error() const { return (flags & kCanFlagError) != 0; }
  bool fd() const { return (flags & kCanFlagFd) != 0; }

  // A classic data frame with the given payload (at most 8 bytes are used).
  static CanFrame Classic(uint32_t id, std::initializer_list<uint8_t> bytes,
                          bool extended = false) {
    CanFrame f;
    f.id = id;
    f.flags = extended ? kCanFlagExtended : 0;
    for (uint8_t b : bytes) {
      if (f.len == kCanClassicMaxLen) break;
      f.data[f.len++] = b;
    }
    return f;
  }

  // An error frame (as SocketCAN delivers them: 8 data bytes) of the classes in `error_class`
  // (linux/can/error.h CAN_ERR_*), data from `bytes`, the rest zero.
  static CanFrame Error(uint32_t error_class, std::initializer_list<uint8_t> bytes = {}) {
    CanFrame f;
    f.id = error_class;
    f.flags = kCanFlagError;
    f.len = kCanClassicMaxLen;
    uint8_t i = 0;
    for (uint8_t b : bytes) {
      if (i == kCanClassicMaxLen) break;
      f.data[i++] = b;
    }
    return f;
  }

  // Frames compare by content; the timestamp is not part of a frame's identity.
  friend bool operator==(const CanFrame& a, const CanFrame& b) {
    const size_t n = a.remote() ? 0 : a.len;
    return a.id == b.id && a.flags == b.flags && a.len == b.len &&
           std::memcmp(a.data, b.data, n) == 0;
  }
};

static_assert(std::is_trivially_copyable_v<CanFrame>);
static_assert(sizeof(CanFrame) == 80, "ring memory is sized from this");

// Nominal bits a frame occupies on the wire, without bit stuffing: 47 + 8·len standard, 67 + 8·len
// extended (a remote frame carries no data), counted at the nominal rate for CAN FD too (its data
// phase may run faster: bus load then reads high). The bus load's measure (ChannelCounters::
// bus_wire_bits) and the virtual bus's wire emulation. 0 for error frames: they are the
// controller's notices, not frames on the wire.
inline int64_t WireBits(const CanFrame& frame) noexcept {
  if (frame.error()) return 0;
  const int64_t data = frame.remote() ? 0 : int64_t{frame.len} * 8;
  return (frame.extended() ? 67 : 47) + data;
}

// cansend-style text ("123#0102", "1ABCDEF0#R") for logs and test failure messages; see
// core/text_format.h.
std::string ToString(const CanFrame& frame);

}  // namespace canserver
