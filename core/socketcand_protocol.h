// The server side of one socketcand session (linux-can/socketcand, doc/protocol.md), as pure
// logic beside V5Protocol: client bytes in, actions and reply bytes out.
//
//   NO_BUS   "< hi >" on connect; "< open NAME >" → "< ok >" and BCM mode, or "< error … >"
//   BCM      send / sendrtr / fdsend, add / update / delete (periodic jobs), subscribe / filter /
//            muxfilter / unsubscribe (receive: BcmReceive), echo
//   RAW      every frame on the bus; send / sendrtr / fdsend, echo
//   CONTROL  statistics MS → "< stat RBYTES RPACKETS TBYTES TPACKETS >" every MS (≥ 100 ms)
//   ISOTP    isotpconf (opens the channel's ISO-TP socket), sendpdu HEX; "< pdu SECONDS HEX >"
//            for each PDU received (SocketCAN only: the kernel's CAN_ISOTP)
// "< rawmode >", "< bcmmode >", "< controlmode >", "< isotpmode >" switch modes after open.
// Extension: "< fdframes on >" asks for CAN FD frames ("< fdframe … >"); without it a client never
// sees them (counted as unsupported), so clients that do not know the element are not confused.
//
// Errors. Once a bus is open, a client hears of a bad command, a refused frame or the end of the
// session only by what socketcand itself sends (nothing; the connection closes): python-can ≥ 4.6
// reads every "< error … >" as an error *frame* and its recv() fails on any other text. The
// reason goes to SessionActions::OnClientError (the server's log and counters) instead. A client
// that wants the reasons asks with the extension "< errors on >": then each is answered with
// "< error WHAT >" (canserver's own socketcand client does). Before a bus is open, refusals are
// answered "< error WHAT >" as socketcand answers a failed open (python-can compares the reply
// whole and raises with it). Garbage (bytes that are not an element) counts too: after
// kMaxErrors of those the session ends.
// After an "< ok >" that lets frames flow (open, rawmode, bcmmode) TakeSettle() asks the session
// to let the reply reach the client alone: python-can reads it with one recv() and compares.
// Periodic jobs live until "< delete >" or the end of the session (socketcand ends them when the
// client leaves BCM mode); BCM receive jobs are kept and apply in BCM mode.
//
// Single-owner: one thread (the session's io thread) at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/bcm_receive.h"
#include "core/server_protocol.h"
#include "core/socketcand_codec.h"

namespace canserver {

class SocketcandProtocol final : public ServerProtocol {
 public:
  enum class Mode { kNoBus, kBcm, kRaw, kControl, kIsoTp, kClosed };
  // Malformed input (not an element at all) answered with "< error … >" before the session is
  // ended; commands with mistakes are answered and do not count.
  static constexpr int kMaxErrors = 32;

  explicit SocketcandProtocol(SessionActions* actions) : actions_(actions) {}

  void Greet(std::string* reply) override { reply->append("< hi >"); }
  absl::Status OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) override;
  size_t buffered() const override { return input_.size() - input_pos_ + parser_.buffered(); }
  bool held_back() const override { return held_back_; }
  absl::Status OnEof() const override;
  bool is_open() const override { return mode_ != Mode::kNoBus && mode_ != Mode::kClosed; }
  std::string name() const override { return "socketcand"; }
  size_t max_frame_bytes() const override { return socketcand::kMaxFrameElementLength; }
  Encoded EncodeFrame(const CanFrame& frame, uint8_t* out, size_t* length) override;
  void AppendTransmitFail(uint32_t count, std::string* out) const override;
  void AppendError(absl::string_view text, std::string* out) const override;
  void OnTick(absl::Time now, std::string* reply) override;
  void AppendPdu(int64_t timestamp_ns, absl::string_view pdu, std::string* out) const override;
  bool TakeSettle() override { return std::exchange(settle_, false); }

  Mode mode() const { return mode_; }

 private:
  // Handles one element; a non-OK status is answered with "< error … >" (and counted).
  absl::Status Handle(absl::string_view element, std::string* reply);
  absl::Status HandleNoBus(const std::vector<absl::string_view>& w, std::string* reply);
  absl::Status HandleSend(const std::vector<absl::string_view>& w);
  absl::Status HandlePeriodic(const std::vector<absl::string_view>& w);
  absl::Status HandleReceive(const std::vector<absl::string_view>& w);
  absl::Status HandleIsoTp(const std::vector<absl::string_view>& w);
  absl::Status SwitchMode(Mode mode, std::string* reply);
  absl::Status SetErrorReplies(const std::vector<absl::string_view>& w, std::string* reply);
  // The channel filters the mode needs: everything in RAW, the BCM ids in BCM, else nothing.
  FilterSet ModeFilters() const;
  // Counts an error; false once there were too many.
  bool CountError();

  SessionActions* actions_;
  socketcand::ElementParser parser_;
  std::string input_;  // client bytes not yet parsed (kept while transmit is blocked)
  size_t input_pos_ = 0;
  Mode mode_ = Mode::kNoBus;
  bool held_back_ = false;
  bool fd_frames_ = false;
  bool error_replies_ = false;  // "< errors on >"
  bool opened_ = false;         // a bus was opened (errors are no longer answered by default)
  bool settle_ = false;         // see TakeSettle()
  bool isotp_open_ = false;
  int errors_ = 0;
  BcmReceive rx_;
  std::map<uint32_t, absl::Duration> periods_;  // the periodic jobs started with "add"
  absl::Duration statistics_every_ = absl::ZeroDuration();
  absl::Time next_statistics_ = absl::InfiniteFuture();
  std::vector<CanFrame> due_;  // scratch for OnTick
};

// Socketcand's ASCII protocol, one port for every channel.
extern const FrontEnd kSocketcandFrontEnd;

}  // namespace canserver
