// SendTimes: when canbench handed each frame to the bus or to its sending client, by sequence
// number, so a reader can measure latency from canbench's own write — the same figure whatever
// timestamp a server puts in its CanMessages (a peer server may stamp its own receive time).
//
// A fixed table of 2^20 slots indexed by the sequence number's low bits: a frame that arrives
// more than 2^20 frames after it was written finds its slot reused and is left out of this
// figure (counted in `unmatched`). The writer is canbench's load thread; any reader thread may
// look up. Slots are atomics, so readers never see a torn entry.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace canserver {

class SendTimes {
 public:
  static constexpr uint32_t kSlots = 1u << 20;

  SendTimes() : slots_(new Slot[kSlots]) {}

  // Load thread only.
  void Record(uint32_t seq, int64_t ns) noexcept {
    Slot& s = slots_[seq & (kSlots - 1)];
    s.seq.store(kEmpty, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);  // kEmpty is seen before the new time
    s.ns.store(ns, std::memory_order_relaxed);
    s.seq.store(seq, std::memory_order_release);
  }

  // Any thread. Nothing when the slot holds another frame (or none yet).
  std::optional<int64_t> Lookup(uint32_t seq) const noexcept {
    const Slot& s = slots_[seq & (kSlots - 1)];
    if (s.seq.load(std::memory_order_acquire) != seq) return std::nullopt;
    const int64_t ns = s.ns.load(std::memory_order_relaxed);
    // A rewrite between the two loads would have changed seq first; check again.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != seq) return std::nullopt;
    return ns;
  }

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;  // never a live number: runs are far shorter
  struct Slot {
    std::atomic<uint32_t> seq{kEmpty};
    std::atomic<int64_t> ns{0};
  };
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace canserver
