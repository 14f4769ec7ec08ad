// VirtualBus: an in-process CAN bus for machines without CAN hardware (development, CI, demos,
// benchmarks of the server itself). Frames written by the server are accepted at once, as if an
// idle bus had carried them; frames from "other nodes" enter with Inject(). Fault injection
// (SetTxError) makes the bus refuse writes the way SocketCAN does (ENOBUFS, ENETDOWN).
//
//   auto bus = VirtualBus::Create("vbus0");
//   bus->Inject(CanFrame::Classic(0x123, {1, 2}));   // any thread
//
// Periodic jobs are timed by timerfds on the session's io loop and enter the bus through Inject(),
// so, as with SocketCAN's broadcast manager, every client sees them — the starter included.
//
// Bit-rate emulation (`bitrate` > 0, canserver --virtual-bitrate): a written frame occupies the
// wire for its nominal length in bits (no stuffing: 47 + 8·len bits standard, 67 + 8·len
// extended, at the nominal rate also for CAN FD) and waits in a device queue of `device_queue`
// frames, like a real controller behind `txqueuelen`; a write into a full queue fails with
// ENOBUFS, exactly as SocketCAN does. Frames from Inject() (other nodes, periodic jobs) do not
// take wire time.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/queues.h"
#include "core/wake_gate.h"
#include "io/can_backend.h"
#include "io/clock.h"
#include "io/wakeup.h"

namespace canserver {

class VirtualBus final : public CanBackend, public std::enable_shared_from_this<VirtualBus> {
 public:
  // `inject_capacity` bounds the frames waiting to enter the bus; more are refused and counted.
  // `bitrate` > 0 turns on the bit-rate emulation described above.
  static absl::StatusOr<std::shared_ptr<VirtualBus>> Create(std::string channel,
                                                            size_t inject_capacity = 65536,
                                                            int bitrate = 0,
                                                            size_t device_queue = 10);

  // Puts a frame on the bus as if another node sent it. A zero timestamp is set to now.
  // Returns false (and counts it) when the inject queue is full. Thread-safe.
  bool Inject(CanFrame frame);
  // Makes every following Send() fail with `err` (0 = accept again). Thread-safe.
  void SetTxError(int err) { tx_error_.store(err, std::memory_order_relaxed); }
  uint64_t inject_drops() const { return inject_drops_.load(std::memory_order_relaxed); }

  std::string channel_info() const override { return "virtual channel '" + channel_ + "'"; }
  std::string name() const override { return channel_; }
  int rx_fd() const override { return wakeup_.fd(); }
  size_t Receive(CanFrame* out, size_t max, uint64_t* kernel_drops) noexcept override;
  size_t Send(const CanFrame* frames, size_t n, int* error) noexcept override;
  int64_t TxRetryHintNs() const noexcept override;
  // The emulated wire's bit rate (none without --virtual-bitrate).
  BusTiming timing() const override;
  // Changes the emulated wire's bit rate; a bus without one has no bit timing to set.
  absl::Status SetBitrate(int32_t bitrate) override;
  bool PrepareSleep() noexcept override;
  void WakeDone() noexcept override { wakeup_.Drain(); }
  absl::StatusOr<std::unique_ptr<PeriodicJobs>> CreatePeriodicJobs(EventLoop* loop) override;

 private:
  VirtualBus(std::string channel, Wakeup wakeup, size_t inject_capacity, int bitrate,
             size_t device_queue);

  const std::string channel_;
  Wakeup wakeup_;
  WakeGate gate_;
  MpscQueue<CanFrame> injected_;
  std::atomic<int> tx_error_{0};
  std::atomic<uint64_t> inject_drops_{0};

  // Bit-rate emulation; CAN thread only. done_at_ holds, oldest first, when each frame in the
  // device queue leaves the wire (CLOCK_MONOTONIC ns), as a ring of device_queue_ slots.
  std::atomic<int> bitrate_;  // set by SetBitrate (any thread), read by the CAN thread
  const size_t device_queue_;
  std::vector<int64_t> done_at_;
  size_t done_head_ = 0;
  size_t queued_ = 0;
  int64_t wire_free_at_ = 0;
};

}  // namespace canserver
