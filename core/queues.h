// The lock-free queues canserver uses, and the only project header that includes moodycamel's.
//
// FrameRing: bounded single-producer/single-consumer ring of frames (moodycamel ReaderWriterQueue).
// The producer is a channel's CAN thread, the consumer one session's io thread. Its memory is
// allocated once, at construction; pushing and popping never allocate.
//
// MpscQueue<T>: many producers, one consumer (moodycamel ConcurrentQueue), bounded by a soft
// capacity checked on push. Blocks are recycled, so a queue in steady state does not allocate.
#pragma once

#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <atomic>
#include <cstddef>

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
    // documented memory limit is the real one.
    if (queue_.size_approx() >= capacity_) return false;
    return queue_.try_enqueue(frame);
  }

  // Pops up to `max` frames into `out`; returns how many. Consumer thread only.
  size_t PopBulk(CanFrame* out, size_t max) noexcept {
    size_t n = 0;
    while (n < max && queue_.try_dequeue(out[n])) ++n;
    return n;
  }

  // True when no frame is visible to the consumer. Consumer thread only.
  bool empty() const noexcept { return queue_.peek() == nullptr; }
  size_t size_approx() const noexcept { return queue_.size_approx(); }
  size_t capacity() const noexcept { return capacity_; }

 private:
  const size_t capacity_;
  moodycamel::ReaderWriterQueue<CanFrame> queue_;
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
