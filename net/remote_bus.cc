#include "net/remote_bus.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "net/socket_util.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<RemoteBus>> RemoteBus::Connect(const RemoteBusOptions& options) {
  if (options.protocol_version != v5::kProtocolVersion &&
      options.protocol_version != v5::kProtocolVersionFd) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "protocol version %u: RemoteBus speaks versions 5 and 6", options.protocol_version));
  }
  absl::StatusOr<std::unique_ptr<RemoteBus>> bus =
      ConnectVersion(options, options.protocol_version);
  if (bus.ok() || options.protocol_version == v5::kProtocolVersion) return bus;
  // A server that does not know version 6 says "version mismatch" (canserver before CAN FD) or,
  // as the original server does, closes the connection without a reply.
  const absl::string_view why = bus.status().message();
  if (absl::StrContains(why, "version") || absl::StrContains(why, "connection closed")) {
    absl::StatusOr<std::unique_ptr<RemoteBus>> v5_bus =
        ConnectVersion(options, v5::kProtocolVersion);
    if (v5_bus.ok()) return v5_bus;
  }
  return bus;
}

absl::StatusOr<std::unique_ptr<RemoteBus>> RemoteBus::ConnectVersion(
    const RemoteBusOptions& options, uint8_t version) {
  ASSIGN_OR_RETURN(HostPort address, ParseHostPort(options.channel, v5::kDefaultPort));
  if (address.host.empty()) address.host = "localhost";
  auto bus = std::unique_ptr<RemoteBus>(new RemoteBus(options, version));
  RETURN_IF_ERROR(bus->Dial(address));
  RETURN_IF_ERROR(bus->OpenSession(address));
  if (options.reconnect > absl::ZeroDuration()) bus->AskToKeep();
  if (!options.lease_token.empty()) {
    absl::StatusOr<LeaseGrant> joined = bus->JoinLease(options.lease_token);
    if (!joined.ok()) {
      if (!absl::IsFailedPrecondition(joined.status())) return joined.status();
      bus->lease_note_ = std::string(joined.status().message());
    }
  }
  return bus;
}

absl::Status RemoteBus::Dial(const HostPort& address) {
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectTcp(address, options_.connect_timeout));
  std::unique_ptr<TlsStream> tls;
  if (options_.tls.enabled()) {
    ASSIGN_OR_RETURN(tls,
                     TlsConnect(fd.get(), options_.tls, address.host, options_.connect_timeout));
    RETURN_IF_ERROR(SetNonBlocking(fd.get()));
  }
  fd_ = std::move(fd);
  tls_ = std::move(tls);
  decoder_ = v5::StreamDecoder();
  closed_ = absl::OkStatus();
  return absl::OkStatus();
}

absl::Status RemoteBus::OpenSession(const HostPort& address) {
  // BusRequest and FilterConfig in one write, as the original client does.
  std::string hello;
  RETURN_IF_ERROR(v5::Encode(v5::BusRequest{version_, options_.bitrate}, &hello));
  RETURN_IF_ERROR(v5::Encode(v5::FilterConfig{options_.filters}, &hello));
  if (absl::Status sent = WriteAll(hello); !sent.ok()) {
    if (tls_ != nullptr) {
      // TLS 1.3: the server checks our certificate after our side of the handshake is done and
      // may close before this first write; its alert, if it came, says why.
      pollfd p{fd_.get(), POLLIN, 0};
      uint8_t byte;
      if (::poll(&p, 1, 1000) > 0 && ReadSome(&byte, 1) < 0 && errno == EPROTO) {
        return absl::UnavailableError(
            absl::StrCat("TLS: ", address.ToString(),
                         " refused this client after the handshake: ", tls_->last_error()));
      }
    }
    return absl::UnavailableError(
        absl::StrCat("send(handshake) to ", address.ToString(), ": ", sent.message()));
  }
  Deadline deadline{options_.connect_timeout, std::nullopt};
  ASSIGN_OR_RETURN(std::optional<v5::Event> reply, ReadEvent(deadline));
  if (!reply.has_value()) {
    return absl::DeadlineExceededError(
        absl::StrCat("handshake error: no BusResponse from ", address.ToString()));
  }
  if (auto* ex = std::get_if<v5::RemoteException>(&*reply)) {
    return absl::UnavailableError(ex->text);  // the server's own words: version, full, bus down
  }
  auto* response = std::get_if<v5::BusResponse>(&*reply);
  if (response == nullptr) {
    return absl::InternalError(
        absl::StrCat("handshake error: expected BusResponse, got ", v5::EventName(*reply)));
  }
  channel_info_ = absl::StrCat(response->channel_info, " on ", address.ToString());
  return absl::OkStatus();
}

void RemoteBus::AskToKeep() {
  absl::StatusOr<v5::Event> reply =
      Exchange(v5::ResumeRequest{"", 0}, v5::EventId::kResumeResponse, options_.connect_timeout);
  const auto* got = reply.ok() ? std::get_if<v5::ResumeResponse>(&*reply) : nullptr;
  if (got != nullptr && got->status == v5::ResumeStatus::kResumable) {
    resume_token_ = got->token;
    frames_received_ = 0;  // the server counts this session's stream from its reply on
  } else {
    // A server that keeps no sessions (--resume-grace 0) or does not know the event: a break
    // then opens a new session.
    resume_token_.clear();
  }
}

RemoteBus::~RemoteBus() { Shutdown(); }

void RemoteBus::Shutdown() {
  if (!fd_.valid()) return;
  // Half-close, then read to the server's close: the server writes what it still holds of ours
  // to the bus first. Closing with unread data would reset the connection, and the kernel would
  // throw away whatever of ours it had not sent yet. Bounded, for a server that does not answer.
  // ConnectionClosed first: the server ends the session at once instead of keeping it for a
  // resume (--resume-grace).
  // One non-blocking try: a server that does not read must not hold the shutdown.
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    const char closed = static_cast<char>(v5::EventId::kConnectionClosed);
    if (tls_ == nullptr) {
      (void)::send(fd_.get(), &closed, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      std::lock_guard<std::mutex> tls_lock(tls_mu_);
      (void)tls_->Write(&closed, 1);
    }
  }
  ::shutdown(fd_.get(), SHUT_WR);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  char buf[16 << 10];
  while (absl::Now() < deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    const int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
    if (::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT) <= 0 && errno != EAGAIN) break;
  }
  fd_.Reset();
}

absl::Status RemoteBus::SendEvent(const v5::Event& event) {
  std::string bytes;
  RETURN_IF_ERROR(v5::Encode(event, &bytes));
  return SendBytes(bytes);
}

absl::Status RemoteBus::EncodeFrame(const CanFrame& frame, std::string* out) const {
  if (!frame.fd()) return v5::Encode(v5::CanMessage{frame}, out);
  if (!fd()) {
    return absl::InvalidArgumentError(
        "this session speaks protocol version 5, which cannot carry CAN FD frames (the server "
        "refused version 6, or RemoteBusOptions::protocol_version asked for 5)");
  }
  return v5::Encode(v5::CanFdMessage{frame}, out);
}

absl::Status RemoteBus::SendMany(absl::Span<const CanFrame> frames) {
  std::string bytes;
  bytes.reserve(frames.size() * v5::kCanMessageSize);
  for (const CanFrame& f : frames) RETURN_IF_ERROR(EncodeFrame(f, &bytes));
  return SendBytes(bytes);
}

absl::Status RemoteBus::SendBytes(const std::string& bytes) {
  const bool reconnecting = options_.reconnect > absl::ZeroDuration();
  while (true) {
    uint64_t seen;
    absl::Status sent;
    {
      std::shared_lock<std::shared_mutex> conn(conn_mu_, std::defer_lock);
      if (reconnecting) conn.lock();
      std::lock_guard<std::mutex> lock(send_mu_);
      if (!fd_.valid()) return absl::FailedPreconditionError("bus is shut down");
      seen = generation();
      sent = WriteAll(bytes);
      if (sent.ok() || !reconnecting) return sent;
    }
    // The bytes are sent again whole on the new connection: what of them the old one carried
    // is in the server's count (ReconnectStatus::last).
    RETURN_IF_ERROR(Reconnect(seen, sent));
  }
}

absl::Status RemoteBus::WriteAll(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n;
    if (tls_ == nullptr) {
      n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    } else {
      std::lock_guard<std::mutex> lock(tls_mu_);
      n = tls_->Write(bytes.data() + done, bytes.size() - done);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {  // TLS: the socket is non-blocking; wait for room, unlocked
        pollfd p{fd_.get(), POLLOUT, 0};
        (void)::poll(&p, 1, 100);
        continue;
      }
      return absl::UnavailableError(absl::StrCat(
          "connection closed unexpectedly: ",
          errno == EPROTO && tls_ != nullptr ? tls_->last_error() : std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

ssize_t RemoteBus::ReadSome(uint8_t* buf, size_t len) {
  if (tls_ == nullptr) return ::recv(fd_.get(), buf, len, MSG_DONTWAIT);
  std::lock_guard<std::mutex> lock(tls_mu_);
  return tls_->Read(buf, len);
}

absl::Status RemoteBus::Send(const CanFrame& frame) {
  std::string bytes;
  RETURN_IF_ERROR(EncodeFrame(frame, &bytes));
  return SendBytes(bytes);
}

absl::StatusOr<std::optional<v5::Event>> RemoteBus::ReadEvent(Deadline& deadline) {
  while (true) {
    if (!closed_.ok()) return closed_;
    absl::StatusOr<std::optional<v5::Event>> next = decoder_.Next();
    if (!next.ok()) {
      closed_ = absl::DataLossError(
          absl::StrCat("protocol error from server: ", next.status().message()));
      return closed_;
    }
    if (next->has_value()) return next;
    // A deadline already passed still takes bytes that are here, without waiting.
    const absl::Duration left = deadline.Remaining();
    const int wait_ms =
        left == absl::InfiniteDuration()
            ? -1
            : static_cast<int>(std::min<int64_t>(
                  absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), INT_MAX));
    bool buffered = false;
    if (tls_ != nullptr) {
      std::lock_guard<std::mutex> lock(tls_mu_);
      buffered = tls_->pending();
    }
    if (!buffered) {
      pollfd p{fd_.get(), POLLIN, 0};
      const int rc = ::poll(&p, 1, wait_ms);
      if (rc < 0 && errno != EINTR) return ErrnoStatus("poll");
      if (rc == 0 && left == absl::ZeroDuration()) return std::nullopt;
      if (rc <= 0) continue;
    }
    uint8_t buf[16384];
    const ssize_t n = ReadSome(buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      // A TLS alert says why: the server refused this client's certificate, for one.
      closed_ = absl::UnavailableError(
          n < 0 && errno == EPROTO && tls_ != nullptr
              ? absl::StrCat("connection closed by a TLS error: ", tls_->last_error())
              : "connection closed unexpectedly");
      return closed_;
    }
    if (n > 0) decoder_.Append(absl::MakeConstSpan(buf, static_cast<size_t>(n)));
  }
}

absl::StatusOr<std::optional<CanFrame>> RemoteBus::Consume(const v5::Event& event) {
  if (auto* msg = std::get_if<v5::CanMessage>(&event)) {
    ++frames_received_;
    return msg->frame;
  }
  if (auto* fd_msg = std::get_if<v5::CanFdMessage>(&event)) {
    ++frames_received_;
    return fd_msg->frame;
  }
  if (std::holds_alternative<v5::TransmitFail>(event)) transmit_failures_.fetch_add(1);
  if (auto* ex = std::get_if<v5::RemoteException>(&event)) {
    // Mostly the session's end (the server closes next, which the following call meets); a
    // refusal for the client's role (--access) or another's lease leaves the session receiving.
    return absl::UnavailableError(ex->text);
  }
  if (std::holds_alternative<v5::ConnectionClosed>(event)) {
    closed_ = absl::UnavailableError("connection closed unexpectedly");
    return closed_;
  }
  return std::nullopt;  // TransmitSuccess and anything else carries nothing for the caller
}

absl::StatusOr<std::optional<CanFrame>> RemoteBus::Recv(absl::Duration timeout) {
  const bool reconnecting = options_.reconnect > absl::ZeroDuration();
  // The deadline is fixed when Recv first has to wait: events already buffered need neither a
  // clock read nor a syscall.
  Deadline deadline{timeout, std::nullopt};
  while (true) {
    uint64_t seen;
    absl::Status broken;
    {
      std::shared_lock<std::shared_mutex> conn(conn_mu_, std::defer_lock);
      if (reconnecting) conn.lock();
      if (!fd_.valid()) return absl::FailedPreconditionError("bus is shut down");
      if (!kept_.empty()) {
        const CanFrame frame = kept_.front();
        kept_.pop_front();
        return frame;
      }
      seen = generation();
      while (true) {
        absl::StatusOr<std::optional<v5::Event>> event = ReadEvent(deadline);
        absl::StatusOr<std::optional<CanFrame>> frame =
            event.ok() ? (event->has_value() ? Consume(**event) : std::optional<CanFrame>())
                       : absl::StatusOr<std::optional<CanFrame>>(event.status());
        if (event.ok() && !event->has_value()) return std::nullopt;
        if (frame.ok() && frame->has_value()) return frame;
        if (frame.ok()) continue;
        if (!reconnecting || !Broken(frame.status())) return frame.status();
        broken = frame.status();
        break;
      }
    }
    RETURN_IF_ERROR(Reconnect(seen, broken));
  }
}

bool RemoteBus::Broken(const absl::Status& status) const {
  // canserver's notice before it stops: a restart, most likely.
  return !closed_.ok() || absl::StartsWith(status.message(), "server shutting down");
}

ReconnectStatus RemoteBus::reconnect_status() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  return status_;
}

absl::Status RemoteBus::Reconnect(uint64_t seen, const absl::Status& why) {
  std::lock_guard<std::mutex> one(reconnect_mu_);
  if (generation() != seen) return absl::OkStatus();  // another call has done it meanwhile
  if (gave_up_) return closed_;
  // Wakes a Recv waiting on the old connection, so it lets go of it.
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
  std::unique_lock<std::shared_mutex> conn(conn_mu_);
  if (!fd_.valid()) return absl::FailedPreconditionError("bus is shut down");
  ASSIGN_OR_RETURN(HostPort address, ParseHostPort(options_.channel, v5::kDefaultPort));
  if (address.host.empty()) address.host = "localhost";
  const absl::Time lost = absl::Now();
  if (options_.on_break) options_.on_break(why);
  absl::Duration pause = absl::Milliseconds(100);
  absl::Status last = why;
  while (absl::Now() - lost < options_.reconnect) {
    absl::StatusOr<bool> resumed = ReconnectOnce(address, lost);
    if (resumed.ok()) {
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return absl::OkStatus();
    }
    last = resumed.status();
    absl::SleepFor(std::min(pause, options_.reconnect - (absl::Now() - lost)));
    pause = std::min(pause * 2, absl::Seconds(1));
  }
  gave_up_ = true;
  closed_ = absl::UnavailableError(absl::StrCat(why.message(), "; not reconnected within ",
                                                absl::FormatDuration(options_.reconnect), ": ",
                                                last.message()));
  return closed_;
}

absl::StatusOr<bool> RemoteBus::ReconnectOnce(const HostPort& address, absl::Time lost) {
  RETURN_IF_ERROR(Dial(address));
  std::string refused;
  if (!resume_token_.empty()) {
    std::string request;
    RETURN_IF_ERROR(v5::Encode(v5::ResumeRequest{resume_token_, frames_received_}, &request));
    RETURN_IF_ERROR(WriteAll(request));
    Deadline deadline{options_.connect_timeout, std::nullopt};
    ASSIGN_OR_RETURN(std::optional<v5::Event> reply, ReadEvent(deadline));
    if (!reply.has_value()) return absl::DeadlineExceededError("no answer to ResumeRequest");
    if (auto* ex = std::get_if<v5::RemoteException>(&*reply))
      return absl::UnavailableError(ex->text);
    auto* got = std::get_if<v5::ResumeResponse>(&*reply);
    if (got == nullptr) {
      return absl::InternalError(
          absl::StrCat("expected ResumeResponse, got ", v5::EventName(*reply)));
    }
    if (got->status == v5::ResumeStatus::kResumed) {
      std::lock_guard<std::mutex> lock(status_mu_);
      ++status_.breaks;
      ++status_.resumed;
      status_.frames_lost += got->frames_lost;
      status_.gap += absl::Milliseconds(got->away_ms);
      status_.last = got->text;
      return true;
    }
    refused = got->text;  // this connection may open a new session
  }
  RETURN_IF_ERROR(OpenSession(address));
  AskToKeep();
  // What the old session had: its filters (options_), periodic tasks and lease.
  std::string restore;
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    for (PeriodicTask* task : tasks_) RETURN_IF_ERROR(v5::Encode(task->StartEvent(), &restore));
  }
  RETURN_IF_ERROR(WriteAll(restore));
  if (!options_.lease_token.empty()) {
    (void)LeaseExchange(v5::LeaseRequest{0, options_.lease_token}, options_.connect_timeout);
  }
  std::lock_guard<std::mutex> lock(status_mu_);
  ++status_.breaks;
  ++status_.new_sessions;
  status_.gap += absl::Now() - lost;
  status_.last = absl::StrFormat(
      "a new session after %.1f s: what the bus carried meanwhile was not received%s%s",
      absl::ToDoubleSeconds(absl::Now() - lost), refused.empty() ? "" : " (",
      refused.empty() ? "" : refused + ")");
  return false;
}

absl::StatusOr<std::unique_ptr<PeriodicTask>> RemoteBus::SendPeriodic(const CanFrame& frame,
                                                                      absl::Duration period,
                                                                      absl::Duration duration) {
  if (period < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("period must be at least 1 ms (protocol v5 counts in ms)");
  }
  auto task = std::unique_ptr<PeriodicTask>(new PeriodicTask(this, frame, period, duration));
  RETURN_IF_ERROR(task->SendStart());
  std::lock_guard<std::mutex> lock(tasks_mu_);
  tasks_.push_back(task.get());  // restarted in a new session after a break
  return task;
}

absl::StatusOr<v5::Event> RemoteBus::Exchange(const v5::Event& request, v5::EventId reply,
                                              absl::Duration timeout) {
  std::string bytes;
  RETURN_IF_ERROR(v5::Encode(request, &bytes));
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    RETURN_IF_ERROR(WriteAll(bytes));
  }
  Deadline deadline{timeout, std::nullopt};
  while (true) {
    ASSIGN_OR_RETURN(std::optional<v5::Event> event, ReadEvent(deadline));
    if (!event.has_value()) {
      return absl::DeadlineExceededError(
          absl::StrFormat("no answer to %s within %s (is the server canserver?)",
                          v5::EventName(request), absl::FormatDuration(timeout)));
    }
    if (v5::EventName(*event) == v5::EventName(reply)) return *std::move(event);
    ASSIGN_OR_RETURN(std::optional<CanFrame> frame, Consume(*event));
    if (frame.has_value()) kept_.push_back(*frame);  // for Recv
  }
}

absl::StatusOr<LeaseGrant> RemoteBus::LeaseExchange(const v5::LeaseRequest& request,
                                                    absl::Duration timeout) {
  ASSIGN_OR_RETURN(v5::Event event, Exchange(request, v5::EventId::kLeaseResponse, timeout));
  const auto& got = std::get<v5::LeaseResponse>(event);
  if (!got.granted) return absl::FailedPreconditionError(got.text);
  return LeaseGrant{absl::Milliseconds(got.remaining_ms), got.token, got.text};
}

absl::StatusOr<LeaseGrant> RemoteBus::Lease(absl::Duration length, absl::Duration timeout) {
  if (length < absl::ZeroDuration()) return absl::InvalidArgumentError("negative lease length");
  std::shared_lock<std::shared_mutex> conn(conn_mu_, std::defer_lock);
  if (options_.reconnect > absl::ZeroDuration()) conn.lock();
  const int64_t seconds = absl::ToInt64Seconds(absl::Ceil(length, absl::Seconds(1)));
  return LeaseExchange(
      v5::LeaseRequest{static_cast<int32_t>(std::min<int64_t>(seconds, INT32_MAX)), ""}, timeout);
}

absl::StatusOr<LeaseGrant> RemoteBus::JoinLease(const std::string& token, absl::Duration timeout) {
  std::shared_lock<std::shared_mutex> conn(conn_mu_, std::defer_lock);
  if (options_.reconnect > absl::ZeroDuration()) conn.lock();
  return LeaseExchange(v5::LeaseRequest{0, token}, timeout);
}

absl::Status RemoteBus::SetFilters(const std::vector<CanFilter>& filters) {
  RETURN_IF_ERROR(SendEvent(v5::FilterConfig{filters}));
  std::lock_guard<std::mutex> lock(tasks_mu_);  // options_.filters: a new session's
  options_.filters = filters;
  return absl::OkStatus();
}

PeriodicTask::~PeriodicTask() { bus_->Forget(this); }

void RemoteBus::Forget(PeriodicTask* task) {
  std::lock_guard<std::mutex> lock(tasks_mu_);
  tasks_.erase(std::remove(tasks_.begin(), tasks_.end(), task), tasks_.end());
}

absl::Status PeriodicTask::Stop() {
  bus_->Forget(this);  // not restarted in a new session
  return bus_->SendEvent(v5::PeriodicMessageStop{frame_.id});
}

absl::Status PeriodicTask::Modify(const CanFrame& frame) {
  if (frame.id != frame_.id) {
    return absl::InvalidArgumentError("Modify() keeps the arbitration id; start a new task");
  }
  frame_ = frame;
  return SendStart();
}

v5::Event PeriodicTask::StartEvent() const {
  const auto period_ms = static_cast<int32_t>(absl::ToInt64Milliseconds(period_));
  const auto duration_ms = static_cast<int32_t>(absl::ToInt64Milliseconds(duration_));
  if (!frame_.fd()) return v5::PeriodicMessageStart{period_ms, duration_ms, frame_};
  return v5::PeriodicFdMessageStart{period_ms, duration_ms, frame_};
}

absl::Status PeriodicTask::SendStart() {
  if (frame_.fd() && !bus_->fd()) {
    return absl::InvalidArgumentError(
        "this session speaks protocol version 5: no CAN FD periodic jobs (the server refused "
        "version 6, or RemoteBusOptions::protocol_version asked for 5)");
  }
  return bus_->SendEvent(StartEvent());
}

}  // namespace canserver
