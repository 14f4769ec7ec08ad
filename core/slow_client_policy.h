// SlowClientPolicy: --slow-client-timeout. A client whose ring kept overflowing (its drop count
// rose at every look) for the timeout is disconnected: it is not reading, and its session only
// costs memory and the CAN thread's work. A client that falls behind for a moment and catches up
// (no new drops at a look) starts over. Pure logic, no clock of its own: the session's io thread
// calls Check() at each housekeeping tick (about every 100 ms).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace canserver {

class SlowClientPolicy {
 public:
  // `timeout` zero or less: never disconnect.
  explicit SlowClientPolicy(absl::Duration timeout) : timeout_(timeout) {}

  // `drops`: the client's ring drops so far. Returns why to disconnect it (the text the client
  // is told), or "" to keep it.
  std::string Check(absl::Time now, uint64_t drops) {
    if (drops == drops_seen_) {
      lagging_since_ = absl::InfiniteFuture();
      return "";
    }
    drops_seen_ = drops;
    if (lagging_since_ == absl::InfiniteFuture()) lagging_since_ = now;
    if (timeout_ <= absl::ZeroDuration() || now - lagging_since_ < timeout_) return "";
    return absl::StrFormat(
        "client too slow: its queue overflowed for %s (%d frames dropped); disconnected",
        absl::FormatDuration(now - lagging_since_), drops);
  }

 private:
  const absl::Duration timeout_;
  uint64_t drops_seen_ = 0;
  absl::Time lagging_since_ = absl::InfiniteFuture();
};

}  // namespace canserver
