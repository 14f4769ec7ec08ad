// TransmitScheduler: the policy of a channel's transmit path, with no threads, sockets or clocks
// (every time is an argument), so it is tested with a fake clock (tests/core/
// transmit_scheduler_test.cc). The CAN thread (io/can_channel.cc TransmitBatch) asks it:
//
//   - which frames go next: one frame of each client with frames waiting per round, the rounds
//     starting after the client written last, so a frame waits behind at most one frame of each
//     other client (BuildBatch, Written);
//   - what to do when the bus took less than a batch (AfterShortWrite): a busy bus (ENOBUFS,
//     EAGAIN) is retried after a delay that adapts so each retry finds a few frames' room; a
//     frame is refused only for a reason waiting cannot fix, or once the bus has taken nothing
//     for tx_timeout;
//   - whether a retry is due (MayWrite).
//
// Times are CLOCK_MONOTONIC nanoseconds. One thread only (the CAN thread).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace canserver {

class TransmitScheduler {
 public:
  // Retry delays after the bus answered "busy", where the backend gives no hint. Shorter and the
  // thread wakes once per frame, longer and the device queue could run dry: 2 ms is under a
  // 10-frame device queue at 500 kbit/s, so the bus never idles while clients are backlogged.
  static constexpr int64_t kMinBackoffNs = 20'000;
  static constexpr int64_t kMaxBackoffNs = 2'000'000;
  static constexpr size_t kRetryTarget = 4;  // frames each retry should find room for

  // `tx_timeout_ns`: refuse once the bus has taken nothing for this long; 0: wait forever.
  explicit TransmitScheduler(int64_t tx_timeout_ns) : tx_timeout_ns_(tx_timeout_ns) {}

  // One frame of a batch: the `index`-th waiting frame (0: oldest) of client `lane`.
  struct Pick {
    size_t lane;
    size_t index;
  };
  // Fills `out` (at most out.size() picks) round-robin over `waiting` (frames each client has
  // waiting, by lane), starting after the lane written last. Returns the picks made.
  size_t BuildBatch(absl::Span<const size_t> waiting, absl::Span<Pick> out) const;
  // The last frame the bus took was `lane`'s, of `lanes`: the next round starts after it.
  void Written(size_t lane, size_t lanes) { next_ = lanes == 0 ? 0 : (lane + 1) % lanes; }
  // Lane `lane` is gone (the lanes after it move down one), of `lanes` left.
  void LaneRemoved(size_t lane, size_t lanes);

  // Whether writing is due at `now`: false while waiting for a retry.
  bool MayWrite(int64_t now) {
    if (retry_at_ != 0 && now < retry_at_) return false;
    retry_at_ = 0;
    return true;
  }
  // When the retry is due (0: none pending), for the thread's timer.
  int64_t retry_at() const { return retry_at_; }

  // The bus took the whole batch.
  void AfterFullWrite();
  // The bus took `written` frames and refused the next. `busy`: it said "try later" (ENOBUFS,
  // EAGAIN); `hint_ns`: the backend's own retry delay (0: none).
  enum class Verdict {
    kRetry,    // keep the frame; retry at retry_at()
    kRefuse,   // refuse the frame: a reason waiting cannot fix
    kTimeout,  // refuse the frame: the bus has taken nothing for tx_timeout
  };
  Verdict AfterShortWrite(size_t written, bool busy, int64_t hint_ns, int64_t now);

 private:
  const int64_t tx_timeout_ns_;
  size_t next_ = 0;          // the lane the next round starts at
  int64_t retry_at_ = 0;     // 0: not waiting for the bus
  int64_t stall_since_ = 0;  // when the bus last refused after taking a frame; 0: not stalled
  int64_t backoff_ = 0;
};

}  // namespace canserver
