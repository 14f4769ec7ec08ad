#include "core/bcm_receive.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace canserver {
namespace {

BcmReceive::Mask Content(const CanFrame& frame) {
  BcmReceive::Mask m{};
  if (!frame.remote()) std::memcpy(m.data(), frame.data, std::min<size_t>(frame.len, 8));
  return m;
}

bool Equal(const BcmReceive::Mask& a, const BcmReceive::Mask& b, const BcmReceive::Mask& mask) {
  for (size_t i = 0; i < 8; ++i) {
    if ((a[i] & mask[i]) != (b[i] & mask[i])) return false;
  }
  return true;
}

}  // namespace

absl::Status BcmReceive::Put(Key key, Job job) {
  if (jobs_.size() >= kMaxJobs && jobs_.count(key) == 0) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("too many BCM receive jobs: at most %d ids per session", kMaxJobs));
  }
  job.last.assign(job.masks.size(), std::nullopt);
  jobs_[key] = std::move(job);
  return absl::OkStatus();
}

absl::Status BcmReceive::Subscribe(Key key, absl::Duration throttle) {
  return Put(key, Job{Kind::kAll, absl::ToInt64Nanoseconds(throttle), {}, {}, INT64_MIN, {}});
}

absl::Status BcmReceive::Filter(Key key, absl::Duration throttle, const Mask& mask) {
  return Put(key,
             Job{Kind::kContent, absl::ToInt64Nanoseconds(throttle), {mask}, {}, INT64_MIN, {}});
}

absl::Status BcmReceive::MuxFilter(Key key, absl::Duration throttle, std::vector<Mask> tuples) {
  if (tuples.size() < 2 || tuples.size() > kMaxMuxTuples) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "muxfilter needs 2 to %d 8-byte tuples (the mux mask and its values), got %d",
        kMaxMuxTuples, tuples.size()));
  }
  return Put(
      key,
      Job{Kind::kMux, absl::ToInt64Nanoseconds(throttle), std::move(tuples), {}, INT64_MIN, {}});
}

bool BcmReceive::Unsubscribe(Key key) { return jobs_.erase(key) > 0; }

bool BcmReceive::Throttle(Job& job, const CanFrame& frame) {
  if (job.throttle_ns <= 0) return true;
  if (job.last_sent_ns == INT64_MIN || frame.timestamp_ns - job.last_sent_ns >= job.throttle_ns) {
    job.last_sent_ns = frame.timestamp_ns;
    job.held.reset();
    return true;
  }
  job.held = frame;  // the latest wins, as the kernel's last_frames
  return false;
}

bool BcmReceive::Accept(const CanFrame& frame) {
  if (frame.error() || frame.fd()) return false;  // the broadcast manager's RX is classic CAN
  auto it = jobs_.find(Key{frame.id, frame.extended()});
  if (it == jobs_.end()) return false;
  Job& job = it->second;
  const Mask content = Content(frame);
  size_t index = 0;
  switch (job.kind) {
    case Kind::kAll:
      return Throttle(job, frame);
    case Kind::kContent:
      break;
    case Kind::kMux: {
      const Mask& where = job.masks[0];
      index = 0;
      for (size_t i = 1; i < job.masks.size(); ++i) {
        if (Equal(content, job.masks[i], where)) {
          index = i;
          break;
        }
      }
      if (index == 0) return false;  // a multiplex value nobody asked for
      break;
    }
  }
  std::optional<Mask>& last = job.last[index];
  if (last.has_value() && Equal(*last, content, job.masks[index])) return false;
  last = content;
  return Throttle(job, frame);
}

void BcmReceive::TakeDue(int64_t now_ns, std::vector<CanFrame>* out) {
  for (auto& [key, job] : jobs_) {
    if (!job.held.has_value() || now_ns - job.last_sent_ns < job.throttle_ns) continue;
    out->push_back(*job.held);
    job.held.reset();
    job.last_sent_ns = now_ns;
  }
}

FilterSet BcmReceive::ChannelFilters() const {
  std::vector<CanFilter> filters;
  for (const auto& [key, job] : jobs_) {
    filters.push_back({key.id, key.extended ? kCanExtIdMax : kCanStdIdMax, key.extended});
  }
  return filters.empty() ? FilterSet::Nothing() : FilterSet(std::move(filters));
}

}  // namespace canserver
