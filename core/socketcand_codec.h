// socketcand's ASCII protocol (linux-can/socketcand, doc/protocol.md), the pieces without state:
// splitting the client's byte stream into elements "< … >", byte at a time, and the text of the
// frames canserver sends.
//
//   socketcand::ElementParser parser;
//   size_t pos = 0;
//   while (true) {
//     auto kind = parser.Next(bytes, &pos);            // kNeedMore: all of `bytes` consumed
//     if (kind == kElement) Handle(parser.element());  // "send 123 2 11 22"
//   }
//
// Frames to the client, as socketcand itself writes them (ids "%03X" standard, "%08X" extended):
//   raw mode   < frame 123 1470925506.062124 1122 >    data as one run of hex digits
//   BCM mode   < frame 123 1470925506.062124 11 22  >  one "XX " per byte, as the BCM state does
//   RTR        < rtr 123 1470925506.062124 2 >         (the document's form; socketcand drops RTR)
//   CAN FD     < fdframe 123 05 1470925506.062124 11223344… >  flags: 01 BRS, 02 ESI, 04 FD
//   error      < error 00000004 1470925506.062124 0004000000000000 >  class, then the 8 bytes
// Pure functions and a single-owner parser; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/frame.h"

namespace canserver::socketcand {

inline constexpr uint16_t kDefaultPort = 29536;
inline constexpr uint16_t kBeaconPort = 42000;
// The longest element accepted: a 4095-byte ISO-TP PDU in hex ("< sendpdu " + 8190 + " >") fits.
inline constexpr size_t kMaxElementLength = 8256;
// The longest element a frame becomes (a 64-byte CAN FD frame with an extended id).
inline constexpr size_t kMaxFrameElementLength = 192;

class ElementParser {
 public:
  enum class Kind { kNeedMore, kElement, kGarbage };

  // Consumes `in` from *pos, one byte at a time, until an element is complete (kElement), a
  // malformed one was dropped (kGarbage) or the input ends (kNeedMore, *pos == in.size()). An
  // element is '<', printable ASCII (tabs and line ends count as spaces), '>'. Whitespace between
  // elements is skipped; anything else there is garbage, reported once per run up to the next '<'.
  Kind Next(absl::string_view in, size_t* pos);
  // After kElement: what was between the brackets, whitespace-trimmed ("send 123 0").
  const std::string& element() const { return element_; }
  // After kGarbage: what was wrong, for `< error … >`.
  const std::string& error() const { return error_; }
  // Inside an element (bytes of it held), or skipping one.
  bool in_element() const { return state_ != State::kBetween; }
  size_t buffered() const { return element_.size(); }

 private:
  enum class State { kBetween, kInside, kSkipElement, kSkipGarbage };
  Kind Garbage(std::string error, State next);

  State state_ = State::kBetween;
  bool complete_ = false;  // element_ holds the last complete element
  std::string element_;
  std::string error_;
};

// The words of an element ("send 123 0" → {"send", "123", "0"}).
std::vector<absl::string_view> Words(absl::string_view element);

// A CAN id as socketcand's commands write it: 1..8 hex digits. Eight digits, or a value beyond
// 11 bits, make it extended (socketcand looks at the digit count only; python-can 4.1 writes
// extended ids without leading zeros, so the value counts too).
struct ParsedId {
  uint32_t id = 0;
  bool extended = false;
};
absl::StatusOr<ParsedId> ParseId(absl::string_view word);
// A hex byte, 1 or 2 digits ("f1", "1", "0A").
absl::StatusOr<uint8_t> ParseHexByte(absl::string_view word);
// A decimal number in [0, max].
absl::StatusOr<uint64_t> ParseDecimal(absl::string_view word, uint64_t max, absl::string_view what);
// 1..8 hex digits, at most `max` ("C", "200").
absl::StatusOr<uint32_t> ParseHex(absl::string_view word, uint32_t max, absl::string_view what);
// A run of hex digits, two per byte ("00112233…"), at most `max` bytes.
absl::StatusOr<std::string> ParseHexRun(absl::string_view word, size_t max);

// Appends the element for a received frame: raw mode's or the BCM state's form (see above).
// Returns the bytes written; `out` must have room for kMaxFrameElementLength.
size_t FormatRawFrame(const CanFrame& frame, char* out);
size_t FormatBcmFrame(const CanFrame& frame, char* out);
// The frame a received element stands for, its content as ElementParser gives it: "frame ID
// SECONDS DATA…" (data as one hex run or byte by byte), "rtr ID SECONDS DLC", "fdframe ID FLAGS
// SECONDS DATA". The client side of FormatRawFrame/FormatBcmFrame (canbench, tests).
absl::StatusOr<CanFrame> ParseFrameElement(absl::string_view element);

// "< error TEXT >", with '<' and '>' in TEXT replaced so the element stays one element.
std::string ErrorElement(absl::string_view text);

}  // namespace canserver::socketcand
