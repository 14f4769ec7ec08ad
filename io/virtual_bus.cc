#include "io/virtual_bus.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "io/clock.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"

namespace canserver {

namespace {

// Periodic jobs of one session, all timed by one timerfd on the session's io loop (armed for the
// earliest job): a session costs one descriptor however many jobs it runs. A loop that comes late
// sends each late job's frame once and skips the periods it missed (counted in skipped()), as a
// busy kernel's broadcast manager would not catch up either: a backlog of thousands of frames
// sent at once would only wedge the io thread (#24).
class TimerPeriodicJobs final : public PeriodicJobs {
 public:
  static absl::StatusOr<std::unique_ptr<TimerPeriodicJobs>> Create(std::shared_ptr<VirtualBus> bus,
                                                                   EventLoop* loop) {
    UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus("timerfd_create");
    auto jobs = std::unique_ptr<TimerPeriodicJobs>(
        new TimerPeriodicJobs(std::move(bus), loop, std::move(fd)));
    TimerPeriodicJobs* self = jobs.get();
    RETURN_IF_ERROR(loop->Add(self->timer_.get(), EPOLLIN, [self](uint32_t) { self->Fire(); }));
    return jobs;
  }
  ~TimerPeriodicJobs() override { loop_->Remove(timer_.get()); }

  absl::Status Start(const CanFrame& frame, absl::Duration period,
                     absl::Duration duration) override {
    Job& job = jobs_[frame.id];
    const bool same_timing = job.period == period && job.duration == duration;
    job.frame = frame;
    if (same_timing && job.running) return absl::OkStatus();  // data-only modify keeps the phase
    job.period = period;
    job.duration = duration;
    job.remaining = PeriodicFrameCount(period, duration);
    job.running = true;
    // First frame at once, as python-can and the broadcast manager (TX_ANNOUNCE) do.
    bus_->Inject(frame);
    if (job.remaining > 0 && --job.remaining == 0) job.running = false;
    job.next_ns = MonotonicNanos() + absl::ToInt64Nanoseconds(period);
    return Rearm();
  }

  absl::Status Stop(uint32_t arbitration_id) override {
    if (jobs_.erase(arbitration_id) == 0) {
      return absl::NotFoundError(
          absl::StrFormat("no periodic job for arbitration id 0x%X", arbitration_id));
    }
    return Rearm();
  }

  bool Contains(uint32_t arbitration_id) const override { return jobs_.count(arbitration_id) > 0; }
  size_t size() const override { return jobs_.size(); }
  uint64_t skipped() const override { return skipped_; }

 private:
  struct Job {
    CanFrame frame;
    absl::Duration period;
    absl::Duration duration;
    int64_t next_ns = 0;    // CLOCK_MONOTONIC: the next frame is due
    int64_t remaining = 0;  // frames left to send; 0 = unlimited
    bool running = false;
  };

  TimerPeriodicJobs(std::shared_ptr<VirtualBus> bus, EventLoop* loop, UniqueFd timer)
      : bus_(std::move(bus)), loop_(loop), timer_(std::move(timer)) {}

  // Arms the timer for the earliest running job (disarms it when none runs).
  absl::Status Rearm() {
    int64_t earliest = INT64_MAX;
    for (const auto& [id, job] : jobs_) {
      if (job.running) earliest = std::min(earliest, job.next_ns);
    }
    itimerspec spec{};
    if (earliest != INT64_MAX) {
      const int64_t at = std::max<int64_t>(earliest, 1);
      spec.it_value.tv_sec = at / 1'000'000'000;
      spec.it_value.tv_nsec = at % 1'000'000'000;
    }
    if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
      return ErrnoStatus("timerfd_settime");
    }
    return absl::OkStatus();
  }

  void Fire() {
    uint64_t expirations = 0;
    if (::read(timer_.get(), &expirations, sizeof expirations) != sizeof expirations) return;
    const int64_t now = MonotonicNanos();
    for (auto& [id, job] : jobs_) {
      if (!job.running || job.next_ns > now) continue;
      const int64_t period = absl::ToInt64Nanoseconds(job.period);
      const int64_t missed = (now - job.next_ns) / period;  // periods wholly past: skipped
      bus_->Inject(job.frame);
      job.next_ns += (missed + 1) * period;
      skipped_ += static_cast<uint64_t>(missed);
      if (job.remaining > 0) {
        // Skipped periods count against the job's duration: it still ends on time.
        job.remaining -= std::min<int64_t>(job.remaining, missed + 1);
        if (job.remaining == 0) job.running = false;
      }
    }
    (void)Rearm();
  }

  std::shared_ptr<VirtualBus> bus_;
  EventLoop* loop_;
  UniqueFd timer_;
  std::map<uint32_t, Job> jobs_;
  uint64_t skipped_ = 0;
};

}  // namespace

absl::StatusOr<std::shared_ptr<VirtualBus>> VirtualBus::Create(std::string channel,
                                                               size_t inject_capacity, int bitrate,
                                                               size_t device_queue) {
  if (bitrate < 0 || (bitrate > 0 && device_queue < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "virtual bus: bit rate %d and device queue %d must be positive", bitrate, device_queue));
  }
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  return std::shared_ptr<VirtualBus>(new VirtualBus(std::move(channel), std::move(wakeup),
                                                    inject_capacity, bitrate, device_queue));
}

VirtualBus::VirtualBus(std::string channel, Wakeup wakeup, size_t inject_capacity, int bitrate,
                       size_t device_queue)
    : channel_(std::move(channel)),
      wakeup_(std::move(wakeup)),
      injected_(inject_capacity),
      bitrate_(bitrate),
      device_queue_(device_queue),
      done_at_(bitrate > 0 ? device_queue : 0) {}

bool VirtualBus::Inject(CanFrame frame) {
  if (frame.timestamp_ns == 0) frame.timestamp_ns = RealtimeNanos();
  if (!injected_.TryPush(frame)) {
    inject_drops_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (gate_.ShouldNotify()) wakeup_.Notify();
  return true;
}

size_t VirtualBus::Receive(CanFrame* out, size_t max, uint64_t* /*kernel_drops*/) noexcept {
  return injected_.PopBulk(out, max);
}

size_t VirtualBus::Send(const CanFrame* frames, size_t n, int* error) noexcept {
  const int err = tx_error_.load(std::memory_order_relaxed);
  if (err != 0) {
    *error = err;
    return 0;
  }
  const int64_t bitrate = bitrate_.load(std::memory_order_relaxed);
  if (bitrate == 0) return n;
  const int64_t now = MonotonicNanos();
  while (queued_ > 0 && done_at_[done_head_] <= now) {
    done_head_ = (done_head_ + 1) % device_queue_;
    --queued_;
  }
  for (size_t i = 0; i < n; ++i) {
    if (queued_ == device_queue_) {
      *error = ENOBUFS;  // as a real interface's full device queue answers
      return i;
    }
    const int64_t start = std::max(now, wire_free_at_);
    wire_free_at_ = start + WireBits(frames[i]) * 1'000'000'000 / bitrate;
    done_at_[(done_head_ + queued_) % device_queue_] = wire_free_at_;
    ++queued_;
  }
  return n;
}

BusTiming VirtualBus::timing() const {
  BusTiming t;
  t.bitrate = bitrate_.load(std::memory_order_relaxed);
  if (t.bitrate > 0) t.state = "error-active";
  return t;
}

absl::Status VirtualBus::SetBitrate(int32_t bitrate) {
  RETURN_IF_ERROR(CheckBitrate(*this, bitrate));
  if (bitrate <= 0 || bitrate_.load(std::memory_order_relaxed) == 0) {
    return CanBackend::SetBitrate(bitrate);
  }
  bitrate_.store(bitrate, std::memory_order_relaxed);
  return absl::OkStatus();
}

int64_t VirtualBus::TxRetryHintNs() const noexcept {
  if (bitrate_.load(std::memory_order_relaxed) == 0 || queued_ == 0) return 0;
  // Come back when a quarter of the queue has left the wire: room for a batch, never idle.
  const size_t slot = std::max<size_t>(1, device_queue_ / 4) - 1;
  return std::max<int64_t>(done_at_[(done_head_ + slot) % device_queue_] - MonotonicNanos(), 1000);
}

bool VirtualBus::PrepareSleep() noexcept {
  gate_.Arm();
  if (injected_.size_approx() > 0) {
    gate_.Disarm();
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<PeriodicJobs>> VirtualBus::CreatePeriodicJobs(EventLoop* loop) {
  ASSIGN_OR_RETURN(std::unique_ptr<TimerPeriodicJobs> jobs,
                   TimerPeriodicJobs::Create(shared_from_this(), loop));
  return jobs;
}

}  // namespace canserver
