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
//   sink               the client's output as the CAN thread may write it directly (a quiet bus,
//                      an idle client: io/direct_sink.h); set before Subscribe, constant after
// Shared by shared_ptr between the two, so either may let go first.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/counters.h"
#include "core/queues.h"
#include "core/wake_gate.h"
#include "io/direct_sink.h"
#include "io/wakeup.h"

namespace canserver {

// Who the client is, for the status page and /metrics: set by the session before it subscribes,
// read-only afterwards.
struct SubscriberInfo {
  std::string peer;             // "192.0.2.7:51234"
  std::string protocol;         // "v5", "v6" (CAN FD) or "socketcand"
  int64_t connected_at_ns = 0;  // CLOCK_REALTIME
  std::string access;           // "role transmit, matched rule 'lab'" (--access)
  std::string transport;        // "plain TCP" or "TLSv1.3 …, client certificate 'flasher-1'"
};

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
  SubscriberInfo info;
  std::shared_ptr<DirectSink> sink;  // null: frames always go through the ring

  // Resuming (net/resumable_sessions.h), for the status page: written by the session's io
  // thread, read by anyone. detached_until_ns: 0 while connected; else when the session ends
  // unless resumed (CLOCK_REALTIME).
  std::atomic<bool> resumable{false};
  std::atomic<int64_t> detached_until_ns{0};
  std::atomic<uint64_t> resumes{0};

  // The client's filters in candump syntax ("123:7FF 80000000:80000000"; empty: everything).
  // Any thread.
  void set_filters_text(std::string text) {
    std::lock_guard<std::mutex> lock(filters_mu_);
    filters_text_ = std::move(text);
  }
  std::string filters_text() const {
    std::lock_guard<std::mutex> lock(filters_mu_);
    return filters_text_;
  }

 private:
  mutable std::mutex filters_mu_;
  std::string filters_text_;  // guarded by filters_mu_
};

}  // namespace canserver
