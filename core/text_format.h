// The text forms of frames and filters that can-utils users type and read:
//   cansend syntax     "123#DEADBEEF", "1ABCDEF0#11.22", "123#R", "123#R8", FD "123##1DEADBEEF"
//   candump -L lines   "(1700000000.123456) can0 123#DEADBEEF"
//   candump filters    "123:7FF" (either id type), "80000123:9FFFFFFF" (bit 31: extended only)
// Pure functions; any thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/filter.h"
#include "core/frame.h"

namespace canserver {

// Parses cansend's "<id>#<data>": 3 hex digits = standard id, 8 = extended; data is up to 8 hex
// bytes, optionally separated by '.'; "#R" (optionally with a dlc digit) is a remote frame.
// CAN FD is "<id>##<flags><data>": one hex digit of flags (1 BRS, 2 ESI) and up to 64 bytes,
// padded with zeros to the next CAN FD length as cansend does.
absl::StatusOr<CanFrame> ParseCansend(absl::string_view text);

// "123#DEADBEEF" as candump -L and cansend write it (error frames: id with bit 29 set, 8 digits;
// FD frames "123##1DEADBEEF" with the flags digit).
std::string FormatCansend(const CanFrame& frame);

// "(seconds.micros) ifname frame" — candump -L / canplayer / python-can's log reader format.
std::string FormatLogLine(const CanFrame& frame, absl::string_view ifname);

// "can0" from a BusResponse's channel info ("socketcan channel 'can0', 500000 bit/s …"); "can0"
// when it names none (another server's text).
std::string ChannelNameFromInfo(absl::string_view info);
// The bus's bit rate from the same text; 0 where it has none ("no bit timing").
int64_t BitrateFromInfo(absl::string_view info);

// candump's screen format (can-utils 2020.11, Debian 12's, without -L), byte for byte:
//   "  can0  123   [3]  11 22 33"                      no timestamp
//   " (1700000000.123456)  can0  1ABCDEF0   [0] "       -t a (-t A: local date and time)
//   " (000.000120)  can0       123   [4]  remote request" -t d / -t z, after an extended frame
//   "  can0  123  [12]  00 01 02 … 0B"                 CAN FD: two-digit length
//   "  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME"
// It remembers the first and the previous frame's time (-t z, -t d) and whether an extended frame
// was seen (candump indents standard ids from then on). One per output stream.
class CandumpFormat {
 public:
  // `timestamps`: 0 (none), 'a', 'A', 'd' or 'z' as candump's -t; `extra`: candump -x ("RX"
  // and the FD flags: every frame a client gets was received from the bus).
  CandumpFormat(char timestamps, bool extra, std::string ifname)
      : timestamps_(timestamps), extra_(extra), ifname_(std::move(ifname)) {}
  std::string Line(const CanFrame& frame);  // without the newline

 private:
  char timestamps_;
  bool extra_;
  std::string ifname_;
  bool indent_standard_ = false;
  int64_t first_us_ = -1;
  int64_t last_us_ = -1;
};

// candump's "<can_id>:<can_mask>" in hex. Bit 31 set in the mask makes the id type matter, and
// bit 31 of the id then selects extended (as CAN_EFF_FLAG does for candump).
absl::StatusOr<CanFilter> ParseFilter(absl::string_view text);

// The filters in that syntax, space-separated ("" for none: everything passes).
std::string FormatFilters(const FilterSet& filters);

// That text for people, the id type spelled out instead of bit 31: "100:7FF standard",
// "1ABCDEF0:1FFFFFFF extended", "100:700 either type", comma-separated; "everything" for none.
// A word it cannot parse is shown as it is.
std::string ReadableFilters(absl::string_view filters_text);

}  // namespace canserver
