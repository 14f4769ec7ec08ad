// Conversions between CanFrame and the kernel's struct canfd_frame (SocketCAN), shared by the
// socketcan backend and RawCanSocket. Pure functions; any thread.
#pragma once

#include <linux/can.h>

#include <cstddef>

#include "core/frame.h"

namespace canserver {

// Fills `out` for a write; *mtu is the byte count to write (CAN_MTU, or CANFD_MTU for FD frames).
void ToKernel(const CanFrame& in, canfd_frame* out, size_t* mtu);
// Reads a frame the kernel returned in `bytes` bytes (CAN_MTU: classic, CANFD_MTU: FD).
// The timestamp is left for the caller.
void FromKernel(const canfd_frame& in, size_t bytes, CanFrame* out);

}  // namespace canserver
