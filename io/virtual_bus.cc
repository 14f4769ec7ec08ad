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

// Periodic jobs timed by one timerfd each on the session's io loop.
class TimerPeriodicJobs final : public PeriodicJobs {
 public:
  TimerPeriodicJobs(std::shared_ptr<VirtualBus> bus, EventLoop* loop)
      : bus_(std::move(bus)), loop_(loop) {}
  ~TimerPeriodicJobs() override {
    for (auto& [id, job] : jobs_) loop_->Remove(job.fd.get());
  }

  absl::Status Start(const CanFrame& frame, absl::Duration period,
                     absl::Duration duration) override {
    auto it = jobs_.find(frame.id);
    if (it == jobs_.end()) {
      const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      if (fd < 0) return ErrnoStatus("timerfd_create");
      Job fresh;
      fresh.fd.Reset(fd);
      it = jobs_.emplace(frame.id, std::move(fresh)).first;
      const uint32_t id = frame.id;
      absl::Status added = loop_->Add(fd, EPOLLIN, [this, id](uint32_t) { Fire(id); });
      if (!added.ok()) {
        jobs_.erase(it);
        return added;
      }
    }
    Job& job = it->second;
    const bool same_timing = job.period == period && job.duration == duration;
    job.frame = frame;
    if (same_timing && job.running) return absl::OkStatus();  // data-only modify keeps the phase
    job.period = period;
    job.duration = duration;
    job.remaining = PeriodicFrameCount(period, duration);
    job.running = true;
    // First frame at once, as python-can and the broadcast manager (TX_ANNOUNCE) do.
    bus_->Inject(frame);
    if (job.remaining > 0 && --job.remaining == 0) {
      job.running = false;
      return Arm(job, absl::ZeroDuration());
    }
    return Arm(job, period);
  }

  absl::Status Stop(uint32_t arbitration_id) override {
    auto it = jobs_.find(arbitration_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(
          absl::StrFormat("no periodic job for arbitration id 0x%X", arbitration_id));
    }
    loop_->Remove(it->second.fd.get());
    jobs_.erase(it);
    return absl::OkStatus();
  }

  bool Contains(uint32_t arbitration_id) const override { return jobs_.count(arbitration_id) > 0; }
  size_t size() const override { return jobs_.size(); }

 private:
  struct Job {
    UniqueFd fd;
    CanFrame frame;
    absl::Duration period;
    absl::Duration duration;
    int64_t remaining = 0;  // frames left to send; 0 = unlimited
    bool running = false;
  };

  static absl::Status Arm(Job& job, absl::Duration period) {
    itimerspec spec{};
    spec.it_interval = absl::ToTimespec(period);
    spec.it_value = spec.it_interval;
    if (::timerfd_settime(job.fd.get(), 0, &spec, nullptr) != 0) {
      return ErrnoStatus("timerfd_settime");
    }
    return absl::OkStatus();
  }

  void Fire(uint32_t id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    uint64_t expirations = 0;
    if (::read(job.fd.get(), &expirations, sizeof expirations) != sizeof expirations) return;
    if (!job.running) return;
    // A late loop catches up with the frames it owes, as a kernel timer would have sent them.
    for (uint64_t i = 0; i < expirations; ++i) {
      bus_->Inject(job.frame);
      if (job.remaining > 0 && --job.remaining == 0) {
        job.running = false;
        (void)Arm(job, absl::ZeroDuration());
        break;
      }
    }
  }

  std::shared_ptr<VirtualBus> bus_;
  EventLoop* loop_;
  std::map<uint32_t, Job> jobs_;
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

int64_t VirtualBus::WireBits(const CanFrame& frame) noexcept {
  const int64_t data = frame.remote() ? 0 : int64_t{frame.len} * 8;
  return (frame.extended() ? 67 : 47) + data;
}

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
  return std::make_unique<TimerPeriodicJobs>(shared_from_this(), loop);
}

}  // namespace canserver
