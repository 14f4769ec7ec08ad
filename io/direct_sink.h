// DirectSink: a client's output as the channel's CAN thread sees it.
//
// On a quiet bus the CAN thread delivers a batch to an idle client itself (io/can_channel.cc
// FanOut, WriteDirect), saving the hand-off through the client's ring and the wake-up of its io
// thread: the quiet path's latency and most of its CPU. The owner of the client's output
// (net/client_output.h) implements this; io/ knows nothing of sockets, TLS or wire formats.
//
// Threads: lent() any thread (a hint); TryWrite() the channel's CAN thread only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/frame.h"
#include "core/queues.h"

namespace canserver {

class DirectSink {
 public:
  // TryWrite takes at most this many frames at once (the CAN thread's batch).
  static constexpr size_t kMaxFrames = 64;

  virtual ~DirectSink() = default;

  // Whether the output is lent to the CAN thread now. A relaxed hint for choosing the path;
  // TryWrite decides.
  virtual bool lent() const noexcept = 0;

  // If the output is lent and `ring` is empty (no older frame of this client waits), encodes
  // `frames` (n <= kMaxFrames), counts them and writes them to the client. What the client's
  // socket does not take now goes back to the output's owner, whose io thread it wakes. Returns
  // the frames encoded, or -1 when it took none: the caller pushes them into `ring` (the usual
  // path, which keeps bus order). `now_ns` (CLOCK_REALTIME) stamps their delivery latency.
  virtual int TryWrite(const CanFrame* frames, size_t n, const FrameRing& ring,
                       int64_t now_ns) noexcept = 0;
};

}  // namespace canserver
