// ServerProtocol: one client's wire protocol on the server side, as pure logic — client bytes in,
// actions on the bus and reply bytes out, and the encoding of the bus's frames for that client.
// Two front ends implement it: protocol v5/v6 (V5Protocol) and socketcand's ASCII protocol
// (SocketcandProtocol). net::Session drives either one; everything on the bus side
// (subscribing, filters, transmit, periodic jobs, limits, counters) stays in net::Session and
// CanChannel, behind SessionActions, so both front ends share it.
//
// Single-owner: one thread (the session's io thread) at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/filter.h"
#include "core/frame.h"
#include "core/isotp_config.h"

namespace canserver {

// Encodes `frame` into `out` (room for the protocol's max_frame_bytes()) using nothing but the
// frame, and returns the bytes written; 0: the client cannot be given it (a counted drop). Safe
// on any thread: the channel's CAN thread calls it for direct writes (net/session.h).
using StatelessEncodeFn = size_t (*)(const CanFrame& frame, uint8_t* out) noexcept;

// A periodic transmit job as the front ends ask for it.
struct PeriodicRequest {
  absl::Duration period;
  absl::Duration duration;  // zero: until stopped
  CanFrame frame;
};

// The channel's traffic for socketcand's `< stat … >`: what the bus carried, in frames and data
// bytes.
struct BusTraffic {
  uint64_t rx_bytes = 0;
  uint64_t rx_frames = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_frames = 0;
};

// The answer to a lease request (core/channel_lease.h).
struct LeaseReply {
  bool granted = false;
  absl::Duration remaining;  // of the lease in force
  std::string token;         // granted: what other clients join it with
  std::string text;          // granted: the holder; refused: why
};

// Resuming a session (protocol v5/v6's ResumeRequest, docs/protocol.md "Resuming a session").
struct ResumeReply {
  enum class Kind { kRefused, kResumable, kHandedOver };
  Kind kind = Kind::kRefused;
  absl::Duration grace;  // kResumable: how long the session is kept after a break
  std::string token;     // kResumable: what the client resumes it with
  std::string text;      // kRefused: why, and the fix
};
// What a resumed session tells its client first on the new connection.
struct ResumeReport {
  absl::Duration grace;
  absl::Duration away;              // without a connection
  uint64_t frames_lost = 0;         // frames the client will never get (the ring overflowed, or in
                                    // transit beyond what the server kept to send again)
  uint64_t frames_from_client = 0;  // the client's frames the server has received, in all
  std::string token;
  std::string text;
};

// What a session asks of the server. Errors returned here are reported to the client (v5: a
// RemoteException that ends the session; socketcand: `< error … >`, the session goes on).
class SessionActions {
 public:
  virtual ~SessionActions() = default;
  // Opens the client's view of the bus `channel` ("" for a v5 client: the channel its port
  // serves); returns the channel_info for the reply.
  virtual absl::StatusOr<std::string> OpenBus(absl::string_view channel, int32_t bitrate,
                                              FilterSet filters) = 0;
  virtual void SetFilters(FilterSet filters) = 0;
  // Queues a frame (classic, or CAN FD) for the bus. A refusal is reported later,
  // asynchronously. Called only while TransmitBlocked() is false.
  virtual void Transmit(const CanFrame& frame) = 0;
  // True while the client's transmit queue is full: the protocol then decodes nothing more and
  // keeps the client's bytes until Resume(), so the client's events stay in order and its TCP
  // connection, no longer read, slows it down.
  virtual bool TransmitBlocked() const { return false; }
  // Starts or modifies the job for request.frame.id (same period and duration on a running job:
  // new data only, its timer untouched).
  virtual absl::Status StartPeriodic(const PeriodicRequest& request) = 0;
  virtual absl::Status StopPeriodic(uint32_t arbitration_id) = 0;
  // The open channel's traffic so far.
  virtual BusTraffic Traffic() const { return {}; }
  // ISO-TP (socketcand's ISOTP mode) on the open channel: one channel per session, replaced by a
  // new OpenIsoTp; PDUs received arrive through ServerProtocol::AppendPdu.
  virtual absl::Status OpenIsoTp(const IsoTpConfig& config) {
    (void)config;
    return absl::UnimplementedError("ISO-TP is not available here");
  }
  // Queues a PDU (at most kIsoTpMaxPdu bytes) on the open ISO-TP channel.
  virtual absl::Status SendPdu(absl::string_view pdu) {
    (void)pdu;
    return absl::FailedPreconditionError("no ISO-TP channel open");
  }
  virtual void CloseIsoTp() {}
  // The channel's exclusive transmit lease: `seconds` > 0 takes or renews it, 0 releases it (or
  // leaves a joined one); with `token`, joins the lease in force.
  virtual LeaseReply Lease(int32_t seconds, absl::string_view token) {
    (void)seconds;
    (void)token;
    return {false, absl::ZeroDuration(), "", "leases are not available here"};
  }
  // Keep this open session for a new connection if this one breaks (kResumable with a token), or
  // why not.
  virtual ResumeReply KeepForResume() { return {ResumeReply::Kind::kRefused, {}, "", "not here"}; }
  // The connection's first event asks for session `token` back, saying it received
  // `frames_received` of its frames: kHandedOver (the connection now belongs to that session,
  // which answers it; this one ends) or kRefused (the connection may open a new session).
  virtual ResumeReply ResumeSession(absl::string_view token, uint64_t frames_received) {
    (void)token;
    (void)frames_received;
    return {ResumeReply::Kind::kRefused, {}, "", "sessions cannot be resumed here"};
  }
  // A command of the client's that could not be carried out, for the server's log and counters
  // (socketcand, whose clients are not told unless they asked: see SocketcandProtocol).
  virtual void OnClientError(absl::string_view text) { (void)text; }
};

class ServerProtocol {
 public:
  virtual ~ServerProtocol() = default;

  // What to send as soon as the client has connected (socketcand's "< hi >"; v5: nothing).
  virtual void Greet(std::string* reply) { (void)reply; }
  // The front end opens the bus in Greet, without a word from the client (the capture front end):
  // the session then calls OnBytes with nothing at once, which reports a refused open.
  virtual bool opens_at_connect() const { return false; }
  // Consumes bytes from the client and appends what must be sent back to *reply. Returns OK while
  // the session goes on. Any other status means the session must end: *reply then ends with the
  // protocol's error message naming the problem, except for kCancelled (the client said goodbye).
  // Decoding stops (OK, bytes kept) while actions->TransmitBlocked().
  virtual absl::Status OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) = 0;
  // Decodes what OnBytes kept back while transmit was blocked; same contract as OnBytes.
  absl::Status Resume(std::string* reply) { return OnBytes({}, reply); }
  // Bytes received and not yet decoded.
  virtual size_t buffered() const = 0;
  // The last OnBytes/Resume stopped at a full transmit queue with bytes left to decode. Sticky
  // until the next call, unlike TransmitBlocked(), which the CAN thread may clear a moment later:
  // the caller must call Resume() again whatever the queue looks like by then.
  virtual bool held_back() const = 0;
  // The client closed its side. Returns an error if it cut a message short.
  virtual absl::Status OnEof() const = 0;
  // The bus is open (frames flow).
  virtual bool is_open() const = 0;
  // "v5", "v6" or "socketcand": the protocol label of /metrics and the status page.
  virtual std::string name() const = 0;

  // The most bytes EncodeFrame writes for one frame.
  virtual size_t max_frame_bytes() const = 0;
  enum class Encoded { kWritten, kUnsupported, kNotWanted };
  // Encodes a frame from the client's ring into `out` (room: max_frame_bytes()) and sets *length.
  // kUnsupported: the client cannot be given it (CAN FD on a version 5 session), a counted drop;
  // kNotWanted: the client's own receive rules (socketcand's BCM content filters) pass it over.
  virtual Encoded EncodeFrame(const CanFrame& frame, uint8_t* out, size_t* length) = 0;
  // The same encoding as a function of the frame alone, once the bus is open, where the protocol
  // has one (v5/v6: yes; socketcand's BCM rules depend on the session: nullptr). It lets the CAN
  // thread write frames to an idle client's socket itself.
  virtual StatelessEncodeFn stateless_encoder() const { return nullptr; }
  // Tells the client that `count` of its frames were refused by the bus.
  virtual void AppendTransmitFail(uint32_t count, std::string* out) const = 0;
  // A message that ends the session (shutdown, slow client, handshake timeout).
  virtual void AppendError(absl::string_view text, std::string* out) const = 0;
  // A PDU from the session's ISO-TP channel (socketcand: "< pdu SECONDS HEX >").
  virtual void AppendPdu(int64_t timestamp_ns, absl::string_view pdu, std::string* out) const {
    (void)timestamp_ns;
    (void)pdu;
    (void)out;
  }
  // A resumed session's first words on its new connection (v5/v6: ResumeResponse).
  virtual void AppendResumed(const ResumeReport& report, std::string* out) const {
    (void)report;
    (void)out;
  }
  // Takes the bytes received and not decoded: what followed a ResumeRequest (for the session it
  // resumes), or the start of an event a broken connection cut short (dropped).
  virtual std::string TakeUndecoded() { return ""; }
  // True once after a reply that must reach the client alone, before any frame: the session
  // then holds frames back for a moment (Session::kSettle).
  virtual bool TakeSettle() { return false; }
  // Called about every 100 ms on an open session: timed output (socketcand's statistics and
  // throttled BCM updates) goes to *reply.
  virtual void OnTick(absl::Time now, std::string* reply) {
    (void)now;
    (void)reply;
  }
};

// A front end as a listener holds it: how each connection's protocol logic is made, and how a
// connection refused before it has a session (server full, address not allowed) hears why.
struct FrontEnd {
  std::unique_ptr<ServerProtocol> (*open)(SessionActions* actions);
  // Appends `reason` as the protocol's error; appends nothing where the stream carries no text
  // (pcapng).
  void (*refusal)(absl::string_view reason, std::string* out);
  // Whether its port may carry TLS (v5/v6: detected by the first byte, net/tls.h); socketcand's
  // clients and Wireshark's dumpcap have none.
  bool tls = false;
};

}  // namespace canserver
