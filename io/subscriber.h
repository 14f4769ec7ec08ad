// Subscriber: what a channel's CAN thread knows of one client session — the ring it fills, the
// client's transmit queue it drains, the wakeup of the io thread that serves the session, and the
// counters both sides write.
//
// Roles:
//   ring               producer: CAN thread;  consumer: the session's io thread
//   tx                 producer: the session's io thread;  consumer: CAN thread
//   tx_failed_pending  added to by the CAN thread, taken by the io thread
//   gate               armed by the io thread when it drained `ring`; the CAN thread notifies
//   tx_gate            armed by the io thread when `tx` was full and it stopped reading the client;
//                      the CAN thread notifies once `tx` is at most half full (see WakeGate)
// Shared by shared_ptr between the two, so either may let go first.
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
  Subscriber(uint64_t id_in, size_t ring_capacity, std::shared_ptr<const Wakeup> io_wakeup,
             size_t tx_capacity = 1024)
      : id(id_in), ring(ring_capacity), tx(tx_capacity), wakeup(std::move(io_wakeup)) {}

  // Work the consumer has not taken yet. Owning io thread only.
  bool HasWork() const noexcept {
    return !ring.empty() || tx_failed_pending.load(std::memory_order_relaxed) != 0;
  }
  // Takes the number of TransmitFail events owed to the client. Owning io thread only.
  uint32_t TakeTxFailed() noexcept {
    return tx_failed_pending.exchange(0, std::memory_order_relaxed);
  }
  // Frames `tx` can take now (exact from the io thread, which is its only producer).
  size_t tx_room() const noexcept {
    const size_t used = tx.size_approx();
    return used >= tx.capacity() ? 0 : tx.capacity() - used;
  }
  // The level at or below which a paused reader resumes: reading in large chunks, not one frame
  // per wakeup.
  size_t tx_resume_level() const noexcept { return tx.capacity() / 2; }

  const uint64_t id;
  FrameRing ring;
  FrameRing tx;  // frames for the bus; timestamp_ns holds the time they were queued
  WakeGate gate;
  WakeGate tx_gate;
  const std::shared_ptr<const Wakeup> wakeup;
  std::atomic<uint32_t> tx_failed_pending{0};
  SessionCounters counters;
};

}  // namespace canserver
