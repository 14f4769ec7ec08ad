#include "net/io_thread.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/thread_util.h"
#include "net/socket_util.h"
#include "net/tls.h"

namespace canserver {
namespace {
constexpr absl::Duration kTick = absl::Milliseconds(100);
}  // namespace

absl::StatusOr<std::unique_ptr<IoThread>> IoThread::Create(int index, const ServerOptions& options,
                                                           std::vector<CanChannel*> channels) {
  ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer.valid()) return ErrnoStatus("timerfd_create");
  const itimerspec spec{absl::ToTimespec(kTick), absl::ToTimespec(kTick)};
  if (::timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) return ErrnoStatus("timerfd_settime");
  return std::unique_ptr<IoThread>(
      new IoThread(index, options, std::move(channels), std::move(loop),
                   std::make_shared<Wakeup>(std::move(wakeup)), std::move(timer)));
}

IoThread::IoThread(int index, const ServerOptions& options, std::vector<CanChannel*> channels,
                   std::unique_ptr<EventLoop> loop, std::shared_ptr<Wakeup> wakeup, UniqueFd timer)
    : index_(index),
      options_(options),
      channels_(std::move(channels)),
      loop_(std::move(loop)),
      wakeup_(std::move(wakeup)),
      timer_(std::move(timer)) {}

IoThread::~IoThread() { Stop(); }

void IoThread::Start() {
  thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

void IoThread::Adopt(uint64_t session_id, UniqueFd fd, const FrontEnd& front_end,
                     CanChannel* channel, std::unique_ptr<Admission::Ticket> ticket) {
  {
    std::lock_guard<std::mutex> lock(adopt_mu_);
    adopted_.push_back({session_id, std::move(fd), &front_end, channel, std::move(ticket)});
  }
  session_count_.fetch_add(1, std::memory_order_relaxed);
  wakeup_->Notify();
}

void IoThread::Reattach(uint64_t session_id, Handoff handoff) {
  {
    std::lock_guard<std::mutex> lock(adopt_mu_);
    reattached_.emplace_back(session_id, std::move(handoff));
  }
  wakeup_->Notify();
}

void IoThread::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wakeup_->Notify();
  thread_.join();
}

void IoThread::Run(std::stop_token stop) {
  PlaceThisThread(absl::StrCat("io:", index_),
                  CpuAffinity::For(options_.cpu_affinity.io_cpus, static_cast<size_t>(index_)));
  BlockSigpipeInThisThread();  // TLS writes (net/tls.h); plain sends use MSG_NOSIGNAL
  (void)loop_->Add(wakeup_->fd(), EPOLLIN, [this](uint32_t) { wakeup_->Drain(); });
  (void)loop_->Add(timer_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    if (::read(timer_.get(), &expirations, sizeof expirations) > 0) Housekeeping();
  });
  last_stats_ = absl::Now();
  bool busy = false;
  while (!stop.stop_requested()) {
    passes_.store(passes_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Paused readers (tx queue full) are woken by the CAN thread through their tx_gate.
    absl::StatusOr<int> polled = loop_->Poll(busy ? 0 : -1);
    if (!polled.ok()) {
      CS_LOG(kError, "io thread %d: %s", index_, polled.status().message());
      break;
    }
    TakeAdopted();
    busy = false;
    clock_.Reset();
    for (auto& [id, session] : sessions_) {
      (void)session->ResumeTransmit();
      busy |= session->Pump(clock_);
    }
    ReapClosed();
    if (busy) continue;
    // Sleep only if every session armed its gate with nothing waiting.
    for (auto& [id, session] : sessions_) busy |= !session->PrepareSleep();
  }
  ShutdownSessions();
}

void IoThread::TakeAdopted() {
  std::vector<Adopted> adopted;
  std::vector<std::pair<uint64_t, Handoff>> reattached;
  {
    std::lock_guard<std::mutex> lock(adopt_mu_);
    adopted.swap(adopted_);
    reattached.swap(reattached_);
  }
  for (auto& [id, handoff] : reattached) {
    // A session that ended meanwhile: the connection closes, and its client opens a new session.
    if (auto it = sessions_.find(id); it != sessions_.end())
      it->second->Reattach(std::move(handoff));
  }
  for (auto& [id, fd, front_end, channel, ticket] : adopted) {
    const int raw = fd.get();
    std::string peer = PeerName(raw);
    auto session = std::make_unique<Session>(id, std::move(fd), peer, options_, *front_end, channel,
                                             channels_, loop_.get(), wakeup_, std::move(ticket));
    Session* s = session.get();
    absl::Status added = loop_->Add(raw, EPOLLIN, [s](uint32_t events) { s->OnEvents(events); });
    if (!added.ok()) {
      CS_LOG_LIMITED(kError, "session %d (%s): %s", id, peer, added.message());
      session_count_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    CS_VLOG(1, "session %d (%s) on io thread %d", id, peer, index_);
    s->set_handoff_target([this, id = id](Handoff handoff) { Reattach(id, std::move(handoff)); });
    s->Start();
    sessions_.emplace(id, std::move(session));
  }
}

void IoThread::Housekeeping() {
  const absl::Time now = absl::Now();
  for (auto& [id, session] : sessions_) session->Tick(now);
  if (options_.stats_interval > absl::ZeroDuration() &&
      now - last_stats_ >= options_.stats_interval) {
    last_stats_ = now;
    for (auto& [id, session] : sessions_) {
      if (session->subscriber() != nullptr) {
        CS_LOG(kInfo, "session %d (%s): %s", id, session->peer(),
               session->subscriber()->counters.Summary());
      }
    }
  }
}

void IoThread::ReapClosed() {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->closed()) {
      it = sessions_.erase(it);
      session_count_.fetch_sub(1, std::memory_order_relaxed);
    } else {
      ++it;
    }
  }
}

void IoThread::ShutdownSessions() {
  TakeAdopted();
  // Deliver what is queued plus the notice, for at most the shutdown grace, then close.
  clock_.Reset();
  for (auto& [id, session] : sessions_) {
    session->Pump(clock_);
    session->AppendException("server shutting down");
  }
  const absl::Time deadline = absl::Now() + options_.shutdown_grace;
  while (absl::Now() < deadline) {
    bool pending = false;
    for (auto& [id, session] : sessions_) pending |= !session->FlushAll();
    if (!pending) break;
    (void)loop_->Poll(10);
  }
  for (auto& [id, session] : sessions_) session->Close("server shutting down", "");
  sessions_.clear();
  session_count_.store(0, std::memory_order_relaxed);
}

}  // namespace canserver
