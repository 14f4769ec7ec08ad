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
  return absl::OkStatus();
}

void BudgetedPeriodicJobs::Release(uint32_t arbitration_id) {
  auto it = load_.find(arbitration_id);
  if (it == load_.end()) return;
  channel_->ReleasePeriodicLoad(it->second);
  load_.erase(it);
}

absl::Status BudgetedPeriodicJobs::Stop(uint32_t arbitration_id) {
  Release(arbitration_id);
  // Stopping a job that already ended (or never existed) is harmless, as in python-can.
  if (absl::Status s = jobs_->Stop(arbitration_id); !s.ok() && !absl::IsNotFound(s)) {
    return absl::UnavailableError(absl::StrCat("periodic job: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace canserver
