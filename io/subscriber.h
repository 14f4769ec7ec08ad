// Subscriber: what a channel's CAN thread knows of one client session — the ring it fills, the
// wakeup of the io thread that drains it, and the counters both sides write.
//
// Roles: the CAN thread is the ring's only producer and adds to tx_failed_pending; the session's
// io thread is the only consumer of both. Shared by shared_ptr between the two, so either may let
// go first.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/counters.h"
#include "core/queues.h"
#include "core/wake_gate.h"
#include "io/wakeup.h"

namespace canserver {

struct Subscriber {
  Subscriber(uint64_t id_in, size_t ring_capacity, std::shared_ptr<const Wakeup> io_wakeup)
      : id(id_in), ring(ring_capacity), wakeup(std::move(io_wakeup)) {}

  // Work the consumer has not taken yet. Owning io thread only.
  bool HasWork() const noexcept {
    return !ring.empty() || tx_failed_pending.load(std::memory_order_relaxed) != 0;
  }
  // Takes the number of TransmitFail events owed to the client. Owning io thread only.
  uint32_t TakeTxFailed() noexcept {
    return tx_failed_pending.exchange(0, std::memory_order_relaxed);
  }

  const uint64_t id;
  FrameRing ring;
  // Armed by the io thread when it has drained everything; the CAN thread notifies `wakeup` only
  // when it finds the gate armed (see WakeGate).
  WakeGate gate;
  const std::shared_ptr<const Wakeup> wakeup;
  std::atomic<uint32_t> tx_failed_pending{0};
  SessionCounters counters;
};

}  // namespace canserver
