#include "net/remote_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "net/socket_util.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<RemoteServer>> RemoteServer::Create(
    ServerOptions options, std::shared_ptr<CanBackend> backend, bool error_frames) {
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
  ASSIGN_OR_RETURN(UniqueFd listener, ListenTcp(HostPort{options.host, options.port}));
  ASSIGN_OR_RETURN(std::unique_ptr<CanChannel> channel,
                   CanChannel::Create(std::move(backend), {error_frames, options.tx_timeout}));
  ASSIGN_OR_RETURN(Wakeup wakeup, Wakeup::Create());
  auto server = std::unique_ptr<RemoteServer>(new RemoteServer(
      std::move(options), std::move(listener), std::move(channel), std::move(wakeup)));
  for (int i = 0; i < server->options_.io_threads; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<IoThread> t,
                     IoThread::Create(i, server->options_, server->channel_.get()));
    server->io_threads_.push_back(std::move(t));
  }
  return server;
}

RemoteServer::RemoteServer(ServerOptions options, UniqueFd listener,
                           std::unique_ptr<CanChannel> channel, Wakeup wakeup)
    : options_(std::move(options)),
      listener_(std::move(listener)),
      port_(LocalPort(listener_.get())),
      channel_(std::move(channel)),
      stop_wakeup_(std::move(wakeup)) {}

RemoteServer::~RemoteServer() {
  Shutdown();
  // If ServeForever never ran, the threads were never started; stopping them is harmless.
  io_threads_.clear();
  channel_->Stop();
}

size_t RemoteServer::session_count() const {
  size_t n = 0;
  for (const auto& t : io_threads_) n += t->session_count();
  return n;
}

absl::Status RemoteServer::ServeForever() {
  if (serving_.exchange(true)) return absl::FailedPreconditionError("ServeForever already ran");
  channel_->Start();
  for (auto& t : io_threads_) t->Start();
  ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
  RETURN_IF_ERROR(loop->Add(listener_.get(), EPOLLIN, [this](uint32_t) { AcceptAll(); }));
  RETURN_IF_ERROR(
      loop->Add(stop_wakeup_.fd(), EPOLLIN, [this](uint32_t) { stop_wakeup_.Drain(); }));
  CS_LOG(kInfo, "serving %s on %s:%d with %d io threads", channel_->channel_info(), options_.host,
         port_, options_.io_threads);
  absl::Status result;
  while (!stop_requested_.load(std::memory_order_acquire)) {
    absl::StatusOr<int> polled = loop->Poll(-1);
    if (!polled.ok()) {
      result = polled.status();
      break;
    }
  }
  loop->Remove(listener_.get());
  // Sessions first (they flush and unsubscribe), then the CAN thread.
  for (auto& t : io_threads_) t->Stop();
  channel_->Stop();
  CS_LOG(kInfo, "stopped; channel %s", channel_->counters().Summary());
  finished_.Notify();
  return result;
}

void RemoteServer::Shutdown() {
  stop_requested_.store(true, std::memory_order_release);
  stop_wakeup_.Notify();
  if (serving_.load()) finished_.WaitForNotification();
}

void RemoteServer::ServerClose() { listener_.Reset(); }

void RemoteServer::Refuse(int fd, const std::string& reason) {
  std::string bytes;
  (void)v5::Encode(v5::RemoteException{reason}, &bytes);
  (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void RemoteServer::AcceptAll() {
  while (true) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EAGAIN || errno == EINTR) return;
      // EMFILE and friends: log and let the listener retry on the next readiness.
      CS_LOG(kWarning, "accept: %s", std::strerror(errno));
      return;
    }
    (void)SetNoDelay(fd.get());
    if (!options_.allow.Allows(fd.get())) {
      Refuse(fd.get(), "connection refused: address not allowed (--allow)");
      CS_LOG(kWarning, "refused %s: not in --allow %s", PeerName(fd.get()),
             options_.allow.ToString());
      continue;
    }
    if (session_count() >= options_.max_clients) {
      Refuse(fd.get(), absl::StrFormat("server full (%d clients)", options_.max_clients));
      CS_LOG(kWarning, "refused %s: server full (%d clients)", PeerName(fd.get()),
             options_.max_clients);
      continue;
    }
    io_threads_[next_thread_]->Adopt(next_session_id_++, std::move(fd));
    next_thread_ = (next_thread_ + 1) % io_threads_.size();
  }
}

}  // namespace canserver
