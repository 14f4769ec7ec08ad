// The server side of one protocol v5 session, as pure logic: client bytes in, actions and reply
// bytes out. No file descriptors, so it is unit-tested and fuzzed on its own; net::Session drives
// it from the session's io thread.
//
//   V5ServerSession proto(&actions);
//   std::string reply;
//   absl::Status s = proto.OnBytes(bytes, &reply);   // may call actions.OpenBus/Transmit/...
//   send(reply); if (!s.ok()) close();               // reply then ends with a RemoteException
//
// Handshake: BusRequest(version 5 or 6, bitrate) then FilterConfig, answered by BusResponse, or by
// a RemoteException that says what was wrong. Afterwards CanMessage, FilterConfig and
// PeriodicMessageStart/Stop from the client are passed to the actions; in a version 6 session also
// CanFdMessage and PeriodicFdMessageStart (a version 5 client that sends them gets a protocol
// error, as for any event it does not have).
//
// Single-owner: one thread (the session's io thread) at a time.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/filter.h"
#include "core/v5_codec.h"

namespace canserver {

// What a session asks of the server. Errors returned here end the session with a RemoteException
// carrying the status message.
class SessionActions {
 public:
  virtual ~SessionActions() = default;
  // Opens the client's view of the bus; returns the channel_info for the BusResponse.
  virtual absl::StatusOr<std::string> OpenBus(int32_t bitrate, FilterSet filters) = 0;
  virtual void SetFilters(FilterSet filters) = 0;
  // Queues a frame (classic, or CAN FD in a version 6 session) for the bus. TransmitFail is
  // reported later, asynchronously. Called only while TransmitBlocked() is false.
  virtual void Transmit(const CanFrame& frame) = 0;
  // True while the client's transmit queue is full: the session then decodes nothing more and
  // keeps the client's bytes until Resume(), so the client's events stay in order and its TCP
  // connection, no longer read, slows it down.
  virtual bool TransmitBlocked() const { return false; }
  // PeriodicFdMessageStart arrives here too, as a PeriodicMessageStart whose frame is FD.
  virtual absl::Status StartPeriodic(const v5::PeriodicMessageStart& start) = 0;
  virtual absl::Status StopPeriodic(uint32_t arbitration_id) = 0;
};

class V5ServerSession {
 public:
  enum class State { kAwaitBusRequest, kAwaitFilterConfig, kOpen, kClosed };

  explicit V5ServerSession(SessionActions* actions) : actions_(actions) {}

  // Consumes bytes from the client and appends what must be sent back to *reply. Returns OK while
  // the session goes on. Any other status means the session must end: *reply then ends with a
  // RemoteException naming the problem, except for kCancelled (the client sent ConnectionClosed).
  // Decoding stops (OK, bytes kept) while actions->TransmitBlocked().
  absl::Status OnBytes(absl::Span<const uint8_t> bytes, std::string* reply);
  // Decodes what OnBytes kept back while transmit was blocked; same contract as OnBytes.
  absl::Status Resume(std::string* reply) { return OnBytes({}, reply); }
  // Bytes received and not yet decoded.
  size_t buffered() const { return decoder_.buffered(); }
  // The last OnBytes/Resume stopped at a full transmit queue with bytes left to decode. Sticky
  // until the next call, unlike TransmitBlocked(), which the CAN thread may clear a moment later:
  // the caller must call Resume() again whatever the queue looks like by then.
  bool held_back() const { return held_back_; }

  // The client closed its side. Returns an error if it cut an event short.
  absl::Status OnEof() const;

  State state() const { return state_; }
  bool is_open() const { return state_ == State::kOpen; }
  // The version the client asked for in its BusRequest (5 or 6); 0 before.
  uint8_t version() const { return version_; }
  // Version 6: CAN FD frames travel as CanFdMessage both ways.
  bool fd_enabled() const { return version_ == v5::kProtocolVersionFd; }

 private:
  absl::Status Handle(v5::Event& event, std::string* reply);
  absl::Status Fail(absl::Status status, std::string* reply);
  absl::Status NeedsVersion6(const v5::Event& event) const;

  SessionActions* actions_;
  v5::StreamDecoder decoder_;
  State state_ = State::kAwaitBusRequest;
  int32_t bitrate_ = 0;
  uint8_t version_ = 0;
  bool held_back_ = false;
};

}  // namespace canserver
