// RemoteBus: the C++ client of protocol v5/v6 — a CAN bus on a canserver (or any v5 server).
//
// It asks for version 6 (CAN FD) and, when the server refuses that version (the original Python
// server closes the connection without a word), connects again with version 5: one client works
// against both. On a version 5 session CAN FD frames cannot be sent (InvalidArgument) and never
// arrive.
//
//   RemoteBusOptions opts;
//   opts.channel = "rig1:54701";
//   opts.filters = {{.can_id = 0x100, .can_mask = 0x7FF}};
//   auto bus = RemoteBus::Connect(opts);            // handshake; error carries the server's text
//   (*bus)->Send(CanFrame::Classic(0x123, {1, 2}));
//   auto frame = (*bus)->Recv(absl::Seconds(1));    // frame, nullopt on timeout, or error
//
// Errors: the server's RemoteException text (as an Unavailable status), "connection closed
// unexpectedly", or "handshake error: …". TransmitFail events are counted (transmit_failures()).
//
// Reconnecting (RemoteBusOptions::reconnect): the session asks the server to keep it after a
// break (canserver --resume-grace); when the connection breaks, the call that meets the break
// connects again and takes the session back with its token — the frames that arrived meanwhile
// come first, then the server's report of what was lost — or, if the server no longer has it
// (restarted, grace over), opens a new session with the same filters, periodic tasks and lease
// token. Send and Recv wait meanwhile; after `reconnect` without a connection they fail. What
// happened is in reconnect_status().
//
// Thread-safety: one thread may Send while another Recvs; calls of the same kind must not overlap.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/filter.h"
#include "core/frame.h"
#include "core/v5_codec.h"
#include "io/unique_fd.h"
#include "net/socket_util.h"
#include "net/tls.h"

namespace canserver {

struct RemoteBusOptions {
  std::string channel = "localhost";  // host[:port], port 54701 by default
  int32_t bitrate = 0;                // the rate this client expects; 0: whatever the bus runs at
  std::vector<CanFilter> filters;
  absl::Duration connect_timeout = absl::Seconds(5);
  // The version to ask for: 6 (CAN FD, falling back to 5 when the server refuses it) or 5.
  uint8_t protocol_version = v5::kProtocolVersionFd;
  // TLS (canserver --tls): the server's certificate is verified against tls.ca and the host
  // name or address of `channel`; tls.cert/key for a server that asks for a client certificate.
  // Never falls back to plain text.
  TlsClientFiles tls;
  // Joins the channel's lease with this token after the handshake (`canremote lease` gives its
  // command CANSERVER_LEASE): this client may then transmit while the lease runs. A token that
  // no longer matches is no error (lease_note() says why).
  std::string lease_token;
  // > 0: keep the session across a broken connection or a server restart for up to this long
  // (see the header comment); zero: a broken connection ends the bus (calls fail).
  absl::Duration reconnect = absl::ZeroDuration();
  // With reconnect: called (on the calling thread) when a break is met, before reconnecting
  // (canremote says so on stderr at once, not only once it is back).
  std::function<void(const absl::Status& why)> on_break;
};

// What reconnecting did so far (RemoteBusOptions::reconnect).
struct ReconnectStatus {
  uint64_t breaks = 0;        // connections that broke and came back
  uint64_t resumed = 0;       // of them, the server still had the session
  uint64_t new_sessions = 0;  // of them, a new session was opened (what the bus carried is missed)
  uint64_t frames_lost = 0;   // frames the server reported lost across resumes
  absl::Duration gap;         // time without a connection, in all
  std::string last;           // the last break and what came of it, in words
};

// A lease granted (core/channel_lease.h): its token lets other clients join it.
struct LeaseGrant {
  absl::Duration remaining;
  std::string token;
  std::string holder;
};

class RemoteBus;

// A periodic transmission run by the server. Stop() and Modify() send to the server; the task
// must not outlive its bus.
class PeriodicTask {
 public:
  ~PeriodicTask();
  absl::Status Stop();
  // New data (same id) and, optionally, a new period; restarts the job if its duration had ended.
  absl::Status Modify(const CanFrame& frame);
  const CanFrame& frame() const { return frame_; }

 private:
  friend class RemoteBus;
  PeriodicTask(RemoteBus* bus, CanFrame frame, absl::Duration period, absl::Duration duration)
      : bus_(bus), frame_(frame), period_(period), duration_(duration) {}
  // PeriodicMessageStart, or PeriodicFdMessageStart for an FD frame (version 6 only).
  absl::Status SendStart();
  v5::Event StartEvent() const;
  RemoteBus* bus_;
  CanFrame frame_;
  absl::Duration period_;
  absl::Duration duration_;
};

class RemoteBus {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteBus>> Connect(const RemoteBusOptions& options);
  ~RemoteBus();

  absl::Status Send(const CanFrame& frame);
  // Sends many frames with one write (load generators, replaying logs).
  absl::Status SendMany(absl::Span<const CanFrame> frames);
  // Waits up to `timeout` (total, not per read) for a frame. nullopt on timeout.
  absl::StatusOr<std::optional<CanFrame>> Recv(absl::Duration timeout);
  // Starts a server-side periodic job: every `period`, for `duration` (zero: until stopped).
  absl::StatusOr<std::unique_ptr<PeriodicTask>> SendPeriodic(
      const CanFrame& frame, absl::Duration period, absl::Duration duration = absl::ZeroDuration());
  // Takes the channel's exclusive transmit lease for `length` (renews it when held), or with
  // length zero releases it. Refused (FailedPrecondition, naming the holder) while another client
  // holds it. Call it from the thread that Recvs (or while none does): frames that arrive while
  // it waits for the answer are kept for Recv.
  absl::StatusOr<LeaseGrant> Lease(absl::Duration length,
                                   absl::Duration timeout = absl::Seconds(5));
  // Joins the lease whose token is `token` (see RemoteBusOptions::lease_token).
  absl::StatusOr<LeaseGrant> JoinLease(const std::string& token,
                                       absl::Duration timeout = absl::Seconds(5));
  // Why joining RemoteBusOptions::lease_token at connect failed; empty if it did not.
  const std::string& lease_note() const { return lease_note_; }
  // Replaces the filters on the server.
  absl::Status SetFilters(const std::vector<CanFilter>& filters);
  // What reconnecting did so far. Thread-safe.
  ReconnectStatus reconnect_status() const;
  // Whether the server keeps this session across a break (it gave a token).
  bool resumable() const { return !resume_token_.empty(); }
  // Closes the connection: half-closes it and reads until the server closes (at most 5 s), so
  // frames the server still held for the bus are written before the session ends. Idempotent.
  void Shutdown();

  // "<server channel_info> on host:port".
  const std::string& channel_info() const { return channel_info_; }
  uint64_t transmit_failures() const { return transmit_failures_.load(); }
  // The version the session runs: 6 carries CAN FD, 5 does not.
  uint8_t protocol_version() const { return version_; }
  bool fd() const { return version_ == v5::kProtocolVersionFd; }
  int fileno() const { return fd_.get(); }

 private:
  friend class PeriodicTask;
  RemoteBus(const RemoteBusOptions& options, uint8_t version)
      : options_(options), version_(version) {}
  // One connection and handshake with `version`.
  static absl::StatusOr<std::unique_ptr<RemoteBus>> ConnectVersion(const RemoteBusOptions& options,
                                                                   uint8_t version);
  // Connects (TCP, and TLS if asked) and makes that the connection, with a fresh decoder.
  absl::Status Dial(const HostPort& address);
  // BusRequest and FilterConfig, then the BusResponse.
  absl::Status OpenSession(const HostPort& address);
  // After the handshake, with reconnect on: asks the server to keep the session (a token).
  void AskToKeep();
  // The connection of generation `seen` broke with `why`: with reconnect on, connects again
  // (resuming, or a new session restored) unless another call did already; else `why`.
  absl::Status Reconnect(uint64_t seen, const absl::Status& why);
  // One try at it, on a fresh connection: true if the session was resumed.
  absl::StatusOr<bool> ReconnectOnce(const HostPort& address, absl::Time lost);
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The error ends the connection, not just the call (a RemoteException that only refuses a
  // request does not).
  bool Broken(const absl::Status& status) const;
  // CanMessage, or CanFdMessage for an FD frame on a version 6 session.
  absl::Status EncodeFrame(const CanFrame& frame, std::string* out) const;
  absl::Status SendEvent(const v5::Event& event);
  absl::Status SendBytes(const std::string& bytes);
  // A deadline `timeout` from the first moment it is asked for.
  struct Deadline {
    absl::Duration timeout;
    std::optional<absl::Time> at;
    // Time left, never negative. The first call fixes the deadline from the same clock read, so
    // a zero timeout leaves exactly zero (reading the clock twice once left a few ns, which
    // rounded up to a 1 ms poll: Recv(0) blocked).
    absl::Duration Remaining() {
      const absl::Time now = absl::Now();
      if (!at) at = now + timeout;
      return std::max(*at - now, absl::ZeroDuration());
    }
  };
  // A periodic task ended or stopped: not restarted in a new session.
  void Forget(PeriodicTask* task);
  // Sends `request` and reads until an event of the kind `reply`, keeping frames for Recv.
  absl::StatusOr<v5::Event> Exchange(const v5::Event& request, v5::EventId reply,
                                     absl::Duration timeout);
  // Sends a LeaseRequest and reads until its LeaseResponse, keeping frames for Recv.
  absl::StatusOr<LeaseGrant> LeaseExchange(const v5::LeaseRequest& request, absl::Duration timeout);
  // What an event other than a LeaseResponse means for the caller: a frame, nothing (a
  // TransmitFail is counted), or the error that ends the call (RemoteException, ConnectionClosed).
  absl::StatusOr<std::optional<CanFrame>> Consume(const v5::Event& event);
  // Reads until an event is decoded or the deadline passes (nullopt).
  absl::StatusOr<std::optional<v5::Event>> ReadEvent(Deadline& deadline);

  // Writes what the socket takes (plain or TLS), waiting for room; the error names the cause.
  absl::Status WriteAll(const std::string& bytes);
  // One non-blocking read (plain or TLS), like recv().
  ssize_t ReadSome(uint8_t* buf, size_t len);

  RemoteBusOptions options_;  // filters and lease token as they are now (a new session's)
  UniqueFd fd_;
  const uint8_t version_;
  // Reconnecting: the connection (fd_, tls_, decoder_, closed_) is replaced only under conn_mu_
  // held exclusively, with reconnect_mu_ (one reconnect at a time); Send and Recv hold it shared
  // while they use the connection (only with reconnect on: the lock costs nothing otherwise).
  std::shared_mutex conn_mu_;
  std::mutex reconnect_mu_;
  std::atomic<uint64_t> generation_{0};
  bool gave_up_ = false;  // under reconnect_mu_: not reconnected within `reconnect`
  std::string resume_token_;
  uint64_t frames_received_ = 0;  // Recv's side; frames of this session's stream decoded
  mutable std::mutex status_mu_;
  ReconnectStatus status_;  // guarded by status_mu_
  std::mutex tasks_mu_;
  std::vector<PeriodicTask*> tasks_;  // guarded by tasks_mu_: restarted in a new session
  std::unique_ptr<TlsStream> tls_;    // null: plain text; its calls under tls_mu_
  std::mutex tls_mu_;                 // a Send and a Recv in two threads share one SSL object
  std::mutex send_mu_;
  v5::StreamDecoder decoder_;
  std::string channel_info_;
  std::deque<CanFrame> kept_;  // frames read while waiting for a LeaseResponse, for Recv
  std::string lease_note_;
  std::atomic<uint64_t> transmit_failures_{0};
  absl::Status closed_;  // sticky error once the connection is gone
};

}  // namespace canserver
