// IsoTpConfig: what socketcand's isotpconf asks for, as plain data shared by the protocol (core)
// and the SocketCAN backend (io) that opens the kernel's socket for it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace canserver {

// An ISO-TP channel (ISO 15765-2) as socketcand's isotpconf describes it: the kernel's CAN_ISOTP
// socket options (linux/can/isotp.h), with ids carrying their own extended flag.
struct IsoTpConfig {
  uint32_t tx_id = 0;  // the id this side transmits on
  bool tx_extended = false;
  uint32_t rx_id = 0;  // the id it receives on
  bool rx_extended = false;
  uint32_t flags = 0;  // CAN_ISOTP_* option flags (0x001..0x200: those socketcand documents)
  uint8_t block_size = 0;
  uint8_t stmin = 0;
  uint8_t wftmax = 0;
  uint8_t txpad = 0;
  uint8_t rxpad = 0;
  uint8_t ext_address = 0;
  uint8_t rx_ext_address = 0;
};
// The longest PDU (socketcand's ISOTPLEN, the classic ISO-TP limit).
inline constexpr size_t kIsoTpMaxPdu = 4095;

}  // namespace canserver
