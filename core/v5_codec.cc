#include "core/v5_codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace canserver::v5 {
namespace {

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
uint32_t GetU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
void PutF64(uint8_t* p, double v) {
  const uint64_t bits = std::bit_cast<uint64_t>(v);
  PutU32(p, static_cast<uint32_t>(bits >> 32));
  PutU32(p + 4, static_cast<uint32_t>(bits));
}
uint64_t GetU64(const uint8_t* p) { return (uint64_t{GetU32(p)} << 32) | GetU32(p + 4); }
double GetF64(const uint8_t* p) { return std::bit_cast<double>(GetU64(p)); }
void AppendBytes(std::string* out, const uint8_t* p, size_t n) {
  out->append(reinterpret_cast<const char*>(p), n);
}
void AppendU32(std::string* out, uint32_t v) {
  uint8_t b[4];
  PutU32(b, v);
  AppendBytes(out, b, 4);
}
void AppendU64(std::string* out, uint64_t v) {
  AppendU32(out, static_cast<uint32_t>(v >> 32));
  AppendU32(out, static_cast<uint32_t>(v));
}

absl::Status CheckId(uint32_t id, bool extended) {
  if (id > kCanExtIdMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("arbitration id 0x%X is wider than 29 bits", id));
  }
  if (!extended && id > kCanStdIdMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("arbitration id 0x%X is wider than 11 bits but not extended", id));
  }
  return absl::OkStatus();
}

absl::Status CheckDlc(uint8_t dlc) {
  if (dlc > kCanClassicMaxLen) {
    return absl::InvalidArgumentError(absl::StrFormat("dlc %u is over 8", dlc));
  }
  return absl::OkStatus();
}

absl::Status CheckFdFrame(const CanFrame& frame) {
  if (absl::Status s = CheckId(frame.id, frame.extended()); !s.ok()) return s;
  if (!frame.fd()) return absl::InvalidArgumentError("a classic frame is not a CanFdMessage");
  if (frame.remote()) {
    return absl::InvalidArgumentError("CAN FD has no remote frames (RTR flag with FD)");
  }
  if (!IsCanFdLength(frame.len)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "length %u is not a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64)", frame.len));
  }
  return absl::OkStatus();
}

// The flags byte of CanFdMessage / PeriodicFdMessageStart; FD is always set.
uint8_t FdWireFlags(const CanFrame& frame, bool with_error) {
  const uint8_t keep = kWireExtended | kWireBrs | kWireEsi | (with_error ? kWireError : 0);
  return static_cast<uint8_t>((frame.flags & keep) | kWireFd);
}

// u8 length, then at most 255 bytes of `text` (cut at a UTF-8 boundary).
void AppendStringBody(absl::string_view text, std::string* out) {
  const absl::string_view cut = TruncateUtf8(text, kMaxStringLen);
  out->push_back(static_cast<char>(cut.size()));
  out->append(cut.data(), cut.size());
}

void AppendString(EventId id, absl::string_view text, std::string* out) {
  out->push_back(static_cast<char>(id));
  AppendStringBody(text, out);
}

struct EncodeVisitor {
  std::string* out;

  absl::Status operator()(const BusRequest& e) const {
    uint8_t b[6] = {static_cast<uint8_t>(EventId::kBusRequest), e.version};
    PutU32(b + 2, static_cast<uint32_t>(e.bitrate));
    AppendBytes(out, b, sizeof b);
    return absl::OkStatus();
  }
  absl::Status operator()(const BusResponse& e) const {
    AppendString(EventId::kBusResponse, e.channel_info, out);
    return absl::OkStatus();
  }
  absl::Status operator()(const CanMessage& e) const {
    if (e.frame.fd()) return absl::InvalidArgumentError("protocol v5 cannot carry CAN FD frames");
    if (absl::Status s = CheckId(e.frame.id, e.frame.extended()); !s.ok()) return s;
    if (absl::Status s = CheckDlc(e.frame.len); !s.ok()) return s;
    uint8_t b[kCanMessageSize];
    EncodeCanMessage(e.frame, b);
    AppendBytes(out, b, sizeof b);
    return absl::OkStatus();
  }
  absl::Status operator()(const TransmitSuccess&) const {
    out->push_back(static_cast<char>(EventId::kTransmitSuccess));
    return absl::OkStatus();
  }
  absl::Status operator()(const TransmitFail&) const {
    out->push_back(static_cast<char>(EventId::kTransmitFail));
    return absl::OkStatus();
  }
  absl::Status operator()(const RemoteException& e) const {
    AppendString(EventId::kRemoteException, e.text, out);
    return absl::OkStatus();
  }
  absl::Status operator()(const PeriodicMessageStart& e) const {
    if (absl::Status s = CheckId(e.frame.id, e.frame.extended()); !s.ok()) return s;
    if (absl::Status s = CheckDlc(e.frame.len); !s.ok()) return s;
    uint8_t b[kPeriodicStartSize] = {static_cast<uint8_t>(EventId::kPeriodicMessageStart)};
    PutU32(b + 1, static_cast<uint32_t>(e.period_ms));
    PutU32(b + 5, static_cast<uint32_t>(e.duration_ms));
    PutU32(b + 9, e.frame.id);
    b[13] = e.frame.len;
    b[14] = e.frame.extended() ? 1 : 0;
    std::memcpy(b + 15, e.frame.data, e.frame.len);
    AppendBytes(out, b, sizeof b);
    return absl::OkStatus();
  }
  absl::Status operator()(const PeriodicMessageStop& e) const {
    if (e.arbitration_id > kCanExtIdMax) return CheckId(e.arbitration_id, true);
    out->push_back(static_cast<char>(EventId::kPeriodicMessageStop));
    AppendU32(out, e.arbitration_id);
    return absl::OkStatus();
  }
  absl::Status operator()(const FilterConfig& e) const {
    if (e.filters.size() > kMaxFilters) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%d filters; protocol v5 allows at most 255", e.filters.size()));
    }
    out->push_back(static_cast<char>(EventId::kFilterConfig));
    out->push_back(static_cast<char>(e.filters.size()));
    for (const CanFilter& f : e.filters) {
      uint32_t id = f.can_id & kCanExtIdMax;
      uint32_t mask = f.can_mask & kCanExtIdMax;
      if (f.extended.has_value()) {
        mask |= 0x80000000u;
        if (*f.extended) id |= 0x80000000u;
      }
      AppendU32(out, id);
      AppendU32(out, mask);
    }
    return absl::OkStatus();
  }
  absl::Status operator()(const ConnectionClosed&) const {
    out->push_back(static_cast<char>(EventId::kConnectionClosed));
    return absl::OkStatus();
  }
  absl::Status operator()(const CanFdMessage& e) const {
    if (absl::Status s = CheckFdFrame(e.frame); !s.ok()) return s;
    uint8_t b[kMaxCanFdMessageSize];
    AppendBytes(out, b, EncodeFrameV6(e.frame, b));
    return absl::OkStatus();
  }
  absl::Status operator()(const PeriodicFdMessageStart& e) const {
    if (absl::Status s = CheckFdFrame(e.frame); !s.ok()) return s;
    uint8_t b[kPeriodicFdHeaderSize + kCanFdMaxLen] = {
        static_cast<uint8_t>(EventId::kPeriodicFdMessageStart)};
    PutU32(b + 1, static_cast<uint32_t>(e.period_ms));
    PutU32(b + 5, static_cast<uint32_t>(e.duration_ms));
    PutU32(b + 9, e.frame.id);
    b[13] = e.frame.len;
    b[14] = FdWireFlags(e.frame, /*with_error=*/false);
    std::memcpy(b + kPeriodicFdHeaderSize, e.frame.data, e.frame.len);
    AppendBytes(out, b, kPeriodicFdHeaderSize + e.frame.len);
    return absl::OkStatus();
  }
  absl::Status operator()(const LeaseRequest& e) const {
    if (e.seconds < 0) return absl::InvalidArgumentError("LeaseRequest seconds is negative");
    out->push_back(static_cast<char>(EventId::kLeaseRequest));
    AppendU32(out, static_cast<uint32_t>(e.seconds));
    AppendStringBody(e.token, out);
    return absl::OkStatus();
  }
  absl::Status operator()(const LeaseResponse& e) const {
    out->push_back(static_cast<char>(EventId::kLeaseResponse));
    out->push_back(e.granted ? 1 : 0);
    AppendU32(out, e.remaining_ms);
    AppendStringBody(e.token, out);
    AppendStringBody(e.text, out);
    return absl::OkStatus();
  }
  absl::Status operator()(const ResumeRequest& e) const {
    out->push_back(static_cast<char>(EventId::kResumeRequest));
    AppendStringBody(e.token, out);
    AppendU64(out, e.frames_received);
    return absl::OkStatus();
  }
  absl::Status operator()(const ResumeResponse& e) const {
    out->push_back(static_cast<char>(EventId::kResumeResponse));
    out->push_back(static_cast<char>(e.status));
    AppendU32(out, e.grace_ms);
    AppendU32(out, e.away_ms);
    AppendU64(out, e.frames_lost);
    AppendU64(out, e.frames_from_client);
    AppendStringBody(e.token, out);
    AppendStringBody(e.text, out);
    return absl::OkStatus();
  }
};

// CanFdMessage and PeriodicFdMessageStart carry their length at byte 13; 0 while not yet known.
absl::StatusOr<size_t> FdEventSize(absl::Span<const uint8_t> in, size_t header) {
  if (in.size() < 14) return 0;
  if (!IsCanFdLength(in[13])) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: length %u is not a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64)",
                        EventName(static_cast<EventId>(in[0])), in[13]));
  }
  return header + in[13];
}

// The flags byte of an FD event: FD set, no RTR, no unknown bits; `error_ok` allows kWireError.
absl::Status CheckFdWireFlags(EventId id, uint8_t flags, bool error_ok) {
  const uint8_t known =
      kWireExtended | kWireFd | kWireBrs | kWireEsi | (error_ok ? kWireError : uint8_t{0});
  if (flags & kWireRemote) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s flags 0x%02x: CAN FD has no remote frames (RTR flag 0x02)", EventName(id), flags));
  }
  if ((flags & ~known) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s flags 0x%02x has unknown bits", EventName(id), flags));
  }
  if ((flags & kWireFd) == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s flags 0x%02x lack the FD bit 0x08", EventName(id), flags));
  }
  return absl::OkStatus();
}

// Bytes needed for the event starting at in[0], or 0 if that is not yet known.
absl::StatusOr<size_t> EventSize(absl::Span<const uint8_t> in) {
  switch (static_cast<EventId>(in[0])) {
    case EventId::kBusRequest:
      return 6;
    case EventId::kBusResponse:
    case EventId::kRemoteException:
      return in.size() < 2 ? 0 : size_t{2} + in[1];
    case EventId::kCanMessage:
      return kCanMessageSize;
    case EventId::kTransmitSuccess:
    case EventId::kTransmitFail:
    case EventId::kConnectionClosed:
      return 1;
    case EventId::kPeriodicMessageStart:
      return kPeriodicStartSize;
    case EventId::kPeriodicMessageStop:
      return 5;
    case EventId::kFilterConfig:
      return in.size() < 2 ? 0 : size_t{2} + size_t{8} * in[1];
    case EventId::kCanFdMessage:
      return FdEventSize(in, kCanFdHeaderSize);
    case EventId::kPeriodicFdMessageStart:
      return FdEventSize(in, kPeriodicFdHeaderSize);
    case EventId::kLeaseRequest:
      return in.size() < 6 ? 0 : size_t{6} + in[5];
    case EventId::kResumeRequest:
      return in.size() < 2 ? 0 : size_t{10} + in[1];
    case EventId::kResumeResponse: {
      if (in.size() < 27) return 0;
      const size_t text_at = size_t{27} + in[26];  // the text's length byte
      return in.size() <= text_at ? 0 : text_at + 1 + in[text_at];
    }
    case EventId::kLeaseResponse: {
      if (in.size() < 7) return 0;
      const size_t text_at = size_t{7} + in[6];  // the text's length byte
      return in.size() <= text_at ? 0 : text_at + 1 + in[text_at];
    }
  }
  if (in[0] == 9) {
    return absl::InvalidArgumentError(
        "unknown event id 9 (PeriodicMessageUpdate of protocol v4; v5 does not have it)");
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown event id %u (0x%02x)", in[0], in[0]));
}

absl::Status DecodeFrameFields(const uint8_t* p, bool extended, CanFrame* frame) {
  // p: s32 id, u8 dlc. A negative s32 is an id with bit 31 set, which no CAN id has.
  const uint32_t id = GetU32(p);
  if (absl::Status s = CheckId(id, extended); !s.ok()) return s;
  if (absl::Status s = CheckDlc(p[4]); !s.ok()) return s;
  frame->id = id;
  frame->len = p[4];
  return absl::OkStatus();
}

// A lease's or session's token as a client may send it: `len` hex digits, or none.
bool TokenOrEmpty(const std::string& token, size_t len) {
  return token.empty() ||
         (token.size() == len && std::all_of(token.begin(), token.end(), absl::ascii_isxdigit));
}

}  // namespace

absl::string_view EventName(EventId id) {
  switch (id) {
    case EventId::kBusRequest:
      return "BusRequest";
    case EventId::kBusResponse:
      return "BusResponse";
    case EventId::kCanMessage:
      return "CanMessage";
    case EventId::kTransmitSuccess:
      return "TransmitSuccess";
    case EventId::kTransmitFail:
      return "TransmitFail";
    case EventId::kRemoteException:
      return "RemoteException";
    case EventId::kPeriodicMessageStart:
      return "PeriodicMessageStart";
    case EventId::kPeriodicMessageStop:
      return "PeriodicMessageStop";
    case EventId::kFilterConfig:
      return "FilterConfig";
    case EventId::kConnectionClosed:
      return "ConnectionClosed";
    case EventId::kCanFdMessage:
      return "CanFdMessage";
    case EventId::kPeriodicFdMessageStart:
      return "PeriodicFdMessageStart";
    case EventId::kLeaseRequest:
      return "LeaseRequest";
    case EventId::kLeaseResponse:
      return "LeaseResponse";
    case EventId::kResumeRequest:
      return "ResumeRequest";
    case EventId::kResumeResponse:
      return "ResumeResponse";
  }
  return "unknown event";
}

absl::string_view EventName(const Event& event) {
  static constexpr EventId kIds[] = {
      EventId::kBusRequest,           EventId::kBusResponse,
      EventId::kCanMessage,           EventId::kTransmitSuccess,
      EventId::kTransmitFail,         EventId::kRemoteException,
      EventId::kPeriodicMessageStart, EventId::kPeriodicMessageStop,
      EventId::kFilterConfig,         EventId::kConnectionClosed,
      EventId::kCanFdMessage,         EventId::kPeriodicFdMessageStart,
      EventId::kLeaseRequest,         EventId::kLeaseResponse,
      EventId::kResumeRequest,        EventId::kResumeResponse};
  static_assert(std::size(kIds) == std::variant_size_v<Event>);
  return EventName(kIds[event.index()]);
}

absl::string_view TruncateUtf8(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Step back over continuation bytes (10xxxxxx) so the cut falls before a lead byte.
  while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

double NanosToSeconds(int64_t ns) {
  // Split so the sum is rounded once: whole seconds are exact in a double.
  const int64_t secs = ns / 1'000'000'000;
  const int64_t rem = ns % 1'000'000'000;
  return static_cast<double>(secs) + static_cast<double>(rem) / 1e9;
}

int64_t SecondsToNanos(double seconds) {
  if (!std::isfinite(seconds) || std::fabs(seconds) > 9.2e9) return 0;
  const double whole = std::floor(seconds);
  return static_cast<int64_t>(whole) * 1'000'000'000 +
         static_cast<int64_t>(std::llround((seconds - whole) * 1e9));
}

absl::Status Encode(const Event& event, std::string* out) {
  return std::visit(EncodeVisitor{out}, event);
}

bool EncodeCanMessage(const CanFrame& frame, uint8_t* out) noexcept {
  if (frame.fd() || frame.len > kCanClassicMaxLen) return false;
  out[0] = static_cast<uint8_t>(EventId::kCanMessage);
  PutF64(out + 1, NanosToSeconds(frame.timestamp_ns));
  PutU32(out + 9, frame.id);
  out[13] = frame.len;
  out[14] = frame.flags & (kWireExtended | kWireRemote | kWireError);
  std::memset(out + 15, 0, 8);
  if (!frame.remote()) std::memcpy(out + 15, frame.data, frame.len);
  return true;
}

size_t EncodeFrameV6(const CanFrame& frame, uint8_t* out) noexcept {
  if (!frame.fd()) return EncodeCanMessage(frame, out) ? kCanMessageSize : 0;
  if (frame.remote() || !IsCanFdLength(frame.len)) return 0;
  out[0] = static_cast<uint8_t>(EventId::kCanFdMessage);
  PutF64(out + 1, NanosToSeconds(frame.timestamp_ns));
  PutU32(out + 9, frame.id);
  out[13] = frame.len;
  out[14] = FdWireFlags(frame, /*with_error=*/true);
  std::memcpy(out + kCanFdHeaderSize, frame.data, frame.len);
  return kCanFdHeaderSize + frame.len;
}

absl::StatusOr<size_t> DecodeEvent(absl::Span<const uint8_t> in, Event* out) {
  if (in.empty()) return 0;
  absl::StatusOr<size_t> size = EventSize(in);
  if (!size.ok()) return size.status();
  if (*size == 0 || in.size() < *size) return 0;
  const uint8_t* p = in.data();
  switch (static_cast<EventId>(p[0])) {
    case EventId::kBusRequest: {
      const auto bitrate = static_cast<int32_t>(GetU32(p + 2));
      if (bitrate < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("BusRequest bitrate %d is negative", bitrate));
      }
      *out = BusRequest{p[1], bitrate};
      break;
    }
    case EventId::kBusResponse:
      *out = BusResponse{std::string(reinterpret_cast<const char*>(p + 2), p[1])};
      break;
    case EventId::kRemoteException:
      *out = RemoteException{std::string(reinterpret_cast<const char*>(p + 2), p[1])};
      break;
    case EventId::kCanMessage: {
      const uint8_t flags = p[14];
      if ((flags & ~(kWireExtended | kWireRemote | kWireError)) != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("CanMessage flags 0x%02x has unknown bits", flags));
      }
      CanMessage msg;
      msg.frame.flags = flags;
      if (absl::Status s = DecodeFrameFields(p + 9, (flags & kWireExtended) != 0, &msg.frame);
          !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("CanMessage: ", s.message()));
      }
      if (!msg.frame.remote()) std::memcpy(msg.frame.data, p + 15, msg.frame.len);
      msg.frame.timestamp_ns = SecondsToNanos(GetF64(p + 1));
      *out = msg;
      break;
    }
    case EventId::kTransmitSuccess:
      *out = TransmitSuccess{};
      break;
    case EventId::kTransmitFail:
      *out = TransmitFail{};
      break;
    case EventId::kConnectionClosed:
      *out = ConnectionClosed{};
      break;
    case EventId::kPeriodicMessageStart: {
      PeriodicMessageStart msg;
      msg.period_ms = static_cast<int32_t>(GetU32(p + 1));
      msg.duration_ms = static_cast<int32_t>(GetU32(p + 5));
      const uint8_t extended = p[14];
      if (msg.period_ms <= 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicMessageStart period %d ms is not positive", msg.period_ms));
      }
      if (msg.duration_ms < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicMessageStart duration %d ms is negative", msg.duration_ms));
      }
      if (extended > 1) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicMessageStart extended byte %u is not 0 or 1", extended));
      }
      msg.frame.flags = extended ? kCanFlagExtended : 0;
      if (absl::Status s = DecodeFrameFields(p + 9, extended != 0, &msg.frame); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("PeriodicMessageStart: ", s.message()));
      }
      std::memcpy(msg.frame.data, p + 15, msg.frame.len);
      *out = msg;
      break;
    }
    case EventId::kPeriodicMessageStop: {
      const uint32_t id = GetU32(p + 1);
      if (id > kCanExtIdMax) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicMessageStop: arbitration id 0x%X is wider than 29 bits", id));
      }
      *out = PeriodicMessageStop{id};
      break;
    }
    case EventId::kFilterConfig: {
      FilterConfig msg;
      msg.filters.reserve(p[1]);
      for (size_t i = 0; i < p[1]; ++i) {
        const uint32_t id = GetU32(p + 2 + 8 * i);
        const uint32_t mask = GetU32(p + 6 + 8 * i);
        CanFilter f{id & kCanExtIdMax, mask & kCanExtIdMax, std::nullopt};
        if (mask & 0x80000000u) f.extended = (id & 0x80000000u) != 0;
        msg.filters.push_back(f);
      }
      *out = std::move(msg);
      break;
    }
    case EventId::kCanFdMessage: {
      const uint8_t flags = p[14];
      if (absl::Status s = CheckFdWireFlags(EventId::kCanFdMessage, flags, true); !s.ok()) return s;
      CanFdMessage msg;
      msg.frame.flags = flags;
      const uint32_t id = GetU32(p + 9);
      if (absl::Status s = CheckId(id, (flags & kWireExtended) != 0); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("CanFdMessage: ", s.message()));
      }
      msg.frame.id = id;
      msg.frame.len = p[13];
      std::memcpy(msg.frame.data, p + kCanFdHeaderSize, msg.frame.len);
      msg.frame.timestamp_ns = SecondsToNanos(GetF64(p + 1));
      *out = msg;
      break;
    }
    case EventId::kPeriodicFdMessageStart: {
      PeriodicFdMessageStart msg;
      msg.period_ms = static_cast<int32_t>(GetU32(p + 1));
      msg.duration_ms = static_cast<int32_t>(GetU32(p + 5));
      if (msg.period_ms <= 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicFdMessageStart period %d ms is not positive", msg.period_ms));
      }
      if (msg.duration_ms < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("PeriodicFdMessageStart duration %d ms is negative", msg.duration_ms));
      }
      const uint8_t flags = p[14];
      if (absl::Status s = CheckFdWireFlags(EventId::kPeriodicFdMessageStart, flags, false);
          !s.ok()) {
        return s;
      }
      const uint32_t id = GetU32(p + 9);
      if (absl::Status s = CheckId(id, (flags & kWireExtended) != 0); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("PeriodicFdMessageStart: ", s.message()));
      }
      msg.frame.flags = flags;
      msg.frame.id = id;
      msg.frame.len = p[13];
      std::memcpy(msg.frame.data, p + kPeriodicFdHeaderSize, msg.frame.len);
      *out = msg;
      break;
    }
    case EventId::kLeaseRequest: {
      const auto seconds = static_cast<int32_t>(GetU32(p + 1));
      if (seconds < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("LeaseRequest seconds %d is negative", seconds));
      }
      std::string token(reinterpret_cast<const char*>(p + 6), p[5]);
      if (!TokenOrEmpty(token, kLeaseTokenLen)) {
        return absl::InvalidArgumentError(
            "LeaseRequest token is not 32 hex digits (a lease's token, or empty)");
      }
      *out = LeaseRequest{seconds, std::move(token)};
      break;
    }
    case EventId::kLeaseResponse: {
      if (p[1] > 1) {
        return absl::InvalidArgumentError(
            absl::StrFormat("LeaseResponse granted byte %u is not 0 or 1", p[1]));
      }
      const size_t text_at = size_t{7} + p[6];
      *out = LeaseResponse{p[1] == 1, GetU32(p + 2),
                           std::string(reinterpret_cast<const char*>(p + 7), p[6]),
                           std::string(reinterpret_cast<const char*>(p + text_at + 1), p[text_at])};
      break;
    }
    case EventId::kResumeRequest: {
      std::string token(reinterpret_cast<const char*>(p + 2), p[1]);
      if (!TokenOrEmpty(token, kResumeTokenLen)) {
        return absl::InvalidArgumentError(
            "ResumeRequest token is not 32 hex digits (a session's token, or empty)");
      }
      *out = ResumeRequest{std::move(token), GetU64(p + 2 + p[1])};
      break;
    }
    case EventId::kResumeResponse: {
      if (p[1] > 2) {
        return absl::InvalidArgumentError(
            absl::StrFormat("ResumeResponse status %u is not 0, 1 or 2", p[1]));
      }
      const size_t text_at = size_t{27} + p[26];
      *out =
          ResumeResponse{static_cast<ResumeStatus>(p[1]),
                         GetU32(p + 2),
                         GetU32(p + 6),
                         GetU64(p + 10),
                         GetU64(p + 18),
                         std::string(reinterpret_cast<const char*>(p + 27), p[26]),
                         std::string(reinterpret_cast<const char*>(p + text_at + 1), p[text_at])};
      break;
    }
  }
  return *size;
}

void StreamDecoder::Append(absl::Span<const uint8_t> bytes) {
  if (head_ > 0 && head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ > 4096 && head_ * 2 > buffer_.size()) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::string StreamDecoder::Take() {
  std::string rest(reinterpret_cast<const char*>(buffer_.data()) + head_, buffer_.size() - head_);
  buffer_.clear();
  head_ = 0;
  return rest;
}

absl::StatusOr<std::optional<Event>> StreamDecoder::Next() {
  if (!error_.ok()) return error_;
  Event event;
  absl::StatusOr<size_t> used = DecodeEvent(absl::MakeConstSpan(buffer_).subspan(head_), &event);
  if (!used.ok()) {
    error_ = used.status();
    return error_;
  }
  if (*used == 0) return std::nullopt;
  head_ += *used;
  return std::optional<Event>(std::move(event));
}

}  // namespace canserver::v5
