// What libsocketcan 0.0.12 cannot read: a CAN interface's data-phase (CAN FD) bit rate, from an
// RTM_GETLINK answer's IFLA_LINKINFO / IFLA_INFO_DATA / IFLA_CAN_DATA_BITTIMING.
//
// Thread-safe (one netlink socket per call; a control-path call).
#pragma once

#include <cstddef>
#include <cstdint>

namespace canserver {

// The data bit rate in an RTM_NEWLINK message (bytes as netlink delivered them), 0 where the
// message has none (a classic-only interface, vcan) or is not a well-formed link message.
int32_t DataBitrateFromLinkMessage(const uint8_t* message, size_t length);

// Asks the kernel for interface `ifindex` and returns its data bit rate (0: none or unknown).
int32_t QueryDataBitrate(int ifindex);

}  // namespace canserver
