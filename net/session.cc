#include "net/session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/text_format.h"
#include "io/clock.h"
#include "net/bus_opening.h"
#include "net/socket_util.h"

namespace canserver {
namespace {
constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kReadsPerWakeup = 4;  // fairness: other sessions get their turn
// While the tx queue is full, bytes read but not yet decoded, per session, at most. Reading the
// socket empty stays below it with --client-rcvbuf up to 128 KiB (the kernel holds twice that).
constexpr size_t kMaxUndecoded = 4 * kReadChunk;
// Replies beyond the output cap (control replies may exceed it, see AppendReply) a client may
// leave unread before it is disconnected: socketcand's "< echo >" answers each request.
constexpr size_t kReplySlack = 64 << 10;

}  // namespace

Session::Session(uint64_t id, UniqueFd fd, std::string peer, const ServerOptions& options,
                 const FrontEnd& front_end, CanChannel* channel,
                 absl::Span<CanChannel* const> channels, EventLoop* loop,
                 std::shared_ptr<const Wakeup> io_wakeup, std::unique_ptr<Admission::Ticket> ticket)
    : id_(id),
      fd_(std::move(fd)),
      peer_(std::move(peer)),
      options_(options),
      channel_(channel),
      channels_(channels),
      loop_(loop),
      io_wakeup_(std::move(io_wakeup)),
      protocol_(front_end.open(this)),
      ticket_(std::move(ticket)),
      output_(fd_.get(), options.output_buffer_bytes, &local_counters_, io_wakeup_),
      connected_at_(absl::Now()) {
  if (front_end.tls && options_.tls != nullptr) transport_ = Transport::kDetecting;
}

void Session::Start() {
  std::string greeting;
  protocol_->Greet(&greeting);
  if (!greeting.empty()) {
    AppendReply(greeting);
    Flush(options_.write_budget_bytes);
  }
  if (!closed_ && protocol_->opens_at_connect()) (void)Decode({});  // a refused open ends it
}

ssize_t Session::Receive(void* buf, size_t len) {
  if (tls_ != nullptr) return tls_->Read(buf, len);
  return ::recv(fd_.get(), buf, len, MSG_DONTWAIT);
}

bool Session::AdvanceTls() {
  TlsServer& server = *options_.tls;
  if (transport_ == Transport::kDetecting) {
    uint8_t first = 0;
    const ssize_t n = ::recv(fd_.get(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) return true;  // the end or an error: the usual read meets it
    if (first == kTlsHandshakeRecord) {
      tls_ = server.NewStream(fd_.get());
      if (tls_ == nullptr) {
        Close("TLS: out of memory", "");
        return false;
      }
      transport_ = Transport::kHandshaking;
    } else if (server.plain_allowed()) {
      transport_ = Transport::kPlain;
      return true;
    } else {
      server.CountFailure();
      Close("plain text on a TLS-only port (--tls required)",
            "this canserver accepts TLS connections only (--tls required): connect with TLS, "
            "e.g. can.Bus(channel, interface='remote', tls_ca='ca.pem') or canremote --tls-ca "
            "ca.pem, with the CA file from the rig's owner");
      return false;
    }
  }
  std::string error;
  const TlsStream::Step step = tls_->Handshake(&error);
  switch (step) {
    case TlsStream::Step::kDone:
      transport_ = Transport::kOn;
      handshake_wants_write_ = false;
      output_.UseTls(tls_.get());
      CS_LOG_LIMITED(kInfo, "session %d (%s): %s", id_, peer_, tls_->Describe());
      UpdateInterest();
      return true;
    case TlsStream::Step::kWantRead:
    case TlsStream::Step::kWantWrite:
      handshake_wants_write_ = step == TlsStream::Step::kWantWrite;
      UpdateInterest();
      return false;
    case TlsStream::Step::kFailed:
      break;
  }
  server.CountFailure();
  // OpenSSL has sent the client an alert naming the problem; nothing more can be said.
  Close(error, "");
  return false;
}

void Session::OnEvents(uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) {
    OnHangup();
  } else if (events & EPOLLIN) {
    OnReadable();
  }
  if (events & EPOLLOUT) OnWritable();
}

Session::~Session() {
  if (!closed_) Close("server stopped", "");
}

bool Session::TransmitBlocked() const { return subscriber_ && subscriber_->tx_room() == 0; }

bool Session::ReadBlocked() const {
  const size_t undecoded = protocol_->buffered();
  return tx_waiting_ && (undecoded + kReadChunk > kMaxUndecoded || (!draining_ && undecoded > 0));
}

bool Session::Decode(absl::Span<const uint8_t> bytes) {
  std::string reply;
  decoding_ = true;
  const absl::Status status = protocol_->OnBytes(bytes, &reply);
  decoding_ = false;
  if (tx_wake_owed_) {
    tx_wake_owed_ = false;
    channel_->WakeForTransmit();
  }
  decoded_at_ns_ = 0;  // the next Decode (or a frame queued outside one) reads the clock anew
  if (!reply.empty()) {
    AppendReply(reply);
    // Replies go out at once, each in its own write: python-can 4.1's socketcand client expects
    // "< ok >" alone in one read, and a BusResponse should not wait for the next pump.
    Flush(options_.write_budget_bytes);
    if (closed_) return false;
  }
  if (protocol_->TakeSettle()) frames_after_ = absl::Now() + kSettle;
  if (!status.ok()) {
    // The reply already carries the error naming the problem.
    Close(status.message(), "");
    return false;
  }
  // A full queue may have stopped the decoder: the rest waits for the CAN thread to make room.
  // Asked of the decoder, not of the queue: the CAN thread may have made room since the decoder
  // stopped, and bytes already read would then wait for more bytes that may never come.
  tx_waiting_ = protocol_->held_back();
  return true;
}

void Session::OnReadable() {
  if (closed_ || input_ != Input::kReading) return;
  if ((transport_ == Transport::kDetecting || transport_ == Transport::kHandshaking) &&
      !AdvanceTls()) {
    return;
  }
  uint8_t buf[kReadChunk];
  // A peer that is gone (no longer in the loop) is read to its end or to a full queue at once:
  // nothing else would come back for the rest.
  for (size_t i = 0; i < kReadsPerWakeup || peer_gone_; ++i) {
    if (ReadBlocked()) {
      // Stop reading, so TCP slows the client instead of a frame being refused.
      input_ = Input::kPaused;
      subscriber_->counters.tx_paused.Add();
      UpdateInterest();
      return;
    }
    const ssize_t n = Receive(buf, sizeof buf);
    // A reset after the data the client sent: that data was read first, so it is an end too.
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      if (tx_waiting_) {
        // The client is done sending (python-can's shutdown after a burst, a replayed log), but
        // frames it sent still wait undecoded for room in its tx queue: they go first
        // (ResumeTransmit), then the session ends.
        input_ = Input::kEnded;
        UpdateInterest();
        return;
      }
      EndAtEof();
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN) draining_ = false;
      if (errno == EAGAIN || errno == EINTR) return;
      ConnectionLost(
          errno == ETIMEDOUT
              ? std::string("client unreachable: no answer within --keepalive (recv timed out)")
              : absl::StrFormat("recv: %s", std::strerror(errno)));
      return;
    }
    counters().bytes_from_client.Add(static_cast<uint64_t>(n));
    // A full read may have left more behind: the socket is read empty before reading pauses.
    // TLS returns a record (16 KiB at most) per read: more may follow until EAGAIN.
    draining_ = tls_ != nullptr || static_cast<size_t>(n) == sizeof buf;
    if (!Decode(absl::MakeConstSpan(buf, static_cast<size_t>(n)))) return;
    if (!draining_ && !peer_gone_) break;
  }
}

bool Session::ResumeTransmit() {
  if (!tx_waiting_ || closed_) return false;
  Subscriber& sub = *subscriber_;
  while (tx_waiting_) {
    if (sub.tx.size_approx() > sub.tx_resume_level()) {
      // Ask the CAN thread for a wakeup at half, then look once more (WakeGate: none is lost).
      sub.tx_gate.Arm();
      if (sub.tx.size_approx() > sub.tx_resume_level()) return true;
      sub.tx_gate.Disarm();
    }
    if (!Decode({})) return false;  // what was read before, as far as the queue takes it
  }
  if (input_ == Input::kEnded) {
    EndAtEof();
    return false;
  }
  if (input_ == Input::kPaused) {
    input_ = Input::kReading;
    UpdateInterest();
    OnReadable();
  }
  return tx_waiting_;
}

void Session::EndAtEof() {
  const absl::Status eof = protocol_->OnEof();
  ConnectionLost(eof.ok() ? "client closed the connection" : eof.message());
}

void Session::ConnectionLost(absl::string_view reason) {
  if (!resume_token_.empty() && !closed_) {
    Detach(reason);
  } else {
    Close(reason, "");
  }
}

ResumeIdentity Session::Identity() const {
  return {PeerAddress(fd_.get()),
          tls_ != nullptr && !tls_->peer_names().empty() ? tls_->peer_names().front() : ""};
}

ResumeReply Session::KeepForResume() {
  if (options_.resumable == nullptr || options_.resume_grace <= absl::ZeroDuration()) {
    return {ResumeReply::Kind::kRefused, absl::ZeroDuration(), "",
            "this canserver keeps no session after its connection breaks (--resume-grace 0); "
            "the session ends with the connection"};
  }
  if (resume_token_.empty()) {
    resume_token_ = options_.resumable->Enter(id_, Identity(), deliver_);
    output_.KeepSent(options_.resume_replay_frames);
    drops_reported_ = subscriber_->counters.drops_ring_full.Get();
    subscriber_->resumable.store(true, std::memory_order_relaxed);
  }
  return {ResumeReply::Kind::kResumable, options_.resume_grace, resume_token_,
          absl::StrFormat("session %d is kept for %s after its connection breaks", id_,
                          absl::FormatDuration(options_.resume_grace))};
}

ResumeReply Session::ResumeSession(absl::string_view token, uint64_t frames_received) {
  if (options_.resumable == nullptr) {
    return {ResumeReply::Kind::kRefused, absl::ZeroDuration(), "",
            "this canserver keeps no session after its connection breaks (--resume-grace 0): "
            "open a new session"};
  }
  absl::StatusOr<ResumableSessions::Deliver> to =
      options_.resumable->Claim(token, Identity(), absl::Now());
  if (!to.ok()) {
    local_counters_.client_errors.Add();
    CS_LOG_LIMITED(kWarning, "session %d (%s): %s", id_, peer_, to.status().message());
    return {ResumeReply::Kind::kRefused, absl::ZeroDuration(), "",
            std::string(to.status().message())};
  }
  // The connection goes to the session it resumes, which answers it; this one ends.
  Handoff handoff;
  handoff.peer = peer_;
  handoff.frames_received = frames_received;
  handoff.undecoded = protocol_->TakeUndecoded();
  loop_->Remove(fd_.get());
  output_.Rebind(-1, nullptr);
  handoff.fd = std::move(fd_);
  handoff.tls = std::move(tls_);
  (*to)(std::move(handoff));
  return {ResumeReply::Kind::kHandedOver, absl::ZeroDuration(), "",
          "the connection resumes an earlier session"};
}

void Session::Reattach(Handoff handoff) {
  if (closed_) return;  // the connection closes; its client opens a new session
  if (detached()) {
    Attach(std::move(handoff));
    return;
  }
  // The old connection is not known to be broken (black-holed, or the client noticed first):
  // the new one replaces it, once what the client sent on the old one has gone to the bus.
  pending_handoff_ = std::move(handoff);
  if (tx_waiting_) {
    input_ = Input::kEnded;  // ResumeTransmit decodes the rest, then EndAtEof detaches
    if (!peer_gone_) {
      peer_gone_ = true;
      loop_->Remove(fd_.get());
    }
    return;
  }
  Detach("replaced by the client's new connection");
}

void Session::Detach(absl::string_view reason) {
  // The start of an event the break cut short can never be completed.
  const size_t cut = protocol_->TakeUndecoded().size();
  if (fd_.valid()) {
    loop_->Remove(fd_.get());
    ResetOnClose(fd_.get());  // nothing more goes to a broken connection
  }
  output_.Rebind(-1, nullptr);
  fd_.Reset();
  tls_.reset();
  transport_ = Transport::kPlain;
  input_ = Input::kReading;
  interest_ = EPOLLIN;
  peer_gone_ = tx_waiting_ = draining_ = false;
  const absl::Time now = absl::Now();
  detached_at_ = now;
  subscriber_->detached_until_ns.store(absl::ToUnixNanos(now + options_.resume_grace),
                                       std::memory_order_relaxed);
  options_.resumable->Detached(resume_token_, now + options_.resume_grace);
  CS_LOG_LIMITED(kInfo, "%s: connection lost (%s)%s; the session is kept for %s", Who(false),
                 reason, cut > 0 ? absl::StrFormat(", %d bytes of a cut event dropped", cut) : "",
                 absl::FormatDuration(options_.resume_grace));
  if (pending_handoff_.has_value()) {
    Handoff handoff = std::move(*pending_handoff_);
    pending_handoff_.reset();
    Attach(std::move(handoff));
  }
}

void Session::Attach(Handoff handoff) {
  fd_ = std::move(handoff.fd);
  tls_ = std::move(handoff.tls);
  transport_ = tls_ != nullptr ? Transport::kOn : Transport::kPlain;
  output_.Rebind(fd_.get(), tls_.get());
  interest_ = EPOLLIN;
  if (absl::Status added = loop_->Add(fd_.get(), EPOLLIN, [this](uint32_t e) { OnEvents(e); });
      !added.ok()) {
    Close(absl::StrCat("resuming: ", added.message()), "");
    return;
  }
  const absl::Time now = absl::Now();
  const absl::Duration away = now - detached_at_;
  detached_at_ = absl::InfinitePast();
  subscriber_->detached_until_ns.store(0, std::memory_order_relaxed);
  subscriber_->resumes.fetch_add(1, std::memory_order_relaxed);
  options_.resumable->Attached(resume_token_);
  Subscriber& sub = *subscriber_;
  // What the ring dropped since the client last heard: during the break, and just before it
  // while the io thread had not yet run to find the connection broken.
  const uint64_t drops = sub.counters.drops_ring_full.Get();
  const uint64_t overflowed = drops - drops_reported_;
  drops_reported_ = drops;
  const SentFrames::Resumed resumed = output_.ResumeFrom(handoff.frames_received);
  ResumeReport report;
  report.grace = options_.resume_grace;
  report.away = away;
  report.frames_lost = overflowed + resumed.lost;
  report.frames_from_client = sub.counters.frames_from_client.Get();
  report.token = resume_token_;
  report.text = absl::StrFormat(
      "session %d resumed after %s without a connection: %d frames sent again, %d lost (%d "
      "the ring of %d frames could not hold, %d in transit beyond the %d kept)",
      id_, absl::FormatDuration(absl::Trunc(away, absl::Milliseconds(1))), resumed.replay,
      report.frames_lost, overflowed, sub.ring.capacity(), resumed.lost,
      options_.resume_replay_frames);
  std::string head;
  protocol_->AppendResumed(report, &head);
  output_.Append(head);
  output_.Replay(resumed.replay, *protocol_);
  CS_LOG_LIMITED(kInfo, "%s resumed from %s: %s", Who(false), handoff.peer, report.text);
  if (!handoff.undecoded.empty() &&
      !Decode(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(handoff.undecoded.data()),
                                  handoff.undecoded.size()))) {
    return;
  }
  Flush(options_.write_budget_bytes);
}

void Session::OnHangup() {
  if (closed_) return;
  if (tx_waiting_) {
    // Reset or gone while frames it sent wait for its tx queue (a client that closes with unread
    // replies resets the connection). What it sent is still in the socket: ResumeTransmit reads
    // and sends it as the queue makes room; nothing is written to it any more.
    peer_gone_ = true;
    if (input_ == Input::kReading) input_ = Input::kPaused;
    loop_->Remove(fd_.get());
    return;
  }
  OnReadable();
}

void Session::OnWritable() {
  if (closed_) return;
  if (transport_ == Transport::kHandshaking) {
    if (AdvanceTls()) OnReadable();
    return;
  }
  Flush(options_.write_budget_bytes);
}

void Session::AppendReply(absl::string_view bytes) {
  // Control replies (BusResponse, TransmitFail, RemoteException, socketcand's "< ok >") are small
  // and rare; they may exceed the output cap by their own size so they are never lost. A client
  // that asks for replies and never reads them is disconnected before it costs more.
  output_.Append(bytes);
  if (output_.pending() > options_.output_buffer_bytes + kReplySlack && !closed_) {
    Close("client does not read its replies", "");
  }
}

bool Session::Pump(PassClock& clock) {
  if (closed_ || !subscriber_ || detached()) return false;
  if (frames_after_ != absl::InfinitePast()) {
    if (absl::Now() < frames_after_) return false;  // PrepareSleep leaves the gate unarmed
    frames_after_ = absl::InfinitePast();
  }
  Subscriber& sub = *subscriber_;
  sub.counters.ring_high_water.Max(sub.ring.size_approx());
  const size_t encoded =
      output_.EncodeFrom(sub.ring, *protocol_, options_.write_budget_bytes, clock);
  if (const uint32_t failed = sub.TakeTxFailed(); failed > 0) {
    std::string fail;
    protocol_->AppendTransmitFail(failed, &fail);
    output_.Append(fail);
  }
  Flush(options_.write_budget_bytes);
  if (closed_) return false;
  // Work remains if the budget ran out while frames wait and the socket still takes data.
  return encoded >= options_.write_budget_bytes && !output_.want_write() && !sub.ring.empty();
}

bool Session::PrepareSleep() {
  // A detached session's ring fills without waking anyone; its client takes it when it resumes.
  if (closed_ || !subscriber_ || detached()) return true;
  // Settling (kSettle): frames wait; the housekeeping tick, or any other event, wakes the thread.
  if (frames_after_ != absl::InfinitePast()) return true;
  // A session waiting for EPOLLOUT is woken by the socket, not by the ring.
  if (output_.want_write() || !output_.has_room(protocol_->max_frame_bytes())) return true;
  subscriber_->gate.Arm();
  if (subscriber_->HasWork()) {
    subscriber_->gate.Disarm();
    return false;
  }
  // Frames pushed after the HasWork() above stay in the ring: the CAN thread writes directly
  // only while the ring is empty, and their push notified the gate armed above.
  if (options_.direct_write && !peer_gone_ && input_ != Input::kEnded) {
    (void)output_.Lend(protocol_->stateless_encoder(), protocol_->max_frame_bytes());
  }
  return true;
}

void Session::Flush(size_t budget) {
  if (peer_gone_) {  // nobody to read it
    output_.Discard();
    return;
  }
  if (const int error = output_.Flush(budget); error != 0) {
    if (input_ == Input::kEnded) {  // the client left; what it sent still goes to the bus
      peer_gone_ = true;
      loop_->Remove(fd_.get());
      output_.Discard();
      return;
    }
    ConnectionLost(absl::StrFormat("send: %s", std::strerror(error)));
    return;
  }
  UpdateInterest();
}

void Session::UpdateInterest() {
  if (peer_gone_) return;
  uint32_t events = (input_ == Input::kReading ? uint32_t{EPOLLIN} : 0u) |
                    (output_.want_write() ? uint32_t{EPOLLOUT} : 0u);
  if (transport_ == Transport::kHandshaking && handshake_wants_write_) events = EPOLLOUT;
  if (events == interest_) return;
  interest_ = events;
  (void)loop_->Modify(fd_.get(), events);
}

void Session::Tick(absl::Time now) {
  if (closed_) return;
  if (!protocol_->is_open()) {
    if (now - connected_at_ > options_.handshake_timeout) {
      Close("handshake timeout", absl::StrFormat("handshake timeout: no bus opened within %s",
                                                 absl::FormatDuration(options_.handshake_timeout)));
    }
    return;
  }
  if (periodic_) {
    subscriber_->counters.periodic_skipped.Max(periodic_->skipped());
    // Another client's lease pauses this session's jobs, seen here within a tick (100 ms).
    const bool blocked = channel_->lease().BlockedFor(id_, now).has_value();
    if (blocked && !periodic_->paused() && periodic_->size() > 0) {
      periodic_->Pause();
      CS_LOG_LIMITED(kInfo, "session %d (%s): %d periodic jobs paused for another client's lease",
                     id_, peer_, periodic_->size());
    } else if (!blocked && periodic_->paused()) {
      periodic_->Resume(now);
      CS_LOG_LIMITED(kInfo, "session %d (%s): periodic jobs resumed, the lease ended", id_, peer_);
    }
  }
  if (detached()) {
    if (now - detached_at_ >= options_.resume_grace &&
        options_.resumable->Expire(resume_token_, now)) {
      Close(absl::StrFormat("not resumed within --resume-grace %s",
                            absl::FormatDuration(options_.resume_grace)),
            "");
    }
    return;  // its periodic jobs go on; its ring fills and overflows, counted
  }
  std::string timed;
  protocol_->OnTick(now, &timed);
  if (!timed.empty()) {
    AppendReply(timed);
    if (closed_) return;
  }
  const std::string why = slow_.Check(now, subscriber_->counters.drops_ring_full.Get());
  if (!why.empty()) {
    not_reading_ = true;
    Close("client too slow", why);
  }
}

void Session::AppendException(absl::string_view text) {
  std::string bytes;
  protocol_->AppendError(text, &bytes);
  AppendReply(bytes);
}

bool Session::FlushAll() {
  if (closed_ || detached()) return true;
  Flush(SIZE_MAX);
  return closed_ || output_.pending() == 0;
}

void Session::Close(absl::string_view reason, absl::string_view remote_exception) {
  if (closed_) return;
  if (!remote_exception.empty()) AppendException(remote_exception);
  // A RemoteException above all gets one last try; a client that does not read is reset.
  const bool reset = output_.FinishForClose(not_reading_);
  closed_ = true;
  CloseIsoTp();
  if (subscriber_) {
    channel_->Unsubscribe(id_);
    if (channel_->lease().Release(id_)) {
      CS_LOG_LIMITED(kInfo, "session %d (%s): its lease on %s ended with it", id_, peer_,
                     channel_->channel_info());
    }
  }
  periodic_.reset();
  if (!resume_token_.empty()) options_.resumable->Remove(resume_token_);
  if (detached()) subscriber_->detached_until_ns.store(0, std::memory_order_relaxed);
  pending_handoff_.reset();  // a connection waiting to resume this session closes with it
  if (fd_.valid()) {         // none while detached, or once handed to the session it resumes
    loop_->Remove(fd_.get());
    if (reset) {
      ResetOnClose(fd_.get());
    } else {
      if (tls_ != nullptr && !peer_gone_) tls_->Shutdown();  // close_notify
      ::shutdown(fd_.get(), SHUT_RDWR);
    }
  }
  fd_.Reset();
  ticket_.reset();  // its slots in the server's limits are free again
  // The audit trail: who it was (certificate names, role and rule) stands in the close line too.
  CS_LOG_LIMITED(kInfo, "%s closed: %s; %s", Who(/*with_role=*/subscriber_ != nullptr), reason,
                 counters().Summary());
}

absl::StatusOr<std::string> Session::OpenBus(absl::string_view channel, int32_t bitrate,
                                             FilterSet filters) {
  CanChannel* const chosen = channel_;
  if (channel_ == nullptr) {
    absl::StatusOr<CanChannel*> found = FindChannel(channels_, channel);
    if (!found.ok()) return found.status();
    channel_ = *found;
  }
  if (ticket_ != nullptr) {
    const size_t index = static_cast<size_t>(
        std::find(channels_.begin(), channels_.end(), channel_) - channels_.begin());
    if (absl::Status room = ticket_->Open(index); !room.ok()) {
      channel_ = chosen;  // nothing opened
      return room;
    }
  }
  access_ = options_.access.For(fd_.get(), channel_->backend().name(),
                                tls_ != nullptr ? tls_->peer_names() : std::vector<std::string>{});
  absl::StatusOr<BusOpening> opening =
      SettleBitrate(*channel_, options_, bitrate, absl::StrFormat("session %d (%s)", id_, peer_),
                    access_.role == Role::kConfigure ? "" : access_.Describe());
  if (!opening.ok()) return opening.status();
  absl::StatusOr<std::unique_ptr<PeriodicJobs>> jobs =
      channel_->backend().CreatePeriodicJobs(loop_);
  if (!jobs.ok()) {
    return absl::UnavailableError(
        absl::StrFormat("could not open the bus: %s", jobs.status().message()));
  }
  periodic_ = std::make_unique<BudgetedPeriodicJobs>(*std::move(jobs), channel_, options_);
  subscriber_ = std::make_shared<Subscriber>(id_, options_.ring_frames, io_wakeup_,
                                             options_.client_tx_frames);
  subscriber_->info = {peer_, protocol_->name(), absl::ToUnixNanos(connected_at_),
                       access_.Describe(), tls_ != nullptr ? tls_->Describe() : "plain TCP"};
  subscriber_->set_filters_text(FormatFilters(filters));
  // Carry over what was counted during the handshake.
  subscriber_->counters.bytes_from_client.Add(local_counters_.bytes_from_client.Get());
  subscriber_->counters.bytes_to_client.Add(local_counters_.bytes_to_client.Get());
  subscriber_->counters.client_errors.Add(local_counters_.client_errors.Get());
  output_.Bind(&subscriber_->counters, &channel_->delivery_latency());
  subscriber_->sink = output_.sink();
  CS_LOG_LIMITED(kInfo, "session %d (%s) opened %s, %s%s, %d filters, %s", id_, peer_,
                 channel_->channel_info(), opening->rate, opening->log_state,
                 filters.filters().size(), access_.Describe());
  channel_->Subscribe(subscriber_, std::move(filters));
  return OpenReply(*channel_, *opening);
}

void Session::SetFilters(FilterSet filters) {
  subscriber_->set_filters_text(FormatFilters(filters));
  channel_->SetFilters(id_, std::move(filters));
}

absl::Status Session::Allowed(Role needed, absl::string_view what) {
  if (access_.role >= needed) return absl::OkStatus();
  subscriber_->counters.refused_role.Add();
  CS_LOG_LIMITED(kWarning, "session %d (%s): refused to %s: %s", id_, peer_, what,
                 access_.Describe());
  return absl::PermissionDeniedError(absl::StrFormat(
      "%s: this client may only %s (%s), so it may not %s; the rig's owner grants role %s with "
      "canserver --access",
      channel_->backend().name(), access_.role == Role::kMonitor ? "receive" : "transmit",
      access_.Describe(), what, RoleName(needed)));
}

void Session::TellRefusal(const absl::Status& refused) {
  // Every refused frame is counted; the client is told at most once a second. socketcand says
  // it only after "< errors on >" (ServerProtocol::AppendError).
  const absl::Time now = absl::Now();
  if (now - last_refusal_ >= absl::Seconds(1)) {
    last_refusal_ = now;
    AppendException(refused.message());
  }
}

absl::Status Session::NotLeasedAway(absl::string_view what) {
  ChannelLease& lease = channel_->lease();
  if (!lease.active()) return absl::OkStatus();
  const std::optional<std::string> why = lease.BlockedFor(id_, absl::Now());
  if (!why.has_value()) return absl::OkStatus();
  subscriber_->counters.refused_lease.Add();
  CS_LOG_LIMITED(kWarning, "session %d (%s): refused to %s: %s", id_, peer_, what, *why);
  return absl::PermissionDeniedError(absl::StrFormat(
      "%s: %s, so this client may not %s until the lease ends (its holder releases it, lets it "
      "lapse or disconnects); its periodic jobs pause meanwhile",
      channel_->backend().name(), *why, what));
}

std::string Session::Who(bool with_role) const {
  std::string who = absl::StrFormat("session %d (%s", id_, peer_);
  if (tls_ != nullptr && !tls_->peer_names().empty()) {
    absl::StrAppend(&who, ", certificate ", tls_->peer_names().front());
  }
  if (with_role) absl::StrAppend(&who, ", ", access_.Describe());
  return who + ")";
}

LeaseReply Session::Lease(int32_t seconds, absl::string_view token) {
  if (absl::Status role = Allowed(Role::kTransmit, "take a lease"); !role.ok()) {
    return {false, absl::ZeroDuration(), "", std::string(role.message())};
  }
  ChannelLease& lease = channel_->lease();
  const absl::Time now = absl::Now();
  if (!token.empty()) {
    ChannelLease::Outcome joined = lease.Join(id_, token, now);
    if (joined.granted) {
      CS_LOG_LIMITED(kInfo, "session %d (%s) joined the lease of %s on %s", id_, peer_, joined.text,
                     channel_->channel_info());
    }
    return {joined.granted, joined.remaining, joined.token, joined.text};
  }
  if (seconds == 0) {
    if (lease.Release(id_)) {
      CS_LOG_LIMITED(kInfo, "session %d (%s) released its lease on %s", id_, peer_,
                     channel_->channel_info());
    }
    return {true, absl::ZeroDuration(), "", "released"};
  }
  const std::optional<ChannelLease::Holder> held = lease.Current(now);
  const bool renewal = held.has_value() && held->session == id_;
  ChannelLease::Outcome got =
      lease.Take(id_, Who(/*with_role=*/false), absl::Seconds(seconds), now);
  if (got.granted && !renewal) {
    CS_LOG_LIMITED(kInfo, "session %d (%s) leased %s for %s: other clients may not transmit", id_,
                   peer_, channel_->channel_info(), absl::FormatDuration(got.remaining));
  } else if (!got.granted) {
    subscriber_->counters.refused_lease.Add();
  }
  return {got.granted, got.remaining, got.token, got.text};
}

void Session::Transmit(const CanFrame& frame) {
  subscriber_->counters.frames_from_client.Add();
  if (access_.role == Role::kMonitor) {
    TellRefusal(Allowed(Role::kTransmit, "send frames"));
    return;
  }
  if (absl::Status leased = NotLeasedAway("send frames"); !leased.ok()) {
    TellRefusal(leased);
    return;
  }
  // The protocol calls this only while TransmitBlocked() is false: the queue has room.
  if (decoded_at_ns_ == 0) decoded_at_ns_ = RealtimeNanos();
  tx_wake_owed_ |= decoding_;
  if (!channel_->Transmit(*subscriber_, frame, decoded_at_ns_, /*wake=*/!decoding_)) {
    subscriber_->counters.tx_failed.Add();  // unreachable by design; never silent all the same
    std::string fail;
    protocol_->AppendTransmitFail(1, &fail);
    AppendReply(fail);
  }
}

absl::Status Session::StartPeriodic(const PeriodicRequest& request) {
  RETURN_IF_ERROR(Allowed(Role::kTransmit, "start periodic jobs"));
  RETURN_IF_ERROR(NotLeasedAway("start periodic jobs"));
  return periodic_->Start(request);
}

BusTraffic Session::Traffic() const {
  const ChannelCounters& k = channel_->counters();
  return {k.bus_rx_bytes.Get(), k.bus_rx.Get(), k.bus_tx_bytes.Get(), k.bus_tx.Get()};
}

absl::Status Session::OpenIsoTp(const IsoTpConfig& config) {
  RETURN_IF_ERROR(Allowed(Role::kTransmit, "open ISO-TP"));
  RETURN_IF_ERROR(NotLeasedAway("open ISO-TP"));
  CloseIsoTp();
  absl::StatusOr<std::unique_ptr<IsoTpLink>> link = IsoTpLink::Open(
      channel_->backend(), config, loop_, [this](uint32_t events) { OnIsoTpEvent(events); });
  if (!link.ok()) return link.status();
  isotp_ = *std::move(link);
  CS_LOG_LIMITED(kInfo, "session %d (%s) opened ISO-TP %X→%X on %s", id_, peer_, config.tx_id,
                 config.rx_id, channel_->channel_info());
  return absl::OkStatus();
}

void Session::CloseIsoTp() { isotp_.reset(); }

absl::Status Session::SendPdu(absl::string_view pdu) {
  if (isotp_ == nullptr) return absl::FailedPreconditionError("sendpdu: no ISO-TP channel open");
  RETURN_IF_ERROR(NotLeasedAway("send ISO-TP PDUs"));
  if (absl::Status queued = isotp_->Send(pdu); !queued.ok()) return queued;
  if (const std::string error = isotp_->Flush(); !error.empty()) AppendException(error);
  return absl::OkStatus();
}

void Session::OnIsoTpEvent(uint32_t events) {
  // What the link reports is taken from it first: a reply may close the session, and the link
  // with it.
  if (closed_ || isotp_ == nullptr) return;
  const std::string send_error = (events & EPOLLOUT) ? isotp_->Flush() : std::string();
  IsoTpLink::Received got;
  if (events & (EPOLLIN | EPOLLERR)) got = isotp_->Receive();
  if (!send_error.empty()) AppendException(send_error);
  for (const std::string& pdu : got.pdus) {
    if (closed_) return;
    std::string element;
    protocol_->AppendPdu(RealtimeNanos(), pdu, &element);
    AppendReply(element);
  }
  if (!got.error.empty() && !closed_) AppendException(got.error);
  if (!closed_) Flush(options_.write_budget_bytes);
}

void Session::OnClientError(absl::string_view text) {
  counters().client_errors.Add();
  CS_LOG_LIMITED(kWarning, "session %d (%s): %s", id_, peer_, text);
}

absl::Status Session::StopPeriodic(uint32_t arbitration_id) {
  return periodic_->Stop(arbitration_id);
}

}  // namespace canserver
