// The two clocks canserver reads. Bus timestamps are CLOCK_REALTIME (what clients and can-utils
// print); deadlines and the wire emulation use CLOCK_MONOTONIC, which no clock change moves.
// Thread-safe (vDSO calls, no syscall).
#pragma once

#include <cstdint>

namespace canserver {

// Now as nanoseconds since the Unix epoch (CLOCK_REALTIME), the clock of bus timestamps.
int64_t RealtimeNanos() noexcept;
// CLOCK_MONOTONIC in nanoseconds.
int64_t MonotonicNanos() noexcept;

}  // namespace canserver
