#include "io/can_channel.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/clock.h"
#include "io/thread_util.h"

namespace canserver {
namespace {
bool BusBusy(int error) { return error == ENOBUFS || error == EAGAIN || error == EWOULDBLOCK; }
}  // namespace

absl::StatusOr<std::unique_ptr<CanChannel>> CanChannel::Create(std::shared_ptr<CanBackend> backend,
                                                               CanChannelOptions options) {
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer.valid()) return ErrnoStatus("timerfd_create (CAN thread retry timer)");
  return std::unique_ptr<CanChannel>(
      new CanChannel(std::move(backend), options, std::move(wakeup), std::move(timer)));
}

CanChannel::CanChannel(std::shared_ptr<CanBackend> backend, CanChannelOptions options,
                       Wakeup wakeup, UniqueFd retry_timer)
    : backend_(std::move(backend)),
      options_(options),
      wakeup_(std::move(wakeup)),
      retry_timer_(std::move(retry_timer)) {}

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
  {
    std::lock_guard<std::mutex> lock(registry_mu_);
    registry_.push_back(subscriber);
  }
  Post({Command::Kind::kSubscribe, id, std::move(subscriber), std::move(filters)});
}

void CanChannel::SetFilters(uint64_t subscriber_id, FilterSet filters) {
  Post({Command::Kind::kSetFilters, subscriber_id, nullptr, std::move(filters)});
}

void CanChannel::Unsubscribe(uint64_t subscriber_id) {
  {
    std::lock_guard<std::mutex> lock(registry_mu_);
    std::erase_if(registry_, [&](const auto& s) { return s->id == subscriber_id; });
  }
  Post({Command::Kind::kUnsubscribe, subscriber_id, nullptr, {}});
}

std::vector<std::shared_ptr<const Subscriber>> CanChannel::Subscribers() const {
  std::lock_guard<std::mutex> lock(registry_mu_);
  return registry_;
}

bool CanChannel::Transmit(Subscriber& sub, CanFrame frame, int64_t queued_ns, bool wake) noexcept {
  // Queued at; becomes the bus time when written.
  frame.timestamp_ns = queued_ns != 0 ? queued_ns : RealtimeNanos();
  if (!sub.tx.TryPush(frame)) return false;
  if (wake) WakeForTransmit();
  return true;
}

void CanChannel::Run(std::stop_token stop) {
  PlaceThisThread("can:" + backend_->name(), options_.cpu);
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    CS_LOG(kError, "CAN thread for %s: epoll_create1 failed; channel stopped", channel_info());
    return;
  }
  for (int fd : {backend_->rx_fd(), wakeup_.fd(), retry_timer_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  int rx_fd = backend_->rx_fd();
  uint64_t rx_epoch = backend_->rx_fd_epoch();
  while (!stop.stop_requested()) {
    passes_.store(passes_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (commands_pending_.load(std::memory_order_relaxed)) ApplyCommands();
    const bool received = ReceiveBatch();
    const bool transmitted = TransmitBatch();
    woke_ = false;
    if (backend_->rx_fd_epoch() != rx_epoch) {
      // The backend swapped its socket (an interface went away or came back). A closed fd has
      // left the epoll set by itself; DEL covers one that was not closed.
      (void)::epoll_ctl(epfd, EPOLL_CTL_DEL, rx_fd, nullptr);
      rx_fd = backend_->rx_fd();
      rx_epoch = backend_->rx_fd_epoch();
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = rx_fd;
      if (rx_fd >= 0) ::epoll_ctl(epfd, EPOLL_CTL_ADD, rx_fd, &ev);
    }
    if (leaving_ > 0) ReapLeaving();
    FlushWakeups();
    if (!received && !transmitted) Sleep(epfd);
  }
  ::close(epfd);
}

bool CanChannel::TxWaiting() const noexcept {
  for (const Entry& e : entries_) {
    if (e.carry_count > 0 || e.subscriber->tx.size_approx() > 0) return true;
  }
  return false;
}

void CanChannel::Sleep(int epfd) noexcept {
  gate_.Arm();
  bool may_sleep = backend_->PrepareSleep() && !commands_pending_.load(std::memory_order_relaxed);
  if (may_sleep && scheduler_.retry_at() != 0) {
    // Waiting for the bus: new frames could not be written either, so sleep until the retry.
    itimerspec at{};
    at.it_value.tv_sec = scheduler_.retry_at() / 1'000'000'000;
    at.it_value.tv_nsec = scheduler_.retry_at() % 1'000'000'000;
    ::timerfd_settime(retry_timer_.get(), TFD_TIMER_ABSTIME, &at, nullptr);
  } else if (may_sleep && TxWaiting()) {
    may_sleep = false;
  }
  if (!may_sleep) {
    gate_.Disarm();
    return;
  }
  epoll_event events[3];
  // Never longer than kMaxSleepMs: an idle thread still shows it is alive (passes()).
  const int ready = ::epoll_wait(epfd, events, 3, kMaxSleepMs);
  gate_.Disarm();
  woke_ = true;
  // Clear only the descriptors that woke us: a read that would find nothing is a wasted syscall
  // on every wake-up of the quiet path (three per frame batch before). One left readable by a
  // late notify just makes the next epoll_wait return at once.
  for (int i = 0; i < ready; ++i) {
    const int fd = events[i].data.fd;
    if (fd == wakeup_.fd()) {
      wakeup_.Drain();
    } else if (fd == retry_timer_.get()) {
      uint64_t expirations;
      (void)!::read(retry_timer_.get(), &expirations, sizeof expirations);
    } else {
      backend_->WakeDone();
    }
  }
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
                           [&](const Entry& e) { return e.subscriber->id == c.id && !e.leaving; });
    switch (c.kind) {
      case Command::Kind::kSubscribe:
        if (it == entries_.end()) {
          Entry e;
          e.subscriber = std::move(c.subscriber);
          e.filters = std::move(c.filters);
          entries_.push_back(std::move(e));
        }
        break;
      case Command::Kind::kSetFilters:
        if (it != entries_.end()) it->filters = std::move(c.filters);
        break;
      case Command::Kind::kUnsubscribe:
        if (it != entries_.end()) {
          it->leaving = true;
          ++leaving_;
        }
        break;
    }
  }
  ReapLeaving();
  // Published after the reap (the same number): a reader that sees a subscriber gone finds its
  // memory released too, unless frames it sent still wait for the bus.
  subscriber_count_.store(entries_.size() - leaving_, std::memory_order_release);
}

void CanChannel::ReapLeaving() {
  for (size_t i = 0; i < entries_.size();) {
    Entry& e = entries_[i];
    if (e.leaving && e.carry_count == 0 && e.subscriber->tx.empty()) {
      entries_.erase(entries_.begin() + static_cast<ptrdiff_t>(i));
      --leaving_;
      scheduler_.LaneRemoved(i, entries_.size());
    } else {
      ++i;
    }
  }
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
  direct_batch_ = QuietBatch(n, &last_rx_batch_);
  // The bus load first: a client that has the frames must find them counted.
  int64_t bits = 0;
  for (size_t i = 0; i < n; ++i) bits += WireBits(frames[i]);
  counters_.bus_wire_bits.Add(static_cast<uint64_t>(bits));
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    if (frames[i].error()) NoteBusState(frames[i]);
    if (!frames[i].remote()) bytes += frames[i].len;
    FanOut(frames[i], 0);
  }
  WriteDirect();
  counters_.bus_rx_bytes.Add(bytes);
  return true;
}

void CanChannel::NoteBusState(const CanFrame& frame) noexcept {
  const std::optional<BusState> state = StateFromErrorFrame(frame);
  if (!state.has_value() || *state == bus_state()) return;
  const BusState before = bus_state();
  bus_state_.store(*state, std::memory_order_relaxed);
  counters_.state_changes.Add();
  if (*state == BusState::kBusOff) counters_.bus_off.Add();
  // Rare by nature (a controller changes state a few times in a bad day), so logged each time.
  LogLine(*state == BusState::kErrorActive ? LogLevel::kInfo : LogLevel::kWarning,
          absl::StrFormat("%s: %s (was %s)", channel_info(), BusStateName(*state),
                          BusStateName(before)));
}

size_t CanChannel::BuildBatch() {
  // Top up every client's carry from its queue; the scheduler picks the batch from the carries.
  waiting_.resize(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (e.carry_count < kBatch) {
      const size_t got =
          e.subscriber->tx.PopBulk(e.carry.get() + e.carry_count, kBatch - e.carry_count);
      if (got > 0) {
        e.carry_count += got;
        e.tx_popped = true;
      }
    }
    waiting_[i] = e.carry_count;
  }
  TransmitScheduler::Pick picks[kBatch];
  const size_t n = scheduler_.BuildBatch(waiting_, picks);
  for (size_t j = 0; j < n; ++j) {
    batch_[j] = entries_[picks[j].lane].carry[picks[j].index];
    batch_entry_[j] = picks[j].lane;
  }
  return n;
}

void CanChannel::DropCarryFront(Entry& e, size_t n) noexcept {
  if (n == 0) return;
  e.carry_count -= n;
  std::memmove(e.carry.get(), e.carry.get() + n, e.carry_count * sizeof(CanFrame));
}

bool CanChannel::TransmitBatch() {
  if (scheduler_.retry_at() != 0 && !scheduler_.MayWrite(MonotonicNanos())) return false;
  const size_t n = BuildBatch();
  if (n == 0) return false;

  int error = 0;
  const size_t sent = backend_->Send(batch_, n, &error);
  const int64_t now = RealtimeNanos();
  direct_batch_ = QuietBatch(sent, &last_tx_batch_);
  // Counted before the fan-out: a direct write can reach a client before this function returns,
  // and what a client received must already show as written.
  counters_.bus_tx.Add(sent);
  int64_t waited_ns[kBatch];  // queued → written; a clock step makes it negative, counted as 0
  for (size_t j = 0; j < sent; ++j) waited_ns[j] = now - batch_[j].timestamp_ns;
  if (sent > 0) tx_wait_latency_.Record(waited_ns, sent);
  for (size_t j = 0; j < sent; ++j) {
    Entry& e = entries_[batch_entry_[j]];
    CanFrame& f = batch_[j];
    const uint64_t waited_us = waited_ns[j] > 0 ? static_cast<uint64_t>(waited_ns[j]) / 1000 : 0;
    counters_.tx_wait_total_us.Add(waited_us);
    counters_.tx_wait_max_us.Max(waited_us);
    e.subscriber->counters.tx_wait_max_us.Max(waited_us);
    e.subscriber->counters.tx_written.Add();
    ++e.written;
    f.timestamp_ns = now;  // the bus time of a frame we write is when we wrote it
    if (!f.remote()) counters_.bus_tx_bytes.Add(f.len);
    counters_.bus_wire_bits.Add(static_cast<uint64_t>(WireBits(f)));
    FanOut(f, e.subscriber->id);
  }
  WriteDirect();
  for (Entry& e : entries_) {
    DropCarryFront(e, e.written);
    e.written = 0;
  }
  if (sent > 0) scheduler_.Written(batch_entry_[sent - 1], entries_.size());
  if (sent == n) {
    scheduler_.AfterFullWrite();
    return true;
  }

  // batch_[sent] was refused. Its client's carry now starts with it.
  const bool busy = BusBusy(error);
  if (busy) counters_.tx_busy.Add();
  switch (scheduler_.AfterShortWrite(sent, busy, busy ? backend_->TxRetryHintNs() : 0,
                                     MonotonicNanos())) {
    case TransmitScheduler::Verdict::kRefuse:
      Refuse(sent, /*timeout=*/false, error);
      return true;
    case TransmitScheduler::Verdict::kTimeout:
      Refuse(sent, /*timeout=*/true, error);
      return true;
    case TransmitScheduler::Verdict::kRetry:
      break;
  }
  return sent > 0;
}

void CanChannel::Refuse(size_t batch_index, bool timeout, int error) noexcept {
  Entry& e = entries_[batch_entry_[batch_index]];
  DropCarryFront(e, 1);
  Subscriber& sub = *e.subscriber;
  counters_.bus_tx_failed.Add();
  sub.counters.tx_failed.Add();
  const CanFrame& frame = batch_[batch_index];
  if (timeout) {
    counters_.tx_timeout.Add();
    sub.counters.tx_timeout.Add();
  } else if (frame.fd() && error == EINVAL) {
    // The kernel's answer to a CANFD_MTU write on an interface whose MTU is CAN_MTU.
    counters_.tx_no_fd.Add();
    sub.counters.tx_no_fd.Add();
  } else {
    counters_.tx_bus_error.Add();
    sub.counters.tx_bus_error.Add();
  }
  CS_VLOG(1, "%s: refused %s from session %d: %s", channel_info(), ToString(frame), sub.id,
          timeout                         ? "the bus took nothing within --tx-timeout"
          : frame.fd() && error == EINVAL ? "CAN FD frame on a classic-only interface (MTU 16)"
                                          : std::strerror(error));
  if (e.leaving) return;  // nobody left to tell
  sub.tx_failed_pending.fetch_add(1, std::memory_order_relaxed);
  e.needs_wake = true;
}

void CanChannel::FanOut(const CanFrame& frame, uint64_t origin) noexcept {
  if (frame.error() && !options_.error_frames) return;
  for (Entry& e : entries_) {
    Subscriber& sub = *e.subscriber;
    if (sub.id == origin || e.leaving) continue;  // a client never receives its own frames back
    if (!e.filters.Matches(frame)) {
      counters_.filtered_out.Add();
      continue;
    }
    // Straight to the socket if its io thread lent it and nothing older waits in the ring; once
    // one frame of the batch goes that way, the rest follow it (order).
    if (e.direct_count > 0 ||
        (direct_batch_ && sub.sink != nullptr && sub.sink->lent() && sub.ring.size_approx() == 0)) {
      if (e.direct_count == 0) direct_entries_.push_back(static_cast<size_t>(&e - entries_.data()));
      e.direct[e.direct_count++] = frame;
      if (e.direct_count == kBatch) WriteDirect(e, RealtimeNanos());
      continue;
    }
    PushToRing(e, &frame, 1);
  }
}

bool CanChannel::QuietBatch(size_t n, size_t* last) noexcept {
  const bool quiet = n <= kMaxDirectBatch && (woke_ || *last <= kMaxDirectBatch);
  *last = n;
  return quiet;
}

void CanChannel::PushToRing(Entry& e, const CanFrame* frames, size_t n) noexcept {
  Subscriber& sub = *e.subscriber;
  for (size_t i = 0; i < n; ++i) {
    if (!sub.ring.TryPush(frames[i])) {
      sub.counters.drops_ring_full.Add();
      counters_.ring_drops.Add();
      continue;
    }
    e.needs_wake = true;
  }
}

void CanChannel::WriteDirect() noexcept {
  if (direct_entries_.empty()) return;
  const int64_t now = RealtimeNanos();  // one clock read for the batch's latency stamps
  for (size_t i : direct_entries_) {
    if (entries_[i].direct_count > 0) WriteDirect(entries_[i], now);
  }
  direct_entries_.clear();
}

void CanChannel::WriteDirect(Entry& e, int64_t now) noexcept {
  const size_t n = e.direct_count;
  e.direct_count = 0;
  Subscriber& sub = *e.subscriber;
  const int written = sub.sink->TryWrite(e.direct.get(), n, sub.ring, now);
  if (written < 0) {
    PushToRing(e, e.direct.get(), n);  // the io thread took the output back: the usual path
    return;
  }
  counters_.direct_frames.Add(static_cast<uint64_t>(written));
}

void CanChannel::FlushWakeups() noexcept {
  to_wake_.clear();
  auto add = [this](const Wakeup* w) {
    if (std::find(to_wake_.begin(), to_wake_.end(), w) == to_wake_.end()) to_wake_.push_back(w);
  };
  for (Entry& e : entries_) {
    Subscriber& sub = *e.subscriber;
    if (e.tx_popped) {
      // A reader paused on a full tx queue resumes once the queue is half empty.
      e.tx_popped = false;
      if (!e.leaving && sub.tx.size_approx() <= sub.tx_resume_level() &&
          sub.tx_gate.ShouldNotify()) {
        add(sub.wakeup.get());
      }
    }
    if (!e.needs_wake) continue;
    e.needs_wake = false;
    if (sub.gate.ShouldNotify()) add(sub.wakeup.get());
  }
  for (const Wakeup* w : to_wake_) w->Notify();
}

}  // namespace canserver
