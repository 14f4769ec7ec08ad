// Session: one TCP client of the server, owned by one io thread.
//
// It reads the client's bytes into its front end's protocol logic (V5Protocol or
// SocketcandProtocol, core/server_protocol.h), which calls back into the SessionActions this
// class implements: subscribing to the channel, queueing frames for the bus, periodic jobs. The
// bus side is this one class for both front ends. Outgoing events collect in a bounded output
// buffer; frames from the ring are encoded into it only while it has room, so a client that stops
// reading makes its ring fill and overflow (counted), never the server's memory grow.
//
// Owning io thread only, for every method.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/server_protocol.h"
#include "core/slow_client_policy.h"
#include "io/can_backend.h"
#include "io/can_channel.h"
#include "io/clock.h"
#include "io/event_loop.h"
#include "io/subscriber.h"
#include "io/unique_fd.h"
#include "net/admission.h"
#include "net/budgeted_periodic_jobs.h"
#include "net/client_output.h"
#include "net/isotp_link.h"
#include "net/resumable_sessions.h"
#include "net/server_options.h"
#include "net/tls.h"

namespace canserver {

class Session final : public SessionActions {
 public:
  // `channel`: the channel a v5 client's port serves; nullptr for socketcand, whose client opens
  // one of `channels` by name.
  // `ticket`: the connection's slots in the server's limits (net/admission.h), held until the
  // session is closed; nullptr: not counted (tests).
  Session(uint64_t id, UniqueFd fd, std::string peer, const ServerOptions& options,
          const FrontEnd& front_end, CanChannel* channel, absl::Span<CanChannel* const> channels,
          EventLoop* loop, std::shared_ptr<const Wakeup> io_wakeup,
          std::unique_ptr<Admission::Ticket> ticket = nullptr);
  ~Session() override;

  // Sends the front end's greeting (socketcand's "< hi >"); call once the socket is in the loop.
  void Start();

  uint64_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  const std::string& peer() const { return peer_; }
  bool closed() const { return closed_; }
  bool is_open() const { return protocol_->is_open(); }
  absl::Time connected_at() const { return connected_at_; }
  const Subscriber* subscriber() const { return subscriber_.get(); }

  // What the loop saw on the socket: dispatches to the handlers below.
  void OnEvents(uint32_t events);
  // The socket is readable: read, decode, act.
  void OnReadable();
  // Decoding stopped because the client's tx queue was full: goes on once the CAN thread has
  // drained it to half (it then wakes this io thread through subscriber->tx_gate), and reads the
  // socket again if that was paused. Returns true while still waiting.
  bool ResumeTransmit();
  // EPOLLERR/EPOLLHUP on the socket.
  void OnHangup();
  // The socket is writable again after a short write.
  void OnWritable();
  // Moves frames and TransmitFails owed to the client into the output buffer and writes.
  // Returns true if work remains (budget spent while frames wait), so the loop must come back.
  bool Pump(PassClock& clock);
  // Before the io thread sleeps: arms the wakeup gate unless work is waiting, and lends the
  // socket to the CAN thread when nothing is pending for the client (direct writes,
  // io/subscriber.h). Returns false if work is waiting (the thread must not sleep).
  bool PrepareSleep();
  // Housekeeping tick: handshake timeout and slow-client policy.
  void Tick(absl::Time now);
  // Queues a RemoteException for the client (shutdown notices).
  void AppendException(absl::string_view text);
  // Writes everything pending that the socket takes now; true when nothing is left (or closed).
  bool FlushAll();
  // Sends RemoteException(reason) (if non-empty), flushes what it can and closes.
  void Close(absl::string_view reason, absl::string_view remote_exception);

  // Resuming (net/resumable_sessions.h). How the server hands a new connection to this session
  // from any io thread (IoThread::Reattach); set once, before Start.
  void set_handoff_target(ResumableSessions::Deliver deliver) { deliver_ = std::move(deliver); }
  // A connection that presented this session's token: replaces the broken (or not yet known to
  // be broken) one. Owning io thread.
  void Reattach(Handoff handoff);
  // The session has no connection and waits for its client (--resume-grace).
  bool detached() const { return detached_at_ != absl::InfinitePast(); }

  // SessionActions: called by protocol_ from OnReadable.
  absl::StatusOr<std::string> OpenBus(absl::string_view channel, int32_t bitrate,
                                      FilterSet filters) override;
  void SetFilters(FilterSet filters) override;
  void Transmit(const CanFrame& frame) override;
  bool TransmitBlocked() const override;
  absl::Status StartPeriodic(const PeriodicRequest& request) override;
  absl::Status StopPeriodic(uint32_t arbitration_id) override;
  BusTraffic Traffic() const override;
  absl::Status OpenIsoTp(const IsoTpConfig& config) override;
  absl::Status SendPdu(absl::string_view pdu) override;
  void CloseIsoTp() override;
  void OnClientError(absl::string_view text) override;
  LeaseReply Lease(int32_t seconds, absl::string_view token) override;
  ResumeReply KeepForResume() override;
  ResumeReply ResumeSession(absl::string_view token, uint64_t frames_received) override;

  // How long frames wait after a reply the client must read alone (ServerProtocol::TakeSettle):
  // python-can's socketcand client reads "< ok >" with one recv() right after sending
  // "< rawmode >"; a frame that arrived with it failed the open 1 to 3 times in 100 on a busy
  // bus. Frames are held, not dropped, and released at the next io-thread pass after this (the
  // housekeeping tick at the latest: 100 ms).
  static constexpr absl::Duration kSettle = absl::Milliseconds(20);

 private:
  void AppendReply(absl::string_view bytes);
  // OK if the client's role is at least `needed`; else counted, and an error naming the role,
  // the rule and the fix, for "may not `what`".
  absl::Status Allowed(Role needed, absl::string_view what);
  // OK unless another client holds the channel's lease (core/channel_lease.h); else counted,
  // and an error naming the holder and the time left, for "may not `what`".
  absl::Status NotLeasedAway(absl::string_view what);
  // Tells the client why its frames were refused, at most once a second (a client that floods
  // must not make the server flood back).
  void TellRefusal(const absl::Status& refused);
  // "session 7 (10.0.0.5:41234, certificate flasher-1)": a lease holder as others see it; with
  // the role and its rule for the audit trail of the close line.
  std::string Who(bool with_role) const;
  // The ISO-TP socket is readable (PDUs for the client) or writable (the next PDU may go).
  void OnIsoTpEvent(uint32_t events);
  // Writes as much of the output as the socket takes, up to `budget` bytes.
  void Flush(size_t budget);
  void UpdateInterest();
  // Waiting for tx queue room with bytes still undecoded (and the socket read empty, or the
  // undecoded bytes at their cap): do not read the socket.
  bool ReadBlocked() const;
  // The client closed its side and everything it sent was decoded: ends the session.
  void EndAtEof();
  // The connection broke without a ConnectionClosed: a session the client asked to keep waits
  // for it (Detach); any other ends.
  void ConnectionLost(absl::string_view reason);
  // Lets go of the connection and keeps the session (its filters, periodic jobs and ring) for
  // --resume-grace; a hand-over waiting for this moment is attached at once.
  void Detach(absl::string_view reason);
  // Gives the session the new connection: tells the client what it missed, sends again the
  // frames kept that it lost, then the ring as usual.
  void Attach(Handoff handoff);
  // Who the client is, for resuming: its address and certificate.
  ResumeIdentity Identity() const;
  // Hands client bytes (or, with none, those kept back) to the protocol; false if it closed.
  bool Decode(absl::Span<const uint8_t> bytes);
  // Reads like recv(), through TLS once it is on.
  ssize_t Receive(void* buf, size_t len);
  // A port that may carry TLS, before the protocol has any bytes: tells TLS from plain text by
  // the first byte, then drives the handshake. Returns true once bytes may go to the protocol.
  bool AdvanceTls();

  const uint64_t id_;
  UniqueFd fd_;
  const std::string peer_;
  const ServerOptions& options_;
  CanChannel* channel_;  // set at accept (v5) or by OpenBus (socketcand)
  const absl::Span<CanChannel* const> channels_;
  EventLoop* const loop_;
  std::shared_ptr<const Wakeup> io_wakeup_;
  std::unique_ptr<ServerProtocol> protocol_;
  std::unique_ptr<Admission::Ticket> ticket_;
  std::shared_ptr<Subscriber> subscriber_;
  std::unique_ptr<BudgetedPeriodicJobs> periodic_;
  SessionCounters local_counters_;  // before the bus is open, and for sessions never opened
  ClientOutput output_;

  std::unique_ptr<IsoTpLink> isotp_;  // socketcand's ISO-TP mode, while open

  // TLS (net/tls.h) on a v5/v6 port with --tls: kDetecting until the first byte, kHandshaking,
  // then kOn (tls_ reads and, without kernel TLS, writes) or kPlain.
  enum class Transport : uint8_t { kPlain, kDetecting, kHandshaking, kOn };
  Transport transport_ = Transport::kPlain;
  std::unique_ptr<TlsStream> tls_;
  bool handshake_wants_write_ = false;

  // Backpressure: while the client's tx queue is full, the socket is not read, so TCP's flow
  // control slows the client to the bus rate instead of anything being refused. What was read
  // waits undecoded in the protocol's buffer; the socket is read again once all of it is
  // decoded, and then read empty: a read that leaves bytes behind frees the window a little at a
  // time, which TCP announces late (delayed ACK, silly-window avoidance) and the client stalls.
  // So a sender runs ahead of the bus by at most its own send buffer, the socket's receive
  // buffer (--client-rcvbuf), about as much again undecoded (kMaxUndecoded at most), and the tx
  // queue.
  bool tx_waiting_ = false;  // the decoder stopped at a full tx queue
  bool draining_ = false;    // the last read filled the buffer: the socket may hold more
  // Reading the client: kPaused while the tx queue is full with undecoded bytes left; kEnded
  // once the client closed while its frames waited (the session ends after them).
  enum class Input : uint8_t { kReading, kPaused, kEnded };
  Input input_ = Input::kReading;
  bool peer_gone_ = false;       // its socket is reset or unwritable: output is discarded
  uint32_t interest_ = EPOLLIN;  // what the loop watches for on fd_
  // "Queued at" for the frames of one Decode, read at its first frame (0: not yet): bytes read
  // together arrived together, and without a vDSO clock every reading is a syscall.
  int64_t decoded_at_ns_ = 0;
  // While the protocol decodes what one read brought, frames are queued without waking the CAN
  // thread; it is woken once afterwards if any were (the whole read in one batch, #31).
  bool decoding_ = false;
  bool tx_wake_owed_ = false;
  bool closed_ = false;
  absl::Time frames_after_ = absl::InfinitePast();  // kSettle: no frames written before this
  absl::Time connected_at_;
  SlowClientPolicy slow_{options_.slow_client_timeout};
  Access access_;  // its role on channel_ (--access), from OpenBus on
  absl::Time last_refusal_ = absl::InfinitePast();  // refused frames: told once a second
  bool not_reading_ = false;  // closed by --slow-client-timeout: reset, whatever is queued

  // Resuming: the token ("" unless the client asked), since when the session has no connection
  // (InfinitePast: connected), the ring's drops the client has been told of, and a new connection
  // that waits for the old one to be let go (its client's frames still to be decoded).
  ResumableSessions::Deliver deliver_;
  std::string resume_token_;
  absl::Time detached_at_ = absl::InfinitePast();
  uint64_t drops_reported_ = 0;
  std::optional<Handoff> pending_handoff_;

  SessionCounters& counters() { return subscriber_ ? subscriber_->counters : local_counters_; }
};

}  // namespace canserver
