#include "core/socketcand_protocol.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace canserver {
namespace {

using socketcand::ParseDecimal;
using socketcand::ParseHexByte;
using socketcand::ParseId;
using Words = std::vector<absl::string_view>;

constexpr size_t kMaxChannelName = 16;  // socketcand: "at maximum 16 characters"

absl::Status WrongCount(absl::string_view usage) {
  return absl::InvalidArgumentError(absl::StrCat("syntax: ", usage));
}

// Data bytes w[first..]: exactly `count` of them.
absl::Status ParseData(const Words& w, size_t first, size_t count, uint8_t* out) {
  const size_t given = w.size() > first ? w.size() - first : 0;
  if (given != count) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d data bytes announced, %d given", w[0], count, given));
  }
  for (size_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(out[i], ParseHexByte(w[first + i]));
  }
  return absl::OkStatus();
}

// "SECS USECS" → a duration (socketcand's ival2).
absl::StatusOr<absl::Duration> ParseInterval(absl::string_view secs, absl::string_view usecs) {
  ASSIGN_OR_RETURN(uint64_t s, ParseDecimal(secs, 31'536'000, "seconds"));
  ASSIGN_OR_RETURN(uint64_t us, ParseDecimal(usecs, 4'294'967'295, "microseconds"));
  return absl::Seconds(static_cast<int64_t>(s)) + absl::Microseconds(static_cast<int64_t>(us));
}

// A classic frame: id word, dlc word, data words from `first_data`.
absl::StatusOr<CanFrame> ParseClassic(const Words& w, size_t id_at) {
  ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[id_at]));
  ASSIGN_OR_RETURN(uint64_t dlc, ParseDecimal(w[id_at + 1], kCanClassicMaxLen, "dlc"));
  CanFrame frame;
  frame.id = id.id;
  frame.flags = id.extended ? kCanFlagExtended : 0;
  frame.len = static_cast<uint8_t>(dlc);
  RETURN_IF_ERROR(ParseData(w, id_at + 2, frame.len, frame.data));
  return frame;
}

const char* ModeName(SocketcandProtocol::Mode mode) {
  switch (mode) {
    case SocketcandProtocol::Mode::kNoBus:
      return "NO_BUS";
    case SocketcandProtocol::Mode::kBcm:
      return "BCM";
    case SocketcandProtocol::Mode::kRaw:
      return "RAW";
    case SocketcandProtocol::Mode::kControl:
      return "CONTROL";
    case SocketcandProtocol::Mode::kIsoTp:
      return "ISOTP";
    case SocketcandProtocol::Mode::kClosed:
      break;
  }
  return "closed";
}

}  // namespace

absl::Status SocketcandProtocol::OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) {
  if (mode_ == Mode::kClosed) return absl::FailedPreconditionError("session is closed");
  if (!bytes.empty()) {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
    input_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  held_back_ = false;
  while (true) {
    if (is_open() && actions_->TransmitBlocked()) {
      held_back_ = input_pos_ < input_.size();
      return absl::OkStatus();
    }
    const socketcand::ElementParser::Kind kind = parser_.Next(input_, &input_pos_);
    absl::Status status;
    if (kind == socketcand::ElementParser::Kind::kNeedMore) {
      input_.clear();
      input_pos_ = 0;
      return absl::OkStatus();
    }
    const bool garbage = kind == socketcand::ElementParser::Kind::kGarbage;
    if (garbage) {
      status = absl::InvalidArgumentError(parser_.error());
    } else {
      status = Handle(parser_.element(), reply);
    }
    if (status.ok()) continue;
    actions_->OnClientError(status.message());
    AppendError(status.message(), reply);
    if (mode_ == Mode::kClosed) return status;  // "open" failed: socketcand ends the session
    // Only what is not even an element counts against the session; a command with a mistake
    // is answered and forgiven (its answers are bounded by the client reading them).
    if (garbage && !CountError()) {
      mode_ = Mode::kClosed;
      const std::string why =
          absl::StrFormat("too many malformed elements (%d); closing", kMaxErrors);
      AppendError(why, reply);
      return absl::InvalidArgumentError(why);
    }
  }
}

bool SocketcandProtocol::CountError() { return ++errors_ < kMaxErrors; }

absl::Status SocketcandProtocol::OnEof() const {
  if (parser_.in_element() && parser_.buffered() > 0) {
    return absl::DataLossError(absl::StrFormat(
        "connection closed in the middle of an element (%d bytes held back)", parser_.buffered()));
  }
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::Handle(absl::string_view element, std::string* reply) {
  const Words w = socketcand::Words(element);
  if (w.empty()) return absl::InvalidArgumentError("an empty element");
  if (mode_ == Mode::kNoBus) return HandleNoBus(w, reply);
  const absl::string_view cmd = w[0];
  if (cmd == "echo") {
    reply->append("< echo >");
    return absl::OkStatus();
  }
  if (cmd == "rawmode") return SwitchMode(Mode::kRaw, reply);
  if (cmd == "bcmmode") return SwitchMode(Mode::kBcm, reply);
  if (cmd == "controlmode") return SwitchMode(Mode::kControl, reply);
  if (cmd == "isotpmode") return SwitchMode(Mode::kIsoTp, reply);
  if (cmd == "fdframes") {
    if (w.size() != 2 || (w[1] != "on" && w[1] != "off")) return WrongCount("fdframes on|off");
    fd_frames_ = w[1] == "on";
    reply->append("< ok >");
    return absl::OkStatus();
  }
  if (cmd == "errors") return SetErrorReplies(w, reply);
  if (cmd == "open") return absl::FailedPreconditionError("a bus is already open in this session");
  const bool sending = cmd == "send" || cmd == "sendrtr" || cmd == "fdsend";
  if (sending && (mode_ == Mode::kBcm || mode_ == Mode::kRaw)) return HandleSend(w);
  if (mode_ == Mode::kBcm) {
    if (cmd == "add" || cmd == "update" || cmd == "delete") return HandlePeriodic(w);
    if (cmd == "subscribe" || cmd == "unsubscribe" || cmd == "filter" || cmd == "muxfilter") {
      return HandleReceive(w);
    }
  }
  if (mode_ == Mode::kIsoTp && (cmd == "isotpconf" || cmd == "sendpdu")) return HandleIsoTp(w);
  if (mode_ == Mode::kControl && cmd == "statistics") {
    if (w.size() != 2) return WrongCount("statistics MILLISECONDS");
    ASSIGN_OR_RETURN(uint64_t ms, ParseDecimal(w[1], 86'400'000, "statistics interval"));
    statistics_every_ = absl::Milliseconds(static_cast<int64_t>(ms));
    next_statistics_ = ms == 0 ? absl::InfiniteFuture() : absl::InfinitePast();  // next tick
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown command '%s' in %s mode", cmd, ModeName(mode_)));
}

absl::Status SocketcandProtocol::SetErrorReplies(const Words& w, std::string* reply) {
  if (w.size() != 2 || (w[1] != "on" && w[1] != "off")) return WrongCount("errors on|off");
  error_replies_ = w[1] == "on";
  reply->append("< ok >");
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::HandleNoBus(const Words& w, std::string* reply) {
  if (w[0] == "echo") {
    reply->append("< echo >");
    return absl::OkStatus();
  }
  if (w[0] == "errors") return SetErrorReplies(w, reply);
  if (w[0] != "open") {
    if (w.size() >= 2 && (w[1] == "B" || w[1] == "C")) {
      return absl::UnimplementedError(
          "bit timing and controller settings are not set through socketcand here (use "
          "canserver's --bitrate)");
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("no bus open: 'open CHANNEL' comes first (got '%s')", w[0]));
  }
  if (w.size() != 2 || w[1].size() > kMaxChannelName) {
    return WrongCount("open CHANNEL (a name of at most 16 characters)");
  }
  absl::StatusOr<std::string> info = actions_->OpenBus(w[1], 0, rx_.ChannelFilters());
  if (!info.ok()) {
    mode_ = Mode::kClosed;
    return info.status();
  }
  mode_ = Mode::kBcm;
  opened_ = true;
  settle_ = true;
  reply->append("< ok >");
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::SwitchMode(Mode mode, std::string* reply) {
  if (mode_ == Mode::kIsoTp && mode != Mode::kIsoTp && isotp_open_) {
    actions_->CloseIsoTp();  // as socketcand closes its ISO-TP socket on leaving the mode
    isotp_open_ = false;
  }
  mode_ = mode;
  actions_->SetFilters(ModeFilters());
  settle_ = mode == Mode::kRaw || mode == Mode::kBcm;
  reply->append("< ok >");
  return absl::OkStatus();
}

FilterSet SocketcandProtocol::ModeFilters() const {
  if (mode_ == Mode::kRaw) return FilterSet();  // everything
  if (mode_ == Mode::kBcm) return rx_.ChannelFilters();
  return FilterSet::Nothing();  // no frames in the other modes
}

absl::Status SocketcandProtocol::HandleSend(const Words& w) {
  CanFrame frame;
  if (w[0] == "send") {
    if (w.size() < 3) return WrongCount("send ID DLC DATA…");
    ASSIGN_OR_RETURN(frame, ParseClassic(w, 1));
  } else if (w[0] == "sendrtr") {
    if (w.size() != 3) return WrongCount("sendrtr ID DLC");
    ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[1]));
    ASSIGN_OR_RETURN(uint64_t dlc, ParseDecimal(w[2], kCanClassicMaxLen, "dlc"));
    frame.id = id.id;
    frame.flags = static_cast<uint8_t>(kCanFlagRemote | (id.extended ? kCanFlagExtended : 0));
    frame.len = static_cast<uint8_t>(dlc);
  } else {  // fdsend ID FLAGS LEN DATA…
    if (w.size() < 4) return WrongCount("fdsend ID FLAGS LEN DATA…");
    ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[1]));
    ASSIGN_OR_RETURN(uint8_t flags, ParseHexByte(w[2]));
    if ((flags & ~0x07) != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fdsend: flags %02X (01 BRS, 02 ESI, 04 FD are defined)", flags));
    }
    ASSIGN_OR_RETURN(uint64_t len, ParseDecimal(w[3], kCanFdMaxLen, "length"));
    if (!IsCanFdLength(static_cast<uint8_t>(len))) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "fdsend: length %d is not a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64)", len));
    }
    frame.id = id.id;
    frame.flags = static_cast<uint8_t>(kCanFlagFd | (id.extended ? kCanFlagExtended : 0) |
                                       ((flags & 0x01) ? kCanFlagBrs : 0) |
                                       ((flags & 0x02) ? kCanFlagEsi : 0));
    frame.len = static_cast<uint8_t>(len);
    RETURN_IF_ERROR(ParseData(w, 4, frame.len, frame.data));
  }
  actions_->Transmit(frame);
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::HandlePeriodic(const Words& w) {
  if (w[0] == "delete") {
    if (w.size() != 2) return WrongCount("delete ID");
    ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[1]));
    periods_.erase(id.id);
    return actions_->StopPeriodic(id.id);
  }
  if (w[0] == "update") {
    if (w.size() < 3) return WrongCount("update ID DLC DATA…");
    ASSIGN_OR_RETURN(CanFrame frame, ParseClassic(w, 1));
    auto it = periods_.find(frame.id);
    if (it == periods_.end()) {
      return absl::NotFoundError(
          absl::StrFormat("update: no job for id %X (start it with add)", frame.id));
    }
    // The same period: the job's data changes, its timer is left alone.
    return actions_->StartPeriodic({it->second, absl::ZeroDuration(), frame});
  }
  // add SECS USECS ID DLC DATA…
  if (w.size() < 5) return WrongCount("add SECS USECS ID DLC DATA…");
  ASSIGN_OR_RETURN(absl::Duration period, ParseInterval(w[1], w[2]));
  ASSIGN_OR_RETURN(CanFrame frame, ParseClassic(w, 3));
  if (period <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "add: an interval of 0 would send nothing (the broadcast manager needs a timer); use "
        "send for a single frame");
  }
  RETURN_IF_ERROR(actions_->StartPeriodic({period, absl::ZeroDuration(), frame}));
  periods_[frame.id] = period;
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::HandleReceive(const Words& w) {
  const absl::string_view cmd = w[0];
  if (cmd == "unsubscribe") {
    if (w.size() != 2) return WrongCount("unsubscribe ID");
    ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[1]));
    if (!rx_.Unsubscribe({id.id, id.extended})) {
      return absl::NotFoundError(
          absl::StrFormat("unsubscribe: nothing subscribed for id %X", id.id));
    }
  } else {
    if (w.size() < 4) return WrongCount(absl::StrCat(cmd, " SECS USECS ID …"));
    ASSIGN_OR_RETURN(absl::Duration throttle, ParseInterval(w[1], w[2]));
    ASSIGN_OR_RETURN(socketcand::ParsedId id, ParseId(w[3]));
    const BcmReceive::Key key{id.id, id.extended};
    if (cmd == "subscribe") {
      if (w.size() != 4) return WrongCount("subscribe SECS USECS ID");
      RETURN_IF_ERROR(rx_.Subscribe(key, throttle));
    } else if (cmd == "filter") {
      if (w.size() < 5) return WrongCount("filter SECS USECS ID DLC MASK…");
      ASSIGN_OR_RETURN(uint64_t dlc, ParseDecimal(w[4], kCanClassicMaxLen, "dlc"));
      BcmReceive::Mask mask{};
      RETURN_IF_ERROR(ParseData(w, 5, dlc, mask.data()));
      RETURN_IF_ERROR(rx_.Filter(key, throttle, mask));
    } else {  // muxfilter SECS USECS ID NFRAMES DATA…
      if (w.size() < 5) return WrongCount("muxfilter SECS USECS ID NFRAMES DATA…");
      ASSIGN_OR_RETURN(uint64_t n, ParseDecimal(w[4], BcmReceive::kMaxMuxTuples, "nframes"));
      std::vector<BcmReceive::Mask> tuples(n);
      std::vector<uint8_t> bytes(n * 8);
      RETURN_IF_ERROR(ParseData(w, 5, bytes.size(), bytes.data()));
      for (size_t i = 0; i < n; ++i) std::memcpy(tuples[i].data(), &bytes[i * 8], 8);
      RETURN_IF_ERROR(rx_.MuxFilter(key, throttle, std::move(tuples)));
    }
  }
  actions_->SetFilters(ModeFilters());
  return absl::OkStatus();
}

absl::Status SocketcandProtocol::HandleIsoTp(const Words& w) {
  if (w[0] == "sendpdu") {
    if (w.size() != 2) return WrongCount("sendpdu HEXDATA");
    if (!isotp_open_) {
      return absl::FailedPreconditionError("sendpdu: no ISO-TP channel yet (isotpconf first)");
    }
    ASSIGN_OR_RETURN(std::string pdu, socketcand::ParseHexRun(w[1], kIsoTpMaxPdu));
    if (pdu.empty()) return absl::InvalidArgumentError("sendpdu: an empty PDU");
    return actions_->SendPdu(pdu);
  }
  // isotpconf TX RX FLAGS BS STMIN [WFTMAX TXPAD RXPAD EXT RXEXT]: socketcand's layout, bs and
  // wftmax decimal, the rest hex; the optional values a flag needs must be there.
  if (w.size() < 6 || w.size() > 11) {
    return WrongCount("isotpconf TX_ID RX_ID FLAGS BLOCKSIZE STMIN [WFTMAX TXPAD RXPAD EXT RXEXT]");
  }
  IsoTpConfig c;
  ASSIGN_OR_RETURN(socketcand::ParsedId tx, ParseId(w[1]));
  ASSIGN_OR_RETURN(socketcand::ParsedId rx, ParseId(w[2]));
  c.tx_id = tx.id;
  c.tx_extended = tx.extended;
  c.rx_id = rx.id;
  c.rx_extended = rx.extended;
  // Only the options socketcand documents (001..200): others, CAN_ISOTP_WAIT_TX_DONE above all
  // (it would block the server's thread), are refused.
  ASSIGN_OR_RETURN(c.flags, socketcand::ParseHex(w[3], 0x3FF, "isotpconf flags"));
  ASSIGN_OR_RETURN(uint64_t bs, ParseDecimal(w[4], 255, "blocksize"));
  c.block_size = static_cast<uint8_t>(bs);
  ASSIGN_OR_RETURN(c.stmin, ParseHexByte(w[5]));
  const size_t given = w.size() - 6;
  size_t needed = 0;
  if (c.flags & 0x004) needed = std::max<size_t>(needed, 2);  // CAN_ISOTP_TX_PADDING: txpad
  if (c.flags & 0x008) needed = std::max<size_t>(needed, 3);  // CAN_ISOTP_RX_PADDING: rxpad
  if (c.flags & 0x002) needed = std::max<size_t>(needed, 4);  // CAN_ISOTP_EXTEND_ADDR: ext
  if (c.flags & 0x200) needed = std::max<size_t>(needed, 5);  // CAN_ISOTP_RX_EXT_ADDR: rxext
  if (given < needed) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "isotpconf: flags %X need %d values after STMIN, %d given", c.flags, needed, given));
  }
  if (given > 0) {
    ASSIGN_OR_RETURN(uint64_t wft, ParseDecimal(w[6], 255, "wftmax"));
    c.wftmax = static_cast<uint8_t>(wft);
  }
  uint8_t* optional[] = {&c.txpad, &c.rxpad, &c.ext_address, &c.rx_ext_address};
  for (size_t i = 1; i < given; ++i) {
    ASSIGN_OR_RETURN(*optional[i - 1], ParseHexByte(w[6 + i]));
  }
  RETURN_IF_ERROR(actions_->OpenIsoTp(c));
  isotp_open_ = true;
  return absl::OkStatus();
}

void SocketcandProtocol::AppendPdu(int64_t timestamp_ns, absl::string_view pdu,
                                   std::string* out) const {
  const uint64_t t = timestamp_ns > 0 ? static_cast<uint64_t>(timestamp_ns) : 0;
  absl::StrAppendFormat(out, "< pdu %d.%06d ", t / 1'000'000'000, t % 1'000'000'000 / 1000);
  constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char b : pdu) {
    out->push_back(kHex[b >> 4]);
    out->push_back(kHex[b & 0xF]);
  }
  out->append(" >");
}

ServerProtocol::Encoded SocketcandProtocol::EncodeFrame(const CanFrame& frame, uint8_t* out,
                                                        size_t* length) {
  char* text = reinterpret_cast<char*>(out);
  if (frame.fd() && !fd_frames_) return Encoded::kUnsupported;
  if (mode_ == Mode::kRaw) {
    *length = socketcand::FormatRawFrame(frame, text);
    return Encoded::kWritten;
  }
  if (mode_ == Mode::kBcm && rx_.Accept(frame)) {
    *length = socketcand::FormatBcmFrame(frame, text);
    return Encoded::kWritten;
  }
  return Encoded::kNotWanted;
}

void SocketcandProtocol::AppendTransmitFail(uint32_t count, std::string* out) const {
  if (!error_replies_) return;  // counted in tx_failed; socketcand answers nothing either
  out->append(socketcand::ErrorElement(
      absl::StrFormat("transmit failed: the bus refused %d frame%s (see canserver's tx counters)",
                      count, count == 1 ? "" : "s")));
}

void SocketcandProtocol::AppendError(absl::string_view text, std::string* out) const {
  if (opened_ && !error_replies_) return;  // see the header: python-can ≥ 4.6 would choke
  out->append(socketcand::ErrorElement(text));
}

void SocketcandProtocol::OnTick(absl::Time now, std::string* reply) {
  if (!is_open()) return;
  if (mode_ == Mode::kBcm) {
    due_.clear();
    rx_.TakeDue(absl::ToUnixNanos(now), &due_);
    char text[socketcand::kMaxFrameElementLength];
    for (const CanFrame& f : due_) reply->append(text, socketcand::FormatBcmFrame(f, text));
  }
  if (statistics_every_ > absl::ZeroDuration() && now >= next_statistics_) {
    const BusTraffic t = actions_->Traffic();
    absl::StrAppend(reply, "< stat ", t.rx_bytes, " ", t.rx_frames, " ", t.tx_bytes, " ",
                    t.tx_frames, " >");
    next_statistics_ = now + statistics_every_;
  }
}

const FrontEnd kSocketcandFrontEnd = {
    [](SessionActions* actions) -> std::unique_ptr<ServerProtocol> {
      return std::make_unique<SocketcandProtocol>(actions);
    },
    [](absl::string_view reason, std::string* out) {
      out->append(socketcand::ErrorElement(reason));
    },
};

}  // namespace canserver
