// BudgetedPeriodicJobs: one session's periodic transmit jobs (the backend's PeriodicJobs), kept
// within the server's limits — jobs per session (--max-periodic-jobs), the shortest period
// (--min-period) and the rate of every job on the channel together (--max-periodic-rate;
// default: what the bus's bit rate carries), so no client can fill the bus with timers. Both
// front ends reach it through SessionActions::StartPeriodic/StopPeriodic.
//
// Owning io thread only. Destroying it stops the jobs and gives their share of the channel's
// rate back.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/server_protocol.h"
#include "io/can_backend.h"
#include "io/can_channel.h"
#include "net/server_options.h"

namespace canserver {

class BudgetedPeriodicJobs {
 public:
  BudgetedPeriodicJobs(std::unique_ptr<PeriodicJobs> jobs, CanChannel* channel,
                       const ServerOptions& options)
      : jobs_(std::move(jobs)), channel_(channel), options_(options) {}
  ~BudgetedPeriodicJobs();
  BudgetedPeriodicJobs(const BudgetedPeriodicJobs&) = delete;
  BudgetedPeriodicJobs& operator=(const BudgetedPeriodicJobs&) = delete;

  // Starts (or modifies) the job for request.frame.id; an error naming the limit and its flag.
  absl::Status Start(const PeriodicRequest& request);
  // Stops the job; one that already ended (or never existed) is no error, as in python-can.
  absl::Status Stop(uint32_t arbitration_id);
  // Periods the jobs skipped because their loop came late (PeriodicJobs::skipped).
  uint64_t skipped() const { return jobs_->skipped(); }
  // Another client's lease (core/channel_lease.h): the running jobs stop sending, keeping their
  // share of the channel's rate, and Resume() starts them again with the time their duration has
  // left (a duration counts on while paused). Start() must not be called while paused.
  void Pause();
  void Resume(absl::Time now);
  bool paused() const { return paused_; }
  size_t size() const { return requests_.size(); }

 private:
  // Gives the job's share of the channel's periodic rate back.
  void Release(uint32_t arbitration_id);

  std::unique_ptr<PeriodicJobs> jobs_;
  CanChannel* const channel_;
  const ServerOptions& options_;
  struct Job {
    PeriodicRequest request;
    absl::Time started;
  };
  // Every job started and not stopped (some may have run their duration out), by id.
  std::map<uint32_t, Job> requests_;
  std::vector<uint32_t> paused_ids_;  // the jobs Pause() stopped
  bool paused_ = false;
  // Each job's share of the channel's periodic rate (CanChannel::ReservePeriodicLoad), by id.
  std::map<uint32_t, int64_t> load_;
};

}  // namespace canserver
