// CanChannel: one CAN channel and its CAN thread.
//
// The CAN thread owns the backend. It reads frames in batches, matches each subscriber's filters
// and pushes into that subscriber's ring. It drains the subscribers' transmit queues round-robin
// (one frame of each client with frames waiting per round), writes to the bus in batches, and
// fans each written frame out to the *other* subscribers. Being the single producer of every ring,
// it is the one place where bus order is decided. A full ring drops the frame for that subscriber
// only, and counts it.
//
// The transmit path (docs/architecture.md, "Transmit"): a frame the bus cannot take yet (ENOBUFS,
// EAGAIN: a busy bus, a full device queue) is kept and retried after a backoff; meanwhile the
// client's queue fills and its io thread stops reading the client, so TCP slows the client to the
// bus rate. A frame is refused (TransmitFail to its sender, counted by reason) only when the bus
// gives a reason waiting cannot fix, or when the bus has taken nothing for `tx_timeout`.
//
//   auto channel = CanChannel::Create(backend, {});
//   (*channel)->Start();
//   (*channel)->Subscribe(sub, FilterSet{});        // any thread
//   (*channel)->Transmit(*sub, frame);              // sub's io thread
//
// Thread-safety: Subscribe/SetFilters/Unsubscribe and the accessors are thread-safe; the commands
// take effect on the CAN thread in the order they were called. Transmit() is called by the
// subscriber's io thread only (the single producer of its tx queue).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/bus_state.h"
#include "core/channel_lease.h"
#include "core/counters.h"
#include "core/filter.h"
#include "core/queues.h"
#include "core/transmit_scheduler.h"
#include "core/wake_gate.h"
#include "io/can_backend.h"
#include "io/subscriber.h"
#include "io/thread_util.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"

namespace canserver {

struct CanChannelOptions {
  bool error_frames = false;  // deliver error frames to clients
  // A frame is refused with TransmitFail once the bus has accepted nothing for this long while it
  // waited (bus-off, no other node acking, a stalled queue). Zero: wait forever.
  absl::Duration tx_timeout = absl::Seconds(1);
  int cpu = -1;  // the CAN thread runs on this CPU only (--cpu-affinity); -1: anywhere
};

class CanChannel {
 public:
  static absl::StatusOr<std::unique_ptr<CanChannel>> Create(std::shared_ptr<CanBackend> backend,
                                                            CanChannelOptions options);
  ~CanChannel();

  // Starts the CAN thread. Call once.
  void Start();
  // Stops and joins the CAN thread; idempotent. Frames still queued for the bus are discarded.
  void Stop();

  void Subscribe(std::shared_ptr<Subscriber> subscriber, FilterSet filters);
  void SetFilters(uint64_t subscriber_id, FilterSet filters);
  // The subscriber receives nothing more; frames it queued before are still written (as a closed
  // socket's queued frames still leave the device), then the channel lets go of it.
  void Unsubscribe(uint64_t subscriber_id);

  // Queues `frame` for the bus on behalf of `sub`. Returns false, leaving the queue unchanged,
  // when sub's tx queue is full: the caller keeps the frame and stops reading its client until
  // sub.tx_gate says there is room (never a TransmitFail). Never allocates. sub's io thread only.
  // `queued_ns` (CLOCK_REALTIME) is when the frame was queued, for tx_wait; 0: now. A caller that
  // queues many frames at once passes one reading for all: without a vDSO clock every reading is a
  // syscall (docs/benchmarks.md). `wake` false: the caller queues more at once and calls
  // WakeForTransmit() after the last, so the CAN thread takes them in one batch (one write per
  // client it fans them out to) instead of waking at the first and writing them one by one.
  [[nodiscard]] bool Transmit(Subscriber& sub, CanFrame frame, int64_t queued_ns = 0,
                              bool wake = true) noexcept;
  // Wakes the CAN thread (if it sleeps) for frames queued with wake = false. sub's io thread.
  void WakeForTransmit() noexcept {
    if (gate_.ShouldNotify()) wakeup_.Notify();
  }

  const ChannelCounters& counters() const { return counters_; }
  // CPU time the CAN thread has used; call while the channel runs (between Start and Stop).
  absl::Duration CpuTime() { return ThreadCpuTime(thread_); }
  // Loop passes of the CAN thread so far: it passes at least once every kMaxSleep, so a count
  // that stops means a wedged thread (the systemd watchdog, RemoteServer::StalledThreads).
  uint64_t passes() const noexcept { return passes_.load(std::memory_order_relaxed); }
  static constexpr int kMaxSleepMs = 1000;
  // Bus time → encoded for a client's socket, all clients of the channel. Any thread.
  DeliveryLatency& delivery_latency() { return delivery_latency_; }
  const DeliveryLatency& delivery_latency() const { return delivery_latency_; }
  // A client's frame decoded by its io thread → written to the bus (its wait in the transmit
  // queue, the CAN thread's wake-up and a bus that is busy). Any thread.
  DeliveryLatency& tx_wait_latency() { return tx_wait_latency_; }
  const DeliveryLatency& tx_wait_latency() const { return tx_wait_latency_; }
  // The controller state the last state-announcing error frame gave ("error-active" until one
  // says otherwise). Thread-safe.
  BusState bus_state() const { return bus_state_.load(std::memory_order_relaxed); }
  CanBackend& backend() { return *backend_; }
  std::string channel_info() const { return backend_->channel_info(); }
  // Subscribers the CAN thread currently serves (for tests and logs).
  size_t subscriber_count() const { return subscriber_count_.load(std::memory_order_acquire); }

  // The periodic jobs of every session on this channel, in frames per second (× 1000), so their
  // sum stays within what the bus carries (net::Session::StartPeriodic). Reserve adds `delta`
  // unless the total would pass `cap`; Release takes it back. Thread-safe.
  bool ReservePeriodicLoad(int64_t delta, int64_t cap) noexcept {
    int64_t load = periodic_load_.load(std::memory_order_relaxed);
    do {
      if (load + delta > cap) return false;
    } while (!periodic_load_.compare_exchange_weak(load, load + delta, std::memory_order_relaxed));
    return true;
  }
  void ReleasePeriodicLoad(int64_t delta) noexcept {
    periodic_load_.fetch_sub(delta, std::memory_order_relaxed);
  }
  int64_t periodic_load() const noexcept { return periodic_load_.load(std::memory_order_relaxed); }
  // Who may transmit while a client holds the channel (core/channel_lease.h). Thread-safe.
  ChannelLease& lease() const { return lease_; }
  // The subscribers between Subscribe() and Unsubscribe(), for their counters (status, tests).
  // Thread-safe; a snapshot.
  std::vector<std::shared_ptr<const Subscriber>> Subscribers() const;

 private:
  static constexpr size_t kBatch = 64;
  static_assert(kBatch <= DirectSink::kMaxFrames);

  struct Command {
    enum class Kind { kSubscribe, kSetFilters, kUnsubscribe } kind;
    uint64_t id = 0;
    std::shared_ptr<Subscriber> subscriber;
    FilterSet filters;
  };
  struct Entry {
    std::shared_ptr<Subscriber> subscriber;
    FilterSet filters;
    bool needs_wake = false;
    bool tx_popped = false;  // frames left its tx queue since the last FlushWakeups
    bool leaving = false;    // unsubscribed; kept only until its queued frames are written
    // Frames taken from the tx queue but not yet written, oldest first: at most one batch.
    std::unique_ptr<CanFrame[]> carry = std::make_unique<CanFrame[]>(kBatch);
    size_t carry_count = 0;
    size_t written = 0;  // scratch while a batch is written
    // Frames of this batch for a direct write to the client (Subscriber::sink), oldest first.
    std::unique_ptr<CanFrame[]> direct = std::make_unique<CanFrame[]>(kBatch);
    size_t direct_count = 0;
  };

  CanChannel(std::shared_ptr<CanBackend> backend, CanChannelOptions options, Wakeup wakeup,
             UniqueFd retry_timer);
  void Post(Command command);
  void Run(std::stop_token stop);
  void ApplyCommands();
  void ReapLeaving();
  bool ReceiveBatch();
  void NoteBusState(const CanFrame& frame) noexcept;
  bool TransmitBatch();
  size_t BuildBatch();
  void DropCarryFront(Entry& e, size_t n) noexcept;
  void Refuse(size_t batch_index, bool timeout, int error) noexcept;
  void FanOut(const CanFrame& frame, uint64_t origin) noexcept;
  // Ends a batch's fan-out: writes each entry's direct frames to its client (DirectSink), or, if
  // the io thread took the output back meanwhile, into its ring.
  void WriteDirect() noexcept;
  void WriteDirect(Entry& e, int64_t now) noexcept;
  void PushToRing(Entry& e, const CanFrame* frames, size_t n) noexcept;
  // Whether a batch of `n` frames may be written directly (the rule at kMaxDirectBatch);
  // `last` is the size of the previous batch of its kind (received or written), updated.
  bool QuietBatch(size_t n, size_t* last) noexcept;
  void FlushWakeups() noexcept;
  bool TxWaiting() const noexcept;
  void Sleep(int epfd) noexcept;

  std::shared_ptr<CanBackend> backend_;
  const CanChannelOptions options_;
  Wakeup wakeup_;
  WakeGate gate_;
  UniqueFd retry_timer_;  // timerfd: the CAN thread sleeps until the bus is worth retrying

  mutable std::mutex registry_mu_;
  std::vector<std::shared_ptr<const Subscriber>> registry_;  // guarded by registry_mu_

  std::mutex commands_mu_;
  std::vector<Command> commands_;  // guarded by commands_mu_
  std::atomic<bool> commands_pending_{false};

  // CAN thread only.
  std::vector<Entry> entries_;
  size_t leaving_ = 0;
  CanFrame batch_[kBatch];
  size_t batch_entry_[kBatch];
  // Round-robin batches and the retry/refusal policy (entries_ are its lanes).
  TransmitScheduler scheduler_{absl::ToInt64Nanoseconds(options_.tx_timeout)};
  std::vector<size_t> waiting_;  // frames each entry carries, scratch for BuildBatch
  std::vector<const Wakeup*> to_wake_;
  // Direct writes only on a quiet bus: small batches, after a sleep or after another small
  // batch. A busy bus keeps the thread looping over full batches (and the small one ending a
  // burst follows a full one), and then the io threads share the sockets' work: with the CAN
  // thread writing every idle socket itself it became the bottleneck (docs/benchmarks.md,
  // "Direct writes").
  static constexpr size_t kMaxDirectBatch = kBatch / 2;
  bool woke_ = false;  // this pass follows a sleep
  size_t last_rx_batch_ = 0;
  size_t last_tx_batch_ = 0;
  bool direct_batch_ = false;           // this batch may be written directly
  std::vector<size_t> direct_entries_;  // entries with direct frames in this batch

  ChannelCounters counters_;
  DeliveryLatency delivery_latency_;
  DeliveryLatency tx_wait_latency_;
  std::atomic<BusState> bus_state_{BusState::kErrorActive};
  std::atomic<size_t> subscriber_count_{0};
  mutable ChannelLease lease_;             // thread-safe itself
  std::atomic<int64_t> periodic_load_{0};  // milli-frames/s of every session's periodic jobs
  std::atomic<uint64_t> passes_{0};        // CAN thread: each loop pass
  std::jthread thread_;
};

}  // namespace canserver
