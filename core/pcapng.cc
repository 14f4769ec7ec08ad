#include "core/pcapng.h"

#include <algorithm>

namespace canserver::pcapng {
namespace {

// Written byte by byte: the format is little-endian here whatever the host is. Hand-written:
// Debian's libpcap (1.10) writes the older pcap format only, and the three pcapng blocks needed
// here are a few dozen lines.
void Le16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}
void Le32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void Pad4(std::string* out) {
  while (out->size() % 4 != 0) out->push_back('\0');
}

// A block: type, total length, body (padded to 4), total length again.
std::string Block(uint32_t type, std::string body) {
  Pad4(&body);
  const uint32_t total = static_cast<uint32_t>(body.size() + 12);
  std::string out;
  out.reserve(total);
  Le32(&out, type);
  Le32(&out, total);
  out += body;
  Le32(&out, total);
  return out;
}

void Option(std::string* out, uint16_t code, absl::string_view value) {
  Le16(out, code);
  Le16(out, static_cast<uint16_t>(value.size()));
  out->append(value.data(), value.size());
  Pad4(out);
}

}  // namespace

std::string SectionHeader() {
  std::string body;
  Le32(&body, 0x1A2B3C4D);  // byte-order magic
  Le16(&body, 1);           // version 1.0
  Le16(&body, 0);
  Le32(&body, 0xFFFFFFFF);  // section length: not given (a stream)
  Le32(&body, 0xFFFFFFFF);
  return Block(0x0A0D0D0A, std::move(body));
}

std::string InterfaceDescription(absl::string_view name, int64_t bitrate) {
  std::string body;
  Le16(&body, kLinktypeCanSocketcan);
  Le16(&body, 0);                                  // reserved
  Le32(&body, 0);                                  // snap length: no limit
  Option(&body, 2, name.substr(0, 255));           // if_name
  Option(&body, 9, absl::string_view("\x09", 1));  // if_tsresol: 10^-9 s
  if (bitrate > 0) {
    std::string speed;
    for (int i = 0; i < 8; ++i) speed.push_back(static_cast<char>((bitrate >> (8 * i)) & 0xFF));
    Option(&body, 8, speed);  // if_speed, bit/s
  }
  Le32(&body, 0);  // opt_endofopt
  return Block(1, std::move(body));
}

std::string Packet(uint32_t interface, const CanFrame& frame) {
  // struct can_frame / canfd_frame.
  const bool fd = frame.fd();
  const size_t size = fd ? 72 : 16;
  std::string data(size, '\0');
  uint32_t id = frame.id & (frame.extended() || frame.error() ? 0x1FFFFFFFu : 0x7FFu);
  if (frame.extended()) id |= 0x80000000u;  // CAN_EFF_FLAG
  if (frame.remote()) id |= 0x40000000u;    // CAN_RTR_FLAG
  if (frame.error()) id |= 0x20000000u;     // CAN_ERR_FLAG
  for (int i = 0; i < 4; ++i) data[static_cast<size_t>(i)] = static_cast<char>(id >> (24 - 8 * i));
  data[4] = static_cast<char>(frame.len);
  if (fd) {
    data[5] = static_cast<char>(((frame.flags & kCanFlagBrs) ? 0x01 : 0) |
                                ((frame.flags & kCanFlagEsi) ? 0x02 : 0) | 0x04);  // FDF
  }
  if (!frame.remote()) {
    std::copy(frame.data, frame.data + std::min<size_t>(frame.len, size - 8), data.begin() + 8);
  }
  std::string body;
  Le32(&body, interface);
  const uint64_t ns = frame.timestamp_ns > 0 ? static_cast<uint64_t>(frame.timestamp_ns) : 0;
  Le32(&body, static_cast<uint32_t>(ns >> 32));
  Le32(&body, static_cast<uint32_t>(ns & 0xFFFFFFFF));
  Le32(&body, static_cast<uint32_t>(size));  // captured
  Le32(&body, static_cast<uint32_t>(size));  // on the wire
  body += data;
  return Block(6, std::move(body));
}

}  // namespace canserver::pcapng
