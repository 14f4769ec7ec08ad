#include "core/bus_state.h"

#include <linux/can/error.h>

namespace canserver {

std::optional<BusState> StateFromErrorFrame(const CanFrame& frame) {
  if (!frame.error()) return std::nullopt;
  // The most severe class first: a frame may carry several.
  if (frame.id & CAN_ERR_BUSOFF) return BusState::kBusOff;
  if (frame.id & CAN_ERR_CRTL) {
    const uint8_t crtl = frame.len > 1 ? frame.data[1] : 0;
    if (crtl & (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE)) return BusState::kErrorPassive;
    if (crtl & (CAN_ERR_CRTL_RX_WARNING | CAN_ERR_CRTL_TX_WARNING)) return BusState::kErrorWarning;
    if (crtl & CAN_ERR_CRTL_ACTIVE) return BusState::kErrorActive;
  }
  if (frame.id & CAN_ERR_RESTARTED) return BusState::kErrorActive;
  return std::nullopt;
}

absl::string_view BusStateName(BusState state) {
  switch (state) {
    case BusState::kErrorActive:
      return "error-active";
    case BusState::kErrorWarning:
      return "error-warning";
    case BusState::kErrorPassive:
      return "error-passive";
    case BusState::kBusOff:
      return "bus-off";
  }
  return "unknown";
}

}  // namespace canserver
