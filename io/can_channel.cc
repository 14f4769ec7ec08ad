#include "io/can_channel.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "core/status_macros.h"
#include "io/virtual_bus.h"

namespace canserver {
namespace {
constexpr size_t kBatch = 64;
}  // namespace

absl::StatusOr<std::unique_ptr<CanChannel>> CanChannel::Create(std::shared_ptr<CanBackend> backend,
                                                               CanChannelOptions options) {
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  return std::unique_ptr<CanChannel>(
      new CanChannel(std::move(backend), options, std::move(wakeup)));
}

CanChannel::CanChannel(std::shared_ptr<CanBackend> backend, CanChannelOptions options,
                       Wakeup wakeup)
    : backend_(std::move(backend)),
      options_(options),
      wakeup_(std::move(wakeup)),
      tx_queue_(options.tx_queue_capacity) {}

CanChannel::~CanChannel() { Stop(); }

void CanChannel::Start() {
  thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

void CanChannel::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wakeup_.Notify();
  thread_.join();
}

void CanChannel::Post(Command command) {
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    commands_.push_back(std::move(command));
    commands_pending_.store(true, std::memory_order_relaxed);
  }
  if (gate_.ShouldNotify()) wakeup_.Notify();
}

void CanChannel::Subscribe(std::shared_ptr<Subscriber> subscriber, FilterSet filters) {
  const uint64_t id = subscriber->id;
  Post({Command::Kind::kSubscribe, id, std::move(subscriber), std::move(filters)});
}

void CanChannel::SetFilters(uint64_t subscriber_id, FilterSet filters) {
  Post({Command::Kind::kSetFilters, subscriber_id, nullptr, std::move(filters)});
}

void CanChannel::Unsubscribe(uint64_t subscriber_id) {
  Post({Command::Kind::kUnsubscribe, subscriber_id, nullptr, {}});
}

bool CanChannel::Transmit(uint64_t origin, const CanFrame& frame) {
  if (!tx_queue_.TryPush(TxRequest{origin, frame})) return false;
  if (gate_.ShouldNotify()) wakeup_.Notify();
  return true;
}

void CanChannel::Run(std::stop_token stop) {
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    CS_LOG(kError, "CAN thread for %s: epoll_create1 failed; channel stopped", channel_info());
    return;
  }
  for (int fd : {backend_->rx_fd(), wakeup_.fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  while (!stop.stop_requested()) {
    if (commands_pending_.load(std::memory_order_relaxed)) ApplyCommands();
    const bool received = ReceiveBatch();
    const bool transmitted = TransmitBatch();
    FlushWakeups();
    if (!received && !transmitted) Sleep(epfd);
  }
  ::close(epfd);
}

void CanChannel::Sleep(int epfd) noexcept {
  gate_.Arm();
  const bool may_sleep = backend_->PrepareSleep() && tx_queue_.size_approx() == 0 &&
                         !commands_pending_.load(std::memory_order_relaxed);
  if (may_sleep) {
    epoll_event events[2];
    ::epoll_wait(epfd, events, 2, -1);
  }
  gate_.Disarm();
  wakeup_.Drain();
  backend_->WakeDone();
}

void CanChannel::ApplyCommands() {
  std::vector<Command> commands;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    commands.swap(commands_);
    commands_pending_.store(false, std::memory_order_relaxed);
  }
  for (Command& c : commands) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.subscriber->id == c.id; });
    switch (c.kind) {
      case Command::Kind::kSubscribe:
        if (it == entries_.end())
          entries_.push_back({std::move(c.subscriber), std::move(c.filters)});
        break;
      case Command::Kind::kSetFilters:
        if (it != entries_.end()) it->filters = std::move(c.filters);
        break;
      case Command::Kind::kUnsubscribe:
        if (it != entries_.end()) entries_.erase(it);
        break;
    }
  }
  subscriber_count_.store(entries_.size(), std::memory_order_relaxed);
}

bool CanChannel::ReceiveBatch() {
  CanFrame frames[kBatch];
  uint64_t kernel_drops = 0;
  const size_t n = backend_->Receive(frames, kBatch, &kernel_drops);
  if (kernel_drops != 0) {
    counters_.kernel_drops.Add(kernel_drops);
    CS_VLOG(1, "%s: kernel dropped %d frames (SO_RXQ_OVFL)", channel_info(), kernel_drops);
  }
  if (n == 0) return false;
  counters_.bus_rx.Add(n);
  for (size_t i = 0; i < n; ++i) FanOut(frames[i], 0);
  return true;
}

bool CanChannel::TransmitBatch() {
  TxRequest requests[kBatch];
  const size_t n = tx_queue_.PopBulk(requests, kBatch);
  if (n == 0) return false;
  CanFrame frames[kBatch];
  const int64_t now = RealtimeNanos();
  for (size_t i = 0; i < n; ++i) {
    frames[i] = requests[i].frame;
    frames[i].timestamp_ns = now;  // the bus time of a frame we write is when we wrote it
  }
  size_t done = 0;
  while (done < n) {
    int error = 0;
    const size_t sent = backend_->Send(frames + done, n - done, &error);
    for (size_t i = done; i < done + sent; ++i) FanOut(frames[i], requests[i].origin);
    counters_.bus_tx.Add(sent);
    done += sent;
    if (done < n) {
      // frames[done] was refused: report it to its sender and go on with the rest.
      counters_.bus_tx_failed.Add();
      CS_VLOG(1, "%s: bus refused %s: %s", channel_info(), ToString(frames[done]),
              std::strerror(error));
      ReportTxFailed(requests[done].origin);
      ++done;
    }
  }
  return true;
}

void CanChannel::FanOut(const CanFrame& frame, uint64_t origin) noexcept {
  if (frame.error() && !options_.error_frames) return;
  for (Entry& e : entries_) {
    Subscriber& sub = *e.subscriber;
    if (sub.id == origin) continue;  // a client never receives its own frames back
    if (!e.filters.Matches(frame)) {
      counters_.filtered_out.Add();
      continue;
    }
    if (!sub.ring.TryPush(frame)) {
      sub.counters.drops_ring_full.Add();
      counters_.ring_drops.Add();
      continue;
    }
    e.needs_wake = true;
  }
}

void CanChannel::ReportTxFailed(uint64_t origin) noexcept {
  for (Entry& e : entries_) {
    if (e.subscriber->id != origin) continue;
    e.subscriber->counters.tx_failed.Add();
    e.subscriber->tx_failed_pending.fetch_add(1, std::memory_order_relaxed);
    e.needs_wake = true;
    return;
  }
}

void CanChannel::FlushWakeups() noexcept {
  to_wake_.clear();
  for (Entry& e : entries_) {
    if (!e.needs_wake) continue;
    e.needs_wake = false;
    if (!e.subscriber->gate.ShouldNotify()) continue;
    const Wakeup* w = e.subscriber->wakeup.get();
    if (std::find(to_wake_.begin(), to_wake_.end(), w) == to_wake_.end()) to_wake_.push_back(w);
  }
  for (const Wakeup* w : to_wake_) w->Notify();
}

}  // namespace canserver
