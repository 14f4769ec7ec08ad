// The CAN controller's state as SocketCAN reports its changes: error frames of the classes
// CAN_ERR_CRTL (warning/passive/active again), CAN_ERR_BUSOFF and CAN_ERR_RESTARTED
// (linux/can/error.h). Pure functions; the CAN thread calls them for every error frame.
#pragma once

#include <optional>

#include "absl/strings/string_view.h"
#include "core/frame.h"

namespace canserver {

enum class BusState { kErrorActive, kErrorWarning, kErrorPassive, kBusOff };

// The state an error frame announces, or nullopt for error frames that say nothing about it
// (a lost arbitration, a protocol violation, …) and for non-error frames.
std::optional<BusState> StateFromErrorFrame(const CanFrame& frame);

// "error-active", "error-warning", "error-passive", "bus-off".
absl::string_view BusStateName(BusState state);

}  // namespace canserver
