// The capture front end (--capture-port): a monitor that streams its channel as pcapng for
// Wireshark, as pure logic beside the v5 and socketcand front ends. It opens the bus as soon as
// the client connects (dumpcap -i TCP@rig1:PORT sends nothing), greets with a Section Header and
// one Interface Description, and encodes every frame of the bus, in bus order, frames sent by
// clients included, as an Enhanced Packet (core/pcapng.h). It never transmits; bytes from the
// client are read and ignored; errors are not written (they would corrupt the stream): the
// session just ends, and the server logs why. A client too slow for the bus is treated like any
// (its drops counted, `client too slow` after --slow-client-timeout).
//
// Single-owner: one thread (the session's io thread) at a time.
#pragma once

#include <string>

#include "core/pcapng.h"
#include "core/server_protocol.h"

namespace canserver {

class CaptureProtocol final : public ServerProtocol {
 public:
  explicit CaptureProtocol(SessionActions* actions) : actions_(actions) {}

  // Opens the bus and writes the pcapng header. A refusal (the channel is full) writes nothing:
  // OnBytes then returns it, which ends the session (Session::Start asks at once).
  void Greet(std::string* reply) override;
  bool opens_at_connect() const override { return true; }
  absl::Status OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) override;
  size_t buffered() const override { return 0; }
  bool held_back() const override { return false; }
  absl::Status OnEof() const override { return absl::OkStatus(); }
  bool is_open() const override { return open_; }
  std::string name() const override { return "capture"; }
  size_t max_frame_bytes() const override { return kMaxPacketBytes; }
  Encoded EncodeFrame(const CanFrame& frame, uint8_t* out, size_t* length) override;
  void AppendTransmitFail(uint32_t, std::string*) const override {}
  void AppendError(absl::string_view, std::string*) const override {}

  // An Enhanced Packet of a CAN FD frame: 12 bytes of block, 20 of packet header, 72 of frame.
  static constexpr size_t kMaxPacketBytes = 104;

 private:
  SessionActions* actions_;
  bool open_ = false;
  absl::Status refused_;
};

// Pcapng for Wireshark (--capture-port), one port per channel.
extern const FrontEnd kCaptureFrontEnd;

}  // namespace canserver
