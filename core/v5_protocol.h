// The server side of one protocol v5 session, as pure logic: client bytes in, actions and reply
// bytes out. No file descriptors, so it is unit-tested and fuzzed on its own; net::Session drives
// it from the session's io thread.
//
//   V5Protocol proto(&actions);
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
#include "core/server_protocol.h"
#include "core/v5_codec.h"

namespace canserver {

class V5Protocol final : public ServerProtocol {
 public:
  enum class State { kAwaitBusRequest, kAwaitFilterConfig, kOpen, kClosed };

  explicit V5Protocol(SessionActions* actions) : actions_(actions) {}

  // ServerProtocol (see there). A failing OnBytes ends *reply with a RemoteException, except
  // for kCancelled (the client sent ConnectionClosed).
  absl::Status OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) override;
  size_t buffered() const override { return decoder_.buffered(); }
  bool held_back() const override { return held_back_; }
  absl::Status OnEof() const override;
  bool is_open() const override { return state_ == State::kOpen; }
  std::string name() const override { return fd_enabled() ? "v6" : "v5"; }
  size_t max_frame_bytes() const override {
    return fd_enabled() ? v5::kMaxCanFdMessageSize : v5::kCanMessageSize;
  }
  Encoded EncodeFrame(const CanFrame& frame, uint8_t* out, size_t* length) override;
  StatelessEncodeFn stateless_encoder() const override;
  void AppendTransmitFail(uint32_t count, std::string* out) const override;
  void AppendError(absl::string_view text, std::string* out) const override;
  void AppendResumed(const ResumeReport& report, std::string* out) const override;
  std::string TakeUndecoded() override { return decoder_.Take(); }

  State state() const { return state_; }
  // The version the client asked for in its BusRequest (5 or 6); 0 before.
  uint8_t version() const { return version_; }
  // Version 6: CAN FD frames travel as CanFdMessage both ways.
  bool fd_enabled() const { return version_ == v5::kProtocolVersionFd; }

 private:
  absl::Status Handle(v5::Event& event, std::string* reply);
  absl::Status Fail(absl::Status status, std::string* reply);
  // A request the client's role does not allow (PermissionDenied): the RemoteException goes
  // into *reply and the session goes on. Any other status is returned as it is.
  absl::Status Refusable(absl::Status status, std::string* reply) const;
  absl::Status NeedsVersion6(const v5::Event& event) const;
  absl::Status StartPeriodic(int32_t period_ms, int32_t duration_ms, const CanFrame& frame);
  // ResumeRequest: as a connection's first event (a token), or in an open session (none).
  absl::Status HandleResume(const v5::ResumeRequest& request, std::string* reply);

  SessionActions* actions_;
  v5::StreamDecoder decoder_;
  State state_ = State::kAwaitBusRequest;
  int32_t bitrate_ = 0;
  uint8_t version_ = 0;
  bool held_back_ = false;
};

// Python-can's remote interface (protocol v5/v6), one port per channel.
extern const FrontEnd kV5FrontEnd;

}  // namespace canserver
