// CanBackend: one CAN channel as the CAN thread sees it — a receive fd, batched receive and send —
// plus the per-session periodic transmit jobs, which each backend times its own way
// (the kernel's CAN_BCM on SocketCAN, timerfd on the virtual bus).
//
// Receive(), Send() and PrepareSleep() belong to the channel's CAN thread; CreatePeriodicJobs()
// is called by a session's io thread and the jobs it returns belong to that thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "core/frame.h"
#include "core/isotp_config.h"
#include "io/unique_fd.h"

namespace canserver {

class EventLoop;

// One session's periodic transmit jobs, keyed by arbitration id. Destroying it stops every job.
// Owning io thread only.
class PeriodicJobs {
 public:
  virtual ~PeriodicJobs() = default;
  // Starts a job sending `frame` every `period`, for `duration` (zero: until stopped). A job that
  // already exists for the id is modified: new data and period; restarted if it had ended.
  virtual absl::Status Start(const CanFrame& frame, absl::Duration period,
                             absl::Duration duration) = 0;
  // Stops the job for the id; NotFound if there is none.
  virtual absl::Status Stop(uint32_t arbitration_id) = 0;
  virtual bool Contains(uint32_t arbitration_id) const = 0;
  virtual size_t size() const = 0;
  // Periods skipped because the loop came late (a job sends once, not a backlog); where the
  // kernel times the jobs (SocketCAN's broadcast manager), 0: it keeps no such count.
  virtual uint64_t skipped() const { return 0; }
};

// What the bus itself says about its timing and state.
struct BusTiming {
  int32_t bitrate = 0;       // nominal bit/s; 0: the interface has no bit timing (vcan, virtual)
  int32_t data_bitrate = 0;  // CAN FD data phase; 0: none (classic-only or no bit timing)
  std::string state;         // "error-active", "error-passive", "bus-off", …; empty where unknown
  int tx_errors = -1;        // the controller's error counters; -1 where the driver has none
  int rx_errors = -1;
};

class CanBackend {
 public:
  virtual ~CanBackend() = default;

  // The bus's bit rate and state as the interface reports them (netlink on SocketCAN). A control
  // path call (one netlink round trip). Thread-safe.
  virtual BusTiming timing() const { return {}; }
  // Sets the bus's bit rate (SocketCAN: interface down, bit timing, up; needs CAP_NET_ADMIN).
  // Errors say why, e.g. the missing permission. Thread-safe; the caller makes sure no other
  // client is using the bus.
  // The nominal bit rates the controller can run, in bit/s (SocketCAN: from the driver's
  // bit-timing limits and clock; else the classic CAN range). SetBitrate refuses others.
  struct BitrateRange {
    int32_t min = 5'000;
    int32_t max = 1'000'000;
  };
  virtual BitrateRange bitrate_range() const { return {}; }
  virtual absl::Status SetBitrate(int32_t bitrate) {
    return absl::UnimplementedError(
        absl::StrCat(channel_info(), " has no bit timing to set (to ", bitrate, " bit/s)"));
  }

  // "socketcan channel 'can0'", "virtual channel 'vcan0'"… for BusResponse and logs. Thread-safe.
  virtual std::string channel_info() const = 0;
  // "can0": the channel's name, for metrics labels and the status page. Thread-safe.
  virtual std::string name() const = 0;

  // Sets how long after bus-off the controller restarts by itself (0: never; SocketCAN:
  // interface down, restart-ms, up; needs CAP_NET_ADMIN). Thread-safe.
  virtual absl::Status SetRestartMs(uint32_t restart_ms) {
    return absl::UnimplementedError(absl::StrCat(
        channel_info(), " has no controller to restart (restart-ms ", restart_ms, ")"));
  }

  // Readable when Receive() may return frames. CAN thread only.
  virtual int rx_fd() const = 0;
  // Changes whenever rx_fd() is replaced by another socket (an interface that went away and came
  // back), so the CAN thread re-registers it even when the new fd reuses the old number.
  virtual uint64_t rx_fd_epoch() const noexcept { return 0; }
  // Non-blocking: fills up to `max` frames with bus timestamps; returns how many. Frames the
  // kernel dropped before we could read them are added to *kernel_drops. CAN thread only.
  virtual size_t Receive(CanFrame* out, size_t max, uint64_t* kernel_drops) noexcept = 0;
  // Writes frames in order; returns how many the bus accepted. If fewer than n, *error holds the
  // errno for frames[returned] (which was refused): ENOBUFS or EAGAIN when the bus or its device
  // queue is merely full (the CAN thread keeps the frame and retries), anything else when waiting
  // cannot help (ENETDOWN, ENODEV, EINVAL…). CAN thread only.
  virtual size_t Send(const CanFrame* frames, size_t n, int* error) noexcept = 0;
  // After Send() answered ENOBUFS/EAGAIN: how long until the bus surely has room again, where the
  // backend knows it (the virtual bus's emulated wire); 0 when it cannot tell, and the CAN thread
  // backs off adaptively. CAN thread only.
  virtual int64_t TxRetryHintNs() const noexcept { return 0; }
  // Called before the CAN thread sleeps on rx_fd(). Returns false if frames are already waiting
  // (so it must not sleep). CAN thread only.
  virtual bool PrepareSleep() noexcept { return true; }
  virtual void WakeDone() noexcept {}

  // A non-blocking ISO-TP socket (the kernel's CAN_ISOTP) on this channel, bound to the config's
  // ids, for one session: it reads whole PDUs and writes them (EAGAIN while one is in flight).
  // Owning io thread only.
  virtual absl::StatusOr<UniqueFd> OpenIsoTp(const IsoTpConfig& config) {
    (void)config;
    return absl::UnimplementedError(
        absl::StrCat("ISO-TP needs a SocketCAN interface (the kernel's can-isotp); ",
                     channel_info(), " has none"));
  }

  // The periodic jobs of one session whose io thread runs `loop`. Owning io thread only.
  virtual absl::StatusOr<std::unique_ptr<PeriodicJobs>> CreatePeriodicJobs(EventLoop* loop) = 0;
};

// Number of frames a periodic job sends for a duration: one at t=0 and then one per period while
// t < duration; 0 = unlimited.
inline int64_t PeriodicFrameCount(absl::Duration period, absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return 0;
  return (duration + period - absl::Nanoseconds(1)) / period;
}

// OK if the backend's controller runs `bitrate`, else an error naming the range.
inline absl::Status CheckBitrate(const CanBackend& backend, int32_t bitrate) {
  const CanBackend::BitrateRange r = backend.bitrate_range();
  if (bitrate >= r.min && bitrate <= r.max) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrFormat("%d bit/s is not a rate %s can run: %d to %d bit/s",
                                               bitrate, backend.channel_info(), r.min, r.max));
}

}  // namespace canserver
