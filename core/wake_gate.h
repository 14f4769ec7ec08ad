// WakeGate: decides when a producer must wake a sleeping consumer, so that a busy stream costs
// no wakeup syscall per item — only the empty→non-empty edge after the consumer went idle does.
//
// Consumer (before sleeping):            Producer (after publishing work):
//   gate.Arm();                            queue.push(x);
//   if (HasWork()) { gate.Disarm(); ... }  if (gate.ShouldNotify()) wakeup.Notify();
//   else sleep();
//
// Memory ordering: Arm() and ShouldNotify() each put a seq_cst fence between their own write and
// the following read of the other side's data (Dekker). Either the consumer sees the new work in
// HasWork(), or the producer sees the armed flag and notifies; a wakeup may be spurious, never
// lost.
#pragma once

#include <atomic>

namespace canserver {

class WakeGate {
 public:
  // Consumer thread only.
  void Arm() noexcept {
    armed_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Consumer thread only.
  void Disarm() noexcept { armed_.store(false, std::memory_order_relaxed); }
  // Any producer thread. True for exactly one producer per Arm().
  [[nodiscard]] bool ShouldNotify() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return armed_.load(std::memory_order_relaxed) &&
           armed_.exchange(false, std::memory_order_acq_rel);
  }

 private:
  std::atomic<bool> armed_{false};
};

}  // namespace canserver
