// SentFrames: the last frames written into one client's stream, kept so that a resumed session
// can send again what its broken connection lost in transit (net/resumable_sessions.h): the
// client says how many frames it received, the rest of the stream comes again from here.
//
// Written by whoever holds the client's socket (ClientOutput's loan orders the io thread and the
// CAN thread, net/client_output.h); read by the io thread while it holds it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "core/frame.h"

namespace canserver {

class SentFrames {
  static_assert(std::is_trivially_copyable_v<CanFrame> &&
                std::is_trivially_destructible_v<CanFrame>);

 public:
  // The slots are allocated, not constructed: memory is touched as frames come (a session that
  // receives little costs little), and a slot is read only once written.
  explicit SentFrames(size_t capacity)
      : capacity_(std::max<size_t>(capacity, 1)),
        frames_(static_cast<CanFrame*>(::operator new(capacity_ * sizeof(CanFrame)))) {}

  void Add(const CanFrame& frame) {
    new (&frames_[next_]) CanFrame(frame);  // trivially copyable: a copy into raw storage
    next_ = next_ + 1 == capacity_ ? 0 : next_ + 1;
    kept_ = std::min(kept_ + 1, capacity_);
    ++total_;
  }
  // Frames in the client's stream so far.
  uint64_t total() const { return total_; }
  // The `i`-th of the last `count` frames (count <= kept()), oldest first.
  const CanFrame& Last(size_t count, size_t i) const {
    return frames_[(next_ + capacity_ - count + i) % capacity_];
  }
  size_t kept() const { return kept_; }
  size_t capacity() const { return capacity_; }

  // The client received `received` frames of the stream: how many of the rest can be sent
  // again (`replay`, the last ones kept) and how many are gone (`lost`). The stream goes on
  // from what the client will have once the replay is sent.
  struct Resumed {
    size_t replay = 0;
    uint64_t lost = 0;
  };
  Resumed Resume(uint64_t received) {
    const uint64_t missing = received < total_ ? total_ - received : 0;
    Resumed r;
    r.replay = static_cast<size_t>(std::min<uint64_t>(missing, kept_));
    r.lost = missing - r.replay;
    total_ = std::min(received, total_) + r.replay;
    return r;
  }

 private:
  struct Free {
    void operator()(CanFrame* p) const { ::operator delete(p); }
  };
  const size_t capacity_;
  std::unique_ptr<CanFrame[], Free> frames_;
  size_t next_ = 0;
  size_t kept_ = 0;
  uint64_t total_ = 0;
};

}  // namespace canserver
