#include "net/remote_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/capture_protocol.h"
#include "core/log.h"
#include "core/socketcand_protocol.h"
#include "core/status_macros.h"
#include "core/v5_protocol.h"
#include "core/version.h"
#include "io/clock.h"
#include "io/thread_util.h"
#include "net/socket_util.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<RemoteServer>> RemoteServer::Create(
    ServerOptions options, std::shared_ptr<CanBackend> backend, bool error_frames) {
  const uint16_t port = options.port;
  std::vector<ServedChannel> channels;
  channels.push_back({std::move(backend), port});
  return Create(std::move(options), std::move(channels), error_frames);
}

absl::StatusOr<std::unique_ptr<RemoteServer>> RemoteServer::Create(
    ServerOptions options, std::vector<ServedChannel> channels, bool error_frames) {
  if (options.io_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--threads must be at least 1 (got %d)", options.io_threads));
  }
  if (options.ring_frames < 1 || options.output_buffer_bytes < 1024 || options.max_clients < 1 ||
      options.client_tx_frames < 1) {
    return absl::InvalidArgumentError(
        "limits must be positive (ring, tx queue, max clients) and the output buffer at least "
        "1024 bytes");
  }
  if (options.client_rcvbuf_bytes != 0 &&
      (options.client_rcvbuf_bytes < 4096 || options.client_rcvbuf_bytes > (64u << 20))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--client-rcvbuf must be 0 (the kernel's autotuning) or 4096 to 67108864 bytes (got %d)",
        options.client_rcvbuf_bytes));
  }
  if (channels.empty()) return absl::InvalidArgumentError("no channel to serve");
  const std::vector<int> allowed = AllowedCpus();
  for (const std::vector<int>* list :
       {&options.cpu_affinity.can_cpus, &options.cpu_affinity.io_cpus}) {
    for (int cpu : *list) {
      if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--cpu-affinity: CPU %d is not one this process may use (%s)", cpu,
                            absl::StrJoin(allowed, ",")));
      }
    }
  }
  // Clients' sockets inherit their receive buffer from the listener (socket_util.h).
  if (options.client_sndbuf_bytes != 0 &&
      (options.client_sndbuf_bytes < 4096 || options.client_sndbuf_bytes > (64u << 20))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--client-sndbuf must be 0 (the kernel's autotuning) or 4096 to 67108864 bytes (got %d)",
        options.client_sndbuf_bytes));
  }
  const int rcvbuf = static_cast<int>(options.client_rcvbuf_bytes);
  const int sndbuf = static_cast<int>(options.client_sndbuf_bytes);
  std::vector<Served> served;
  for (ServedChannel& c : channels) {
    const std::string info = c.backend->channel_info();
    absl::StatusOr<UniqueFd> listener =
        ListenTcp(HostPort{options.host, c.port}, 512, rcvbuf, sndbuf);
    if (!listener.ok()) {
      return absl::Status(listener.status().code(),
                          absl::StrCat(listener.status().message(), " (for ", info, ")"));
    }
    ASSIGN_OR_RETURN(
        std::unique_ptr<CanChannel> channel,
        CanChannel::Create(std::move(c.backend),
                           {error_frames, options.tx_timeout,
                            CpuAffinity::For(options.cpu_affinity.can_cpus, served.size())}));
    Served s;
    s.port = LocalPort(listener->get());
    s.listener = *std::move(listener);
    if (options.capture_port.has_value()) {
      const uint16_t want = *options.capture_port == 0
                                ? 0
                                : static_cast<uint16_t>(*options.capture_port + served.size());
      absl::StatusOr<UniqueFd> capture = ListenTcp(HostPort{options.host, want}, 64, 0, sndbuf);
      if (!capture.ok()) {
        return absl::Status(
            capture.status().code(),
            absl::StrCat(capture.status().message(), " (capture of ", info, ", --capture-port)"));
      }
      s.capture_port = LocalPort(capture->get());
      s.capture_listener = *std::move(capture);
    }
    s.channel = std::move(channel);
    s.traffic =
        std::make_unique<TrafficView>(s.channel.get(), TrafficView::kIdBase + served.size());
    served.push_back(std::move(s));
  }
  UniqueFd socketcand;
  if (options.socketcand_port.has_value()) {
    absl::StatusOr<UniqueFd> listener =
        ListenTcp(HostPort{options.host, *options.socketcand_port}, 512, rcvbuf, sndbuf);
    if (!listener.ok()) {
      return absl::Status(listener.status().code(),
                          absl::StrCat(listener.status().message(),
                                       " (for socketcand clients, --socketcand-port)"));
    }
    socketcand = *std::move(listener);
  }
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  if (options.resume_grace > absl::ZeroDuration() && options.resumable == nullptr) {
    options.resumable = std::make_shared<ResumableSessions>();
  }
  auto server = std::unique_ptr<RemoteServer>(
      new RemoteServer(std::move(options), std::move(served), std::move(wakeup)));
  server->resume_timer_.Reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  server->reserve_fd_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!server->resume_timer_.valid() || !server->reserve_fd_.valid()) {
    return ErrnoStatus("descriptors for the accept thread");
  }
  std::vector<CanChannel*> all;
  std::vector<std::string> names;
  for (Served& c : server->channels_) {
    all.push_back(c.channel.get());
    names.push_back(c.channel->backend().name());
  }
  if (socketcand.valid()) {
    server->socketcand_port_ = LocalPort(socketcand.get());
    server->socketcand_listener_ = std::move(socketcand);
    if (server->options_.beacon) {
      ASSIGN_OR_RETURN(server->beacon_,
                       Beacon::Create(server->options_.host, server->socketcand_port_,
                                      std::move(names), server->options_.beacon_to));
    }
  } else if (server->options_.beacon) {
    return absl::InvalidArgumentError("--beacon announces the socketcand listener, which is off");
  }
  for (int i = 0; i < server->options_.io_threads; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<IoThread> t, IoThread::Create(i, server->options_, all));
    server->io_threads_.push_back(std::move(t));
  }
  return server;
}

RemoteServer::RemoteServer(ServerOptions options, std::vector<Served> channels, Wakeup wakeup)
    : options_(std::move(options)),
      start_time_ns_(RealtimeNanos()),
      channels_(std::move(channels)),
      admission_(std::make_unique<Admission>(
          AdmissionLimits{options_.max_clients, options_.max_clients_per_address,
                          options_.max_handshakes, options_.max_clients_per_channel},
          channels_.size())),
      stop_wakeup_(std::move(wakeup)) {}

RemoteServer::~RemoteServer() {
  Shutdown();
  // If ServeForever never ran, the threads were never started; stopping them is harmless.
  io_threads_.clear();
  for (Served& c : channels_) c.channel->Stop();
}

absl::Duration RemoteServer::ThreadCpuTime() {
  absl::Duration total;
  for (Served& c : channels_) total += c.channel->CpuTime();
  for (auto& t : io_threads_) total += t->CpuTime();
  return total;
}

std::vector<std::string> RemoteServer::StalledThreads(absl::Duration quiet) {
  const absl::Time now = absl::Now();
  std::vector<std::string> stalled;
  auto check = [&](const std::string& name, uint64_t passes) {
    auto [it, fresh] = progress_.try_emplace(name, Progress{passes, now});
    if (fresh || it->second.passes != passes) {
      it->second = {passes, now};
    } else if (now - it->second.since >= quiet) {
      stalled.push_back(name);
    }
  };
  if (!serving_.load()) return stalled;
  for (Served& c : channels_) check("can:" + c.channel->backend().name(), c.channel->passes());
  for (auto& t : io_threads_) check(absl::StrCat("io:", t->index()), t->passes());
  return stalled;
}

size_t RemoteServer::session_count() const {
  size_t n = 0;
  for (const auto& t : io_threads_) n += t->session_count();
  return n;
}

ServerStatus RemoteServer::Status() {
  ServerStatus status;
  status.version = kVersion;
  status.start_time_ns = start_time_ns_;
  status.now_ns = RealtimeNanos();
  status.io_threads = options_.io_threads;
  status.max_clients = options_.max_clients;
  status.access = options_.access.ToString();
  status.connections = admission_->connections();
  status.handshakes = admission_->handshakes();
  using R = Admission::Refusal;
  status.refused = {{"full", admission_->refused(R::kFull)},
                    {"per_address", admission_->refused(R::kPerAddress)},
                    {"handshakes", admission_->refused(R::kHandshakes)},
                    {"channel", admission_->refused(R::kChannel)},
                    {"not_allowed", refused_not_allowed_.load(std::memory_order_relaxed)},
                    {"no_fds", refused_no_fds_.load(std::memory_order_relaxed)},
                    {"tls", options_.tls != nullptr ? options_.tls->failed() : 0}};
  status.log_lines_suppressed = log_lines_suppressed();
  ReadTcpSockstat(&status.tcp_memory_bytes, &status.tcp_orphans);
  for (Served& c : channels_) {
    CanBackend& backend = c.channel->backend();
    const ChannelCounters& k = c.channel->counters();
    const ChannelRates rates = Rates(status.channels.size(), status.now_ns,
                                     k.bus_rx.Get() + k.bus_tx.Get(), k.bus_wire_bits.Get());
    std::vector<std::shared_ptr<const Subscriber>> sessions = c.channel->Subscribers();
    std::erase_if(sessions, [](const std::shared_ptr<const Subscriber>& s) {
      return s->info.protocol == TrafficView::kProtocol;  // the status page's view: no client
    });
    status.channels.push_back(ChannelStatus{backend.name(), backend.channel_info(), c.port,
                                            c.capture_port, backend.timing(),
                                            rates.frames_per_second, rates.wire_bits_per_second,
                                            c.channel.get(), c.traffic.get(), std::move(sessions)});
  }
  return status;
}

RemoteServer::ChannelRates RemoteServer::Rates(size_t channel, int64_t now_ns, uint64_t frames,
                                               uint64_t wire_bits) {
  constexpr int64_t kWindowNs = 1'000'000'000;
  std::lock_guard<std::mutex> lock(rates_mu_);
  if (rate_samples_.size() < channels_.size()) rate_samples_.resize(channels_.size());
  std::deque<RateSample>& samples = rate_samples_[channel];
  if (samples.empty()) samples.push_back({start_time_ns_, 0, 0});
  // Against the newest sample at least a window old (else the oldest): a rate over 1..~2 s.
  const RateSample* base = &samples.front();
  for (const RateSample& s : samples) {
    if (now_ns - s.at_ns >= kWindowNs) base = &s;
  }
  const int64_t dt = now_ns - base->at_ns;
  auto per_second = [dt](uint64_t now, uint64_t then) {
    return dt > 0 ? static_cast<double>(now - then) * 1e9 / static_cast<double>(dt) : 0.0;
  };
  const ChannelRates rates{per_second(frames, base->frames),
                           per_second(wire_bits, base->wire_bits)};
  if (now_ns - samples.back().at_ns >= kWindowNs / 4) {
    samples.push_back({now_ns, frames, wire_bits});
  }
  while (samples.size() > 2 && now_ns - samples[1].at_ns >= kWindowNs) samples.pop_front();
  return rates;
}

absl::Status RemoteServer::ServeForever() {
  if (serving_.exchange(true)) return absl::FailedPreconditionError("ServeForever already ran");
  for (Served& c : channels_) c.channel->Start();
  for (auto& t : io_threads_) t->Start();
  ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
  for (size_t i = 0; i < channels_.size(); ++i) {
    const int v5 = channels_[i].listener.get();
    RETURN_IF_ERROR(
        loop->Add(v5, EPOLLIN, [this, v5, i](uint32_t) { AcceptAll(v5, i, kV5FrontEnd); }));
    if (const int capture = channels_[i].capture_listener.get(); capture >= 0) {
      RETURN_IF_ERROR(loop->Add(capture, EPOLLIN, [this, capture, i](uint32_t) {
        AcceptAll(capture, i, kCaptureFrontEnd);
      }));
    }
  }
  if (const int socketcand = socketcand_listener_.get(); socketcand >= 0) {
    RETURN_IF_ERROR(loop->Add(socketcand, EPOLLIN, [this, socketcand](uint32_t) {
      AcceptAll(socketcand, kSocketcand, kSocketcandFrontEnd);
    }));
  }
  RETURN_IF_ERROR(
      loop->Add(stop_wakeup_.fd(), EPOLLIN, [this](uint32_t) { stop_wakeup_.Drain(); }));
  RETURN_IF_ERROR(loop->Add(resume_timer_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    if (::read(resume_timer_.get(), &expirations, sizeof expirations) > 0) PauseAccepting(false);
  }));
  accept_loop_ = loop.get();
  for (const Served& c : channels_) {
    CS_LOG(kInfo, "serving %s on %s:%d", c.channel->channel_info(), options_.host, c.port);
    if (c.capture_listener.valid()) {
      CS_LOG(kInfo, "capture of %s (pcapng: dumpcap -i TCP@HOST:%d) on %s:%d",
             c.channel->channel_info(), c.capture_port, options_.host, c.capture_port);
    }
  }
  if (socketcand_listener_.valid()) {
    CS_LOG(kInfo, "serving socketcand clients on %s:%d", options_.host, socketcand_port_);
  }
  UniqueFd beacon_timer;
  if (beacon_ != nullptr) {
    beacon_timer.Reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    const itimerspec every{{2, 0}, {0, 1}};  // at once, then every 2 s
    if (!beacon_timer.valid() || ::timerfd_settime(beacon_timer.get(), 0, &every, nullptr) != 0) {
      return ErrnoStatus("timerfd for --beacon");
    }
    RETURN_IF_ERROR(
        loop->Add(beacon_timer.get(), EPOLLIN, [this, fd = beacon_timer.get()](uint32_t) {
          uint64_t expirations;
          if (::read(fd, &expirations, sizeof expirations) > 0) beacon_->Send();
        }));
    CS_LOG(kInfo, "beacon: %s", beacon_->Text(""));
  }
  CS_LOG(kInfo, "%d channel(s), %d io threads", channels_.size(), options_.io_threads);
  CS_LOG(kInfo,
         "access: %s; at most %d clients, %d per address, %d per channel, %d handshaking "
         "(0: no limit)",
         options_.allow.empty() ? std::string("anyone may connect (no --allow)")
                                : absl::StrCat("only ", options_.allow.ToString(), " (--allow)"),
         options_.max_clients, options_.max_clients_per_address, options_.max_clients_per_channel,
         options_.max_handshakes);
  CS_LOG(kInfo, "roles: %s", options_.access.ToString());
  CS_LOG(kInfo, "%s",
         options_.tls != nullptr ? options_.tls->Describe()
                                 : std::string("plain text only (no --tls)"));
  absl::Status result;
  while (!stop_requested_.load(std::memory_order_acquire)) {
    absl::StatusOr<int> polled = loop->Poll(-1);
    if (!polled.ok()) {
      result = polled.status();
      break;
    }
  }
  for (const Served& c : channels_) {
    loop->Remove(c.listener.get());
    if (c.capture_listener.valid()) loop->Remove(c.capture_listener.get());
  }
  if (socketcand_listener_.valid()) loop->Remove(socketcand_listener_.get());
  loop->Remove(resume_timer_.get());
  accept_loop_ = nullptr;
  if (beacon_timer.valid()) loop->Remove(beacon_timer.get());
  // Sessions first (they flush and unsubscribe), then the CAN threads.
  for (auto& t : io_threads_) t->Stop();
  for (Served& c : channels_) {
    c.channel->Stop();
    CS_LOG(kInfo, "stopped %s; %s", c.channel->channel_info(), c.channel->counters().Summary());
  }
  finished_.Notify();
  return result;
}

void RemoteServer::Shutdown() {
  stop_requested_.store(true, std::memory_order_release);
  stop_wakeup_.Notify();
  if (serving_.load()) finished_.WaitForNotification();
}

void RemoteServer::ServerClose() {
  for (Served& c : channels_) {
    c.listener.Reset();
    c.capture_listener.Reset();
  }
  socketcand_listener_.Reset();
}

void RemoteServer::Refuse(int fd, const FrontEnd& front_end, const std::string& reason) {
  std::string bytes;
  front_end.refusal(reason, &bytes);
  if (bytes.empty()) return;
  (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  // A plain close, not a reset: a reset can overtake the reason and the client would only see
  // "connection reset" (measured: 1 refusal in 10 lost so). The reason fits the peer's window,
  // so the socket leaves no unsent data behind even if the peer never reads it.
}

void RemoteServer::PauseAccepting(bool paused) {
  if (accept_paused_ == paused || accept_loop_ == nullptr) return;
  accept_paused_ = paused;
  const uint32_t events = paused ? 0u : uint32_t{EPOLLIN};
  for (const Served& c : channels_) {
    (void)accept_loop_->Modify(c.listener.get(), events);
    if (c.capture_listener.valid()) (void)accept_loop_->Modify(c.capture_listener.get(), events);
  }
  if (socketcand_listener_.valid()) (void)accept_loop_->Modify(socketcand_listener_.get(), events);
  if (paused) {
    const itimerspec once{{0, 0}, absl::ToTimespec(kAcceptPause)};
    (void)::timerfd_settime(resume_timer_.get(), 0, &once, nullptr);
  }
}

void RemoteServer::OutOfDescriptors(int listener, const FrontEnd& front_end, int error) {
  // The reserve descriptor makes room for one accept at a time: the clients waiting now hear why
  // (at most kRefusedPerPause of them, so a flood cannot keep this thread busy) and are closed.
  reserve_fd_.Reset();
  size_t refused = 0;
  while (refused < kRefusedPerPause) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) break;
    Refuse(fd.get(), front_end,
           "server out of file descriptors: too many connections; try again later");
    ++refused;
  }
  refused_no_fds_.fetch_add(refused, std::memory_order_relaxed);
  reserve_fd_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  CS_LOG_LIMITED(kWarning,
                 "accept: %s: no descriptor for new clients (%d connections held); %d refused, "
                 "not accepting for %s (raise LimitNOFILE=, or lower --max-clients)",
                 std::strerror(error), admission_->connections(), refused,
                 absl::FormatDuration(kAcceptPause));
  PauseAccepting(true);
}

void RemoteServer::AcceptAll(int listener, size_t channel, const FrontEnd& front_end) {
  const bool socketcand = channel == kSocketcand;
  while (!accept_paused_) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      const int error = errno;
      if (error == EAGAIN || error == EINTR) return;
      if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
        OutOfDescriptors(listener, front_end, error);
        return;
      }
      if (error == ECONNABORTED || error == EPROTO) continue;  // that one is gone; next
      CS_LOG_LIMITED(kWarning, "accept: %s", std::strerror(error));
      return;
    }
    (void)SetNoDelay(fd.get());
    // Data that waits unacknowledged for --slow-client-timeout ends the connection too: a
    // vanished client while frames flow (keepalive probes only idle connections). Not without
    // that policy: a client kept while it does not read must not be cut by the kernel.
    (void)SetKeepalive(fd.get(), options_.keepalive,
                       options_.slow_client_timeout > absl::ZeroDuration()
                           ? std::max(options_.keepalive, options_.slow_client_timeout)
                           : absl::ZeroDuration());
    if (!options_.allow.Allows(fd.get())) {
      refused_not_allowed_.fetch_add(1, std::memory_order_relaxed);
      Refuse(fd.get(), front_end, "connection refused: address not allowed (--allow)");
      CS_LOG_LIMITED(kWarning, "refused %s: not in --allow %s", PeerName(fd.get()),
                     options_.allow.ToString());
      continue;
    }
    absl::StatusOr<std::unique_ptr<Admission::Ticket>> ticket =
        admission_->Admit(PeerAddress(fd.get()), socketcand ? Admission::kNoChannel : channel);
    if (!ticket.ok()) {
      const std::string reason(ticket.status().message());
      Refuse(fd.get(), front_end, reason);
      CS_LOG_LIMITED(kWarning, "refused %s: %s", PeerName(fd.get()), reason);
      continue;
    }
    io_threads_[next_thread_]->Adopt(next_session_id_++, std::move(fd), front_end,
                                     socketcand ? nullptr : channels_[channel].channel.get(),
                                     *std::move(ticket));
    next_thread_ = (next_thread_ + 1) % io_threads_.size();
  }
}

}  // namespace canserver
