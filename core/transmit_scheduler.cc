#include "core/transmit_scheduler.h"

#include <algorithm>

namespace canserver {

size_t TransmitScheduler::BuildBatch(absl::Span<const size_t> waiting, absl::Span<Pick> out) const {
  const size_t lanes = waiting.size();
  size_t n = 0;
  for (size_t round = 0; n < out.size(); ++round) {
    bool any = false;
    for (size_t k = 0; k < lanes && n < out.size(); ++k) {
      const size_t lane = (next_ + k) % lanes;
      if (waiting[lane] <= round) continue;
      out[n++] = {lane, round};
      any = true;
    }
    if (!any) break;
  }
  return n;
}

void TransmitScheduler::LaneRemoved(size_t lane, size_t lanes) {
  if (next_ > lane) --next_;
  if (next_ >= lanes) next_ = 0;
}

void TransmitScheduler::AfterFullWrite() {
  stall_since_ = 0;
  if (backoff_ > kMinBackoffNs) backoff_ /= 2;
}

TransmitScheduler::Verdict TransmitScheduler::AfterShortWrite(size_t written, bool busy,
                                                              int64_t hint_ns, int64_t now) {
  if (!busy) return Verdict::kRefuse;
  if (written > 0 || stall_since_ == 0) stall_since_ = now;
  // The bus has taken nothing for tx_timeout: each frame now gets one try and is refused.
  if (tx_timeout_ns_ > 0 && now - stall_since_ >= tx_timeout_ns_) return Verdict::kTimeout;
  int64_t delay = hint_ns;
  if (delay <= 0) {
    if (backoff_ == 0) backoff_ = kMinBackoffNs;
    if (written == 0) {
      backoff_ *= 2;
    } else if (written < kRetryTarget) {
      backoff_ += backoff_ / 4;
    } else if (written >= 4 * kRetryTarget) {
      backoff_ /= 2;
    }
    backoff_ = std::clamp(backoff_, kMinBackoffNs, kMaxBackoffNs);
    delay = backoff_;
  }
  retry_at_ = now + std::max<int64_t>(delay, 1000);
  return Verdict::kRetry;
}

}  // namespace canserver
