// pcapng, as Wireshark, tshark and dumpcap read it: CAN frames in the Linux SocketCAN layout
// (LINKTYPE_CAN_SOCKETCAN, 227), so `canremote dump --pcap - | wireshark -k -i -` shows a remote
// rig's bus with Wireshark's own CAN and CAN FD dissectors, no plugin.
//
//   std::string out = pcapng::SectionHeader();
//   out += pcapng::InterfaceDescription("can0", 500000);       // interface 0
//   out += pcapng::Packet(0, frame);                           // one per frame, in bus order
//
// Blocks are little-endian (the Section Header's byte-order magic says so); timestamps are
// nanoseconds since the epoch (if_tsresol 9). A frame is the kernel's struct can_frame (16 bytes)
// or canfd_frame (72 bytes): can_id big-endian with the EFF/RTR/ERR flag bits, then the length,
// the FD flags (BRS, ESI, FDF), two reserved bytes and the data, zero-padded; Wireshark tells
// classic from FD by that size. Pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/frame.h"

namespace canserver::pcapng {

inline constexpr uint16_t kLinktypeCanSocketcan = 227;

std::string SectionHeader();
// `bitrate` 0: none known (no if_speed option).
std::string InterfaceDescription(absl::string_view name, int64_t bitrate);
// An Enhanced Packet Block for `frame` on `interface` (the order of its description block).
std::string Packet(uint32_t interface, const CanFrame& frame);

}  // namespace canserver::pcapng
