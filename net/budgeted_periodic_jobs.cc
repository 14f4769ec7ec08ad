#include "net/budgeted_periodic_jobs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canserver {

BudgetedPeriodicJobs::~BudgetedPeriodicJobs() {
  jobs_.reset();  // stopped first: nothing sends on a share already given back
  for (const auto& [id, load] : load_) channel_->ReleasePeriodicLoad(load);
}

absl::Status BudgetedPeriodicJobs::Start(const PeriodicRequest& start) {
  // Modifying an existing job is always allowed; only new ones count against the limit.
  if (jobs_->size() >= options_.max_periodic_jobs && !jobs_->Contains(start.frame.id)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "too many periodic jobs: at most %d per session", options_.max_periodic_jobs));
  }
  if (start.period < options_.min_periodic_period) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "periodic job: a period of %s is below the shortest allowed, %s",
        absl::FormatDuration(start.period), absl::FormatDuration(options_.min_periodic_period)));
  }
  // The channel's jobs together may not send more than the bus carries.
  const int64_t load =
      1'000'000'000'000 / std::max<int64_t>(1, absl::ToInt64Nanoseconds(start.period));
  auto [it, fresh] = load_.try_emplace(start.frame.id, 0);
  const int64_t delta = load - it->second;
  int64_t cap = options_.max_periodic_rate;
  const int32_t bitrate = cap > 0 ? 0 : channel_->backend().timing().bitrate;
  if (cap <= 0) cap = bitrate > 0 ? bitrate / 50 : ServerOptions::kDefaultPeriodicRate;
  if (delta > 0 && !channel_->ReservePeriodicLoad(delta, cap * 1000)) {
    if (fresh) load_.erase(it);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "periodic job: the channel's periodic jobs would send %.0f frames/s, more than the %d "
        "frames/s allowed (%s; canserver --max-periodic-rate)",
        static_cast<double>(channel_->periodic_load() + delta) / 1000, cap,
        bitrate > 0 ? absl::StrFormat("what %d bit/s carries", bitrate)
                    : std::string("a bus without bit timing")));
  }
  absl::Status s = jobs_->Start(start.frame, start.period, start.duration);
  if (!s.ok()) {
    if (delta > 0) channel_->ReleasePeriodicLoad(delta);
    if (fresh) load_.erase(it);
    return absl::UnavailableError(absl::StrCat("periodic job: ", s.message()));
  }
  if (delta < 0) channel_->ReleasePeriodicLoad(-delta);
  it->second = load;
  requests_[start.frame.id] = {start, absl::Now()};
  return absl::OkStatus();
}

void BudgetedPeriodicJobs::Pause() {
  if (paused_) return;
  paused_ = true;
  for (const auto& [id, job] : requests_) {
    if (jobs_->Contains(id) && jobs_->Stop(id).ok()) paused_ids_.push_back(id);
  }
}

void BudgetedPeriodicJobs::Resume(absl::Time now) {
  if (!paused_) return;
  paused_ = false;
  for (const uint32_t id : paused_ids_) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;  // stopped while paused
    const PeriodicRequest& r = it->second.request;
    absl::Duration left = r.duration;
    if (left > absl::ZeroDuration()) {
      left = it->second.started + r.duration - now;
      if (left <= absl::ZeroDuration()) {  // its time ran out during the lease
        Release(id);
        requests_.erase(it);
        continue;
      }
    }
    if (!jobs_->Start(r.frame, r.period, left).ok()) {
      Release(id);
      requests_.erase(it);
    }
  }
  paused_ids_.clear();
}

void BudgetedPeriodicJobs::Release(uint32_t arbitration_id) {
  auto it = load_.find(arbitration_id);
  if (it == load_.end()) return;
  channel_->ReleasePeriodicLoad(it->second);
  load_.erase(it);
}

absl::Status BudgetedPeriodicJobs::Stop(uint32_t arbitration_id) {
  Release(arbitration_id);
  requests_.erase(arbitration_id);
  if (paused_) return absl::OkStatus();  // Pause() stopped it already
  // Stopping a job that already ended (or never existed) is harmless, as in python-can.
  if (absl::Status s = jobs_->Stop(arbitration_id); !s.ok() && !absl::IsNotFound(s)) {
    return absl::UnavailableError(absl::StrCat("periodic job: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace canserver
