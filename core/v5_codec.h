// Remote CAN protocol version 5, and version 6 (v5 plus CAN FD): event types, encoder and
// incremental stream decoder.
//
// Wire format (docs/protocol.md): a stream of events, each a 1-byte id followed by a payload whose
// length follows from the id; integers are big-endian. There is no framing, so the decoder must
// know every event's layout and stops at the first byte it cannot understand.
//
//   uint8_t wire[v5::kCanMessageSize];
//   v5::EncodeCanMessage(frame, wire);              // hot path: 23 bytes, no allocation
//   v5::StreamDecoder dec;
//   dec.Append(bytes);
// (tests/core/header_examples_test.cc compiles these examples.)
//   while (true) {
//     auto ev = dec.Next();                         // error, nullopt (need more bytes) or an event
//     if (!ev.ok() || !ev->has_value()) break;
//   }
//
// Pure functions and single-owner objects: a StreamDecoder belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/filter.h"
#include "core/frame.h"

namespace canserver::v5 {

inline constexpr uint8_t kProtocolVersion = 5;
// Version 6 = version 5 plus CAN FD: the events CanFdMessage (11) and PeriodicFdMessageStart (12).
// Everything else, classic CanMessages included, is byte for byte as in version 5.
inline constexpr uint8_t kProtocolVersionFd = 6;
inline constexpr uint16_t kDefaultPort = 54701;

enum class EventId : uint8_t {
  kBusRequest = 1,
  kBusResponse = 2,
  kCanMessage = 3,
  kTransmitSuccess = 4,
  kTransmitFail = 5,
  kRemoteException = 6,
  kPeriodicMessageStart = 7,
  kPeriodicMessageStop = 8,
  kFilterConfig = 10,
  kCanFdMessage = 11,            // version 6 only
  kPeriodicFdMessageStart = 12,  // version 6 only
  kLeaseRequest = 13,            // canserver: an exclusive transmit lease (docs/security.md)
  kLeaseResponse = 14,           // canserver
  kResumeRequest = 15,           // canserver: a session that survives its connection
  kResumeResponse = 16,          // canserver
  kConnectionClosed = 255,
};

// Sizes on the wire, id byte included.
inline constexpr size_t kCanMessageSize = 23;
inline constexpr size_t kPeriodicStartSize = 23;
inline constexpr size_t kCanFdHeaderSize = 15;  // CanFdMessage without its data
inline constexpr size_t kMaxCanFdMessageSize = kCanFdHeaderSize + kCanFdMaxLen;  // 79
inline constexpr size_t kPeriodicFdHeaderSize = 15;
inline constexpr size_t kMaxStringLen = 255;
inline constexpr size_t kMaxEventSize = 2 + 8 * kMaxFilters;  // FilterConfig with 255 filters
inline constexpr size_t kLeaseTokenLen = 32;                  // hex digits
inline constexpr size_t kResumeTokenLen = 32;                 // hex digits

// CanMessage flag bits on the wire.
inline constexpr uint8_t kWireExtended = 0x01;
inline constexpr uint8_t kWireRemote = 0x02;
inline constexpr uint8_t kWireError = 0x04;
// CanFdMessage flag bits on the wire (the same values as CanFrame's kCanFlag*).
inline constexpr uint8_t kWireFd = 0x08;   // always set in CanFdMessage
inline constexpr uint8_t kWireBrs = 0x10;  // bit rate switch
inline constexpr uint8_t kWireEsi = 0x20;  // error state indicator

struct BusRequest {
  uint8_t version = kProtocolVersion;
  int32_t bitrate = 0;
  friend bool operator==(const BusRequest&, const BusRequest&) = default;
};
struct BusResponse {
  std::string channel_info;
  friend bool operator==(const BusResponse&, const BusResponse&) = default;
};
struct CanMessage {
  CanFrame frame;  // classic frames only; timestamp travels as f64 Unix seconds
  friend bool operator==(const CanMessage& a, const CanMessage& b) {
    return a.frame == b.frame && a.frame.timestamp_ns == b.frame.timestamp_ns;
  }
};
struct TransmitSuccess {
  friend bool operator==(const TransmitSuccess&, const TransmitSuccess&) = default;
};
struct TransmitFail {
  friend bool operator==(const TransmitFail&, const TransmitFail&) = default;
};
struct RemoteException {
  std::string text;
  friend bool operator==(const RemoteException&, const RemoteException&) = default;
};
struct PeriodicMessageStart {
  int32_t period_ms = 0;
  int32_t duration_ms = 0;  // 0 = forever
  CanFrame frame;           // id, extended flag, len and data are used
  friend bool operator==(const PeriodicMessageStart&, const PeriodicMessageStart&) = default;
};
struct PeriodicMessageStop {
  uint32_t arbitration_id = 0;
  friend bool operator==(const PeriodicMessageStop&, const PeriodicMessageStop&) = default;
};
struct FilterConfig {
  std::vector<CanFilter> filters;
  friend bool operator==(const FilterConfig&, const FilterConfig&) = default;
};
struct CanFdMessage {
  CanFrame frame;  // FD frames only (kCanFlagFd set)
  friend bool operator==(const CanFdMessage& a, const CanFdMessage& b) {
    return a.frame == b.frame && a.frame.timestamp_ns == b.frame.timestamp_ns;
  }
};
struct PeriodicFdMessageStart {
  int32_t period_ms = 0;
  int32_t duration_ms = 0;  // 0 = forever
  CanFrame frame;           // an FD frame: id, extended, BRS, ESI, len and data are used
  friend bool operator==(const PeriodicFdMessageStart&, const PeriodicFdMessageStart&) = default;
};
// Takes (seconds > 0, no token), renews (the holder again), releases (seconds 0) or, with the
// token of the lease in force, joins the channel's lease.
struct LeaseRequest {
  int32_t seconds = 0;
  std::string token;  // "" or 32 hex digits
  friend bool operator==(const LeaseRequest&, const LeaseRequest&) = default;
};
struct LeaseResponse {
  bool granted = false;
  uint32_t remaining_ms = 0;  // of the lease in force; 0 when none is (a release)
  std::string token;          // granted: the lease's token
  std::string text;           // granted: the holder; refused: why, naming the holder
  friend bool operator==(const LeaseResponse&, const LeaseResponse&) = default;
};
// A session that outlives a broken connection (docs/protocol.md, "Resuming a session"). With no
// token, after the handshake: "keep this session for me if the connection breaks". With a token,
// as the first event of a new connection: "give me that session back; I received
// frames_received of its frames".
struct ResumeRequest {
  std::string token;  // "" or 32 hex digits
  uint64_t frames_received = 0;
  friend bool operator==(const ResumeRequest&, const ResumeRequest&) = default;
};
enum class ResumeStatus : uint8_t { kRefused = 0, kResumable = 1, kResumed = 2 };
struct ResumeResponse {
  ResumeStatus status = ResumeStatus::kRefused;
  uint32_t grace_ms = 0;            // how long the server keeps the session after a break
  uint32_t away_ms = 0;             // kResumed: how long the session had no connection
  uint64_t frames_lost = 0;         // kResumed: frames the client will never get
  uint64_t frames_from_client = 0;  // frames of the client's the server has received in all
  std::string token;                // kResumable, kResumed: the session's token
  std::string text;                 // what happened, or why not
  friend bool operator==(const ResumeResponse&, const ResumeResponse&) = default;
};
struct ConnectionClosed {
  friend bool operator==(const ConnectionClosed&, const ConnectionClosed&) = default;
};

using Event = std::variant<BusRequest, BusResponse, CanMessage, TransmitSuccess, TransmitFail,
                           RemoteException, PeriodicMessageStart, PeriodicMessageStop, FilterConfig,
                           ConnectionClosed, CanFdMessage, PeriodicFdMessageStart, LeaseRequest,
                           LeaseResponse, ResumeRequest, ResumeResponse>;

// "CanMessage", "BusRequest", ... for error messages.
absl::string_view EventName(EventId id);
absl::string_view EventName(const Event& event);

// Appends the wire form of `event`. Fails (appending nothing) when a field cannot be represented:
// an arbitration id wider than 29 bits (or 11 for a standard frame), a dlc over 8, an FD frame in
// a CanMessage, a classic frame, a remote frame or a length that is no FD length in a
// CanFdMessage, more than 255 filters. Strings over 255 bytes are cut at a UTF-8 boundary.
absl::Status Encode(const Event& event, std::string* out);

// Hot path: writes a CanMessage for `frame` into `out` (kCanMessageSize bytes). Returns false, and
// writes nothing, for frames that protocol v5 cannot carry (CAN FD). Never allocates.
bool EncodeCanMessage(const CanFrame& frame, uint8_t* out) noexcept;

// Hot path of a version 6 session: writes a CanMessage for a classic frame or a CanFdMessage for
// an FD frame into `out` (room for kMaxCanFdMessageSize bytes). Returns the bytes written, 0 for a
// frame no event can carry. Never allocates.
size_t EncodeFrameV6(const CanFrame& frame, uint8_t* out) noexcept;

// Cuts `text` to at most `max_bytes` without splitting a UTF-8 sequence.
absl::string_view TruncateUtf8(absl::string_view text, size_t max_bytes);

// Unix-seconds timestamps as protocol v5 carries them.
double NanosToSeconds(int64_t ns);
int64_t SecondsToNanos(double seconds);

// Decodes one event from the front of `in`. Returns the number of bytes it used, 0 when `in` holds
// only the start of an event, or an InvalidArgument error naming the problem (unknown event id,
// field out of range). Does not allocate for CanMessage and the fixed-size events.
absl::StatusOr<size_t> DecodeEvent(absl::Span<const uint8_t> in, Event* out);

// Incremental decoder over a byte stream. Append() bytes as they arrive, then call Next() until it
// returns nullopt (needs more bytes). After an error the stream is unusable and Next() repeats it.
class StreamDecoder {
 public:
  void Append(absl::Span<const uint8_t> bytes);
  void Append(absl::string_view bytes) {
    Append(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  absl::StatusOr<std::optional<Event>> Next();
  // Bytes of an incomplete event held back; non-zero at EOF means the peer cut an event short.
  size_t buffered() const { return buffer_.size() - head_; }
  // Takes the bytes held back (a resumed connection's, for the session it resumes).
  std::string Take();

 private:
  std::vector<uint8_t> buffer_;
  size_t head_ = 0;
  absl::Status error_;
};

}  // namespace canserver::v5
