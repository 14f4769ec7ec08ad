// The lock-free queues canserver uses, and the only project header that includes moodycamel's.
//
// FrameRing: bounded single-producer/single-consumer ring of frames (moodycamel ReaderWriterQueue).
// Each session has two: frames to the client (producer: the channel's CAN thread, consumer: the
// session's io thread) and frames from the client to the bus (the other way round). Its memory is
// allocated once, at construction; pushing and popping never allocate.
//
// MpscQueue<T>: many producers, one consumer (moodycamel ConcurrentQueue), bounded by a soft
// capacity checked on push. Blocks are recycled, so a queue in steady state does not allocate.
#pragma once

#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/frame.h"

namespace canserver {

class FrameRing {
 public:
  explicit FrameRing(size_t capacity) : capacity_(capacity), queue_(capacity) {}
  FrameRing(const FrameRing&) = delete;
  FrameRing& operator=(const FrameRing&) = delete;

  // Returns false, and leaves the ring unchanged, when it already holds `capacity()` frames.
  // Never allocates. Producer thread only.
  [[nodiscard]] bool TryPush(const CanFrame& frame) noexcept {
    // ReaderWriterQueue rounds its capacity up; we enforce the configured bound ourselves so the
    // documented memory limit is the real one. Its size_approx() walks every block (two shared
    // cache lines per 512 frames), so the bound uses our own counts instead: the consumer's
    // count is read only when the cached one says the ring is full.
    const uint64_t pushed = pushed_.load(std::memory_order_relaxed);
    if (pushed - popped_cache_ >= capacity_) {
      popped_cache_ = popped_.load(std::memory_order_acquire);
      if (pushed - popped_cache_ >= capacity_) return false;
    }
    if (!queue_.try_enqueue(frame)) return false;
    pushed_.store(pushed + 1, std::memory_order_relaxed);
    return true;
  }

  // Pops up to `max` frames into `out`; returns how many. Consumer thread only.
  size_t PopBulk(CanFrame* out, size_t max) noexcept {
    size_t n = 0;
    while (n < max && queue_.try_dequeue(out[n])) ++n;
    // One shared write per batch; release so the producer reuses the slots only after we read
    // them (the queue orders its own slots; this orders our count with them).
    if (n > 0)
      popped_.store(popped_.load(std::memory_order_relaxed) + n, std::memory_order_release);
    return n;
  }

  // True when no frame is visible to the consumer. Consumer thread only.
  bool empty() const noexcept { return queue_.peek() == nullptr; }
  // Frames in the ring, approximately (exact from the producer thread). Any thread.
  size_t size_approx() const noexcept {
    const uint64_t popped = popped_.load(std::memory_order_acquire);
    const uint64_t pushed = pushed_.load(std::memory_order_acquire);
    return pushed > popped ? static_cast<size_t>(pushed - popped) : 0;
  }
  size_t capacity() const noexcept { return capacity_; }

 private:
  const size_t capacity_;
  moodycamel::ReaderWriterQueue<CanFrame> queue_;
  // Producer side, and the consumer's count on a line of its own, so neither thread's writes
  // invalidate the other's line.
  alignas(64) std::atomic<uint64_t> pushed_{0};
  uint64_t popped_cache_ = 0;
  alignas(64) std::atomic<uint64_t> popped_{0};
};

template <typename T>
class MpscQueue {
 public:
  explicit MpscQueue(size_t capacity) : capacity_(capacity), queue_(capacity) {}

  // Returns false when the queue holds `capacity` items (approximately: concurrent pushes may
  // overshoot by at most one item per producer). Any thread.
  [[nodiscard]] bool TryPush(T item) {
    if (queue_.size_approx() >= capacity_) return false;
    return queue_.enqueue(std::move(item));
  }
  // Consumer thread only.
  size_t PopBulk(T* out, size_t max) { return queue_.try_dequeue_bulk(out, max); }
  size_t size_approx() const { return queue_.size_approx(); }

 private:
  const size_t capacity_;
  moodycamel::ConcurrentQueue<T> queue_;
};

}  // namespace canserver
