// CanChannel: one CAN channel and its CAN thread.
//
// The CAN thread owns the backend. It reads frames in batches, matches each subscriber's filters
// and pushes into that subscriber's ring; it drains the tx queue, writes to the bus in batches and
// fans each written frame out to the *other* subscribers. Being the single producer of every ring,
// it is the one place where bus order is decided. A full ring drops the frame for that subscriber
// only, and counts it.
//
//   auto channel = CanChannel::Create(backend, {});
//   (*channel)->Start();
//   (*channel)->Subscribe(sub, FilterSet{});        // any thread
//   (*channel)->Transmit(sub->id, frame);           // any thread
//
// Thread-safety: every public method is thread-safe. Subscribe/SetFilters/Unsubscribe take effect
// on the CAN thread in the order they were called.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/counters.h"
#include "core/filter.h"
#include "core/queues.h"
#include "core/wake_gate.h"
#include "io/can_backend.h"
#include "io/subscriber.h"
#include "io/wakeup.h"

namespace canserver {

struct CanChannelOptions {
  size_t tx_queue_capacity = 8192;  // frames waiting for the bus, all clients together
  bool error_frames = false;        // deliver error frames to clients
};

class CanChannel {
 public:
  static absl::StatusOr<std::unique_ptr<CanChannel>> Create(std::shared_ptr<CanBackend> backend,
                                                            CanChannelOptions options);
  ~CanChannel();

  // Starts the CAN thread. Call once.
  void Start();
  // Stops and joins the CAN thread; idempotent.
  void Stop();

  void Subscribe(std::shared_ptr<Subscriber> subscriber, FilterSet filters);
  void SetFilters(uint64_t subscriber_id, FilterSet filters);
  void Unsubscribe(uint64_t subscriber_id);

  // Queues `frame` for the bus on behalf of subscriber `origin` (0: nobody, so every subscriber
  // receives it). Returns false when the tx queue is full; the caller reports that.
  [[nodiscard]] bool Transmit(uint64_t origin, const CanFrame& frame);

  // Frames the tx queue can take now (approximately). Thread-safe.
  size_t tx_room() const {
    const size_t used = tx_queue_.size_approx();
    return used >= options_.tx_queue_capacity ? 0 : options_.tx_queue_capacity - used;
  }

  const ChannelCounters& counters() const { return counters_; }
  CanBackend& backend() { return *backend_; }
  std::string channel_info() const { return backend_->channel_info(); }
  // Subscribers the CAN thread currently serves (for tests and logs).
  size_t subscriber_count() const { return subscriber_count_.load(std::memory_order_relaxed); }

 private:
  struct TxRequest {
    uint64_t origin = 0;
    CanFrame frame;
  };
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
  };

  CanChannel(std::shared_ptr<CanBackend> backend, CanChannelOptions options, Wakeup wakeup);
  void Post(Command command);
  void Run(std::stop_token stop);
  void ApplyCommands();
  bool ReceiveBatch();
  bool TransmitBatch();
  void FanOut(const CanFrame& frame, uint64_t origin) noexcept;
  void ReportTxFailed(uint64_t origin) noexcept;
  void FlushWakeups() noexcept;
  void Sleep(int epfd) noexcept;

  std::shared_ptr<CanBackend> backend_;
  const CanChannelOptions options_;
  Wakeup wakeup_;
  WakeGate gate_;
  MpscQueue<TxRequest> tx_queue_;

  std::mutex commands_mu_;
  std::vector<Command> commands_;  // guarded by commands_mu_
  std::atomic<bool> commands_pending_{false};

  // CAN thread only.
  std::vector<Entry> entries_;
  std::vector<const Wakeup*> to_wake_;

  ChannelCounters counters_;
  std::atomic<size_t> subscriber_count_{0};
  std::jthread thread_;
};

}  // namespace canserver
