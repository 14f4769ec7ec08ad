#include "core/text_format.h"

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace canserver {
namespace {

bool ParseHex(absl::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 8) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleHexAtoi(text, out);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

}  // namespace

absl::StatusOr<CanFrame> ParseCansend(absl::string_view text) {
  const size_t hash = text.find('#');
  if (hash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s': expected <can_id>#<data>, e.g. 123#DEADBEEF", text));
  }
  const absl::string_view id_text = text.substr(0, hash);
  absl::string_view data = text.substr(hash + 1);
  CanFrame frame;
  uint32_t id = 0;
  if ((id_text.size() != 3 && id_text.size() != 8) || !ParseHex(id_text, &id)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s': the id must be 3 hex digits (standard) or 8 (extended)", text));
  }
  if (id_text.size() == 8) {
    if (id > kCanExtIdMax) {
      return absl::InvalidArgumentError(absl::StrFormat("'%s': id is wider than 29 bits", text));
    }
    frame.flags |= kCanFlagExtended;
  } else if (id > kCanStdIdMax) {
    return absl::InvalidArgumentError(absl::StrFormat("'%s': standard id is over 7FF", text));
  }
  frame.id = id;
  const bool fd = !data.empty() && data[0] == '#';
  if (fd) {
    // "##<flags nibble><data>": bit 0 BRS, bit 1 ESI (bit 2, CANFD_FDF, is implied).
    if (data.size() < 2 || !absl::ascii_isxdigit(static_cast<unsigned char>(data[1]))) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "'%s': a CAN FD frame is <can_id>##<flags><data>, flags one hex digit (1 BRS, 2 ESI)",
          text));
    }
    const int nibble = HexValue(data[1]);
    if (nibble & ~0x7) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "'%s': CAN FD flags digit %c has bits other than 1 BRS, 2 ESI, 4 FDF", text, data[1]));
    }
    frame.flags |= kCanFlagFd;
    if (nibble & 0x1) frame.flags |= kCanFlagBrs;
    if (nibble & 0x2) frame.flags |= kCanFlagEsi;
    data.remove_prefix(2);
  }
  if (!fd && !data.empty() && (data[0] == 'R' || data[0] == 'r')) {
    frame.flags |= kCanFlagRemote;
    if (data.size() == 2 && data[1] >= '0' && data[1] <= '8') {
      frame.len = static_cast<uint8_t>(data[1] - '0');
    } else if (data.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s': remote frame is #R or #R<dlc>", text));
    }
    return frame;
  }
  std::string digits;
  for (char c : data) {
    if (c == '.') continue;
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrFormat("'%s': '%c' is not a hex digit", text, c));
    }
    digits.push_back(c);
  }
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("'%s': odd number of data digits", text));
  }
  const size_t max_len = fd ? kCanFdMaxLen : kCanClassicMaxLen;
  if (digits.size() > 2 * max_len) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s': more than %d data bytes", text, max_len));
  }
  for (size_t i = 0; i < digits.size(); i += 2) {
    frame.data[frame.len++] =
        static_cast<uint8_t>(HexValue(digits[i]) * 16 + HexValue(digits[i + 1]));
  }
  // As cansend does: an FD payload between two FD lengths is padded with zeros to the next.
  while (fd && !IsCanFdLength(frame.len)) frame.data[frame.len++] = 0;
  return frame;
}

std::string FormatCansend(const CanFrame& frame) {
  std::string out;
  if (frame.error()) {
    out = absl::StrFormat("%08X#", frame.id | 0x20000000u);  // CAN_ERR_FLAG, as candump prints it
  } else if (frame.extended()) {
    out = absl::StrFormat("%08X#", frame.id);
  } else {
    out = absl::StrFormat("%03X#", frame.id);
  }
  if (frame.fd()) {
    // candump -L: "##" and the flags nibble (1 BRS, 2 ESI), then the data.
    absl::StrAppendFormat(
        &out, "#%X", ((frame.flags & kCanFlagBrs) ? 1 : 0) | ((frame.flags & kCanFlagEsi) ? 2 : 0));
  } else if (frame.remote()) {
    out += 'R';
    if (frame.len > 0) absl::StrAppend(&out, frame.len);
    return out;
  }
  for (uint8_t i = 0; i < frame.len && i < kCanFdMaxLen; ++i)
    absl::StrAppendFormat(&out, "%02X", frame.data[i]);
  return out;
}

std::string FormatLogLine(const CanFrame& frame, absl::string_view ifname) {
  const int64_t secs = frame.timestamp_ns / 1'000'000'000;
  const int64_t micros = (frame.timestamp_ns % 1'000'000'000) / 1000;
  return absl::StrFormat("(%010d.%06d) %s %s", secs, micros, ifname, FormatCansend(frame));
}

std::string ChannelNameFromInfo(absl::string_view info) {
  const size_t start = info.find("channel '");
  if (start == absl::string_view::npos) return "can0";
  const size_t name = start + 9;
  const size_t end = info.find('\'', name);
  if (end == absl::string_view::npos || end == name) return "can0";
  return std::string(info.substr(name, end - name));
}

int64_t BitrateFromInfo(absl::string_view info) {
  const size_t unit = info.find(" bit/s");
  if (unit == absl::string_view::npos || info.find("no bit timing") != absl::string_view::npos) {
    return 0;
  }
  size_t start = unit;
  while (start > 0 && absl::ascii_isdigit(static_cast<unsigned char>(info[start - 1]))) --start;
  int64_t rate = 0;
  return absl::SimpleAtoi(info.substr(start, unit - start), &rate) ? rate : 0;
}

std::string CandumpFormat::Line(const CanFrame& frame) {
  // candump.c: " " [timestamp "(…) "] " " ifname "  " then lib.c's sprint_long_canframe.
  std::string line = " ";
  const int64_t us = frame.timestamp_ns / 1000;
  switch (timestamps_) {
    case 'a':
      absl::StrAppendFormat(&line, "(%010d.%06d) ", us / 1'000'000, us % 1'000'000);
      break;
    case 'A': {
      const time_t secs = static_cast<time_t>(us / 1'000'000);
      tm local;
      ::localtime_r(&secs, &local);
      char date[32];
      std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &local);
      absl::StrAppendFormat(&line, "(%s.%06d) ", date, us % 1'000'000);
      break;
    }
    case 'd':
    case 'z': {
      if (first_us_ < 0) first_us_ = last_us_ = us;
      const int64_t diff = std::max<int64_t>(0, us - (timestamps_ == 'd' ? last_us_ : first_us_));
      absl::StrAppendFormat(&line, "(%03d.%06d) ", diff / 1'000'000, diff % 1'000'000);
      last_us_ = us;
      break;
    }
    default:
      break;
  }
  absl::StrAppend(&line, " ", ifname_);
  if (extra_) {
    static constexpr const char* kFlags[] = {"- -", "B -", "- E", "B E"};
    const int bits = ((frame.flags & kCanFlagBrs) ? 1 : 0) | ((frame.flags & kCanFlagEsi) ? 2 : 0);
    absl::StrAppend(&line, "  RX ", kFlags[bits]);
  }
  line += "  ";
  // Once an extended frame was seen, standard ids are indented (error frames do not count).
  if (frame.extended() && !frame.error()) indent_standard_ = true;
  if (frame.error()) {
    absl::StrAppendFormat(&line, "%08X  ", (frame.id & 0x1FFFFFFF) | 0x20000000);
  } else if (frame.extended()) {
    absl::StrAppendFormat(&line, "%08X  ", frame.id);
  } else {
    // Literal formats only (clang checks them at compile time).
    if (indent_standard_) line += "     ";
    absl::StrAppendFormat(&line, "%03X  ", frame.id);
  }
  const size_t len = frame.len;
  if (!frame.fd()) {
    absl::StrAppendFormat(&line, " [%d] ", len);
    if (frame.remote()) return line + " remote request";
  } else {
    absl::StrAppendFormat(&line, "[%02d] ", len);
  }
  for (size_t i = 0; i < len; ++i) absl::StrAppendFormat(&line, " %02X", frame.data[i]);
  if (frame.error() && len <= kCanClassicMaxLen) {
    absl::StrAppendFormat(&line, "%*s", static_cast<int>(3 * (8 - len) + 13), "ERRORFRAME");
  }
  return line;
}

absl::StatusOr<CanFilter> ParseFilter(absl::string_view text) {
  const size_t colon = text.find(':');
  uint32_t id = 0;
  uint32_t mask = 0;
  if (colon == absl::string_view::npos || !ParseHex(text.substr(0, colon), &id) ||
      !ParseHex(text.substr(colon + 1), &mask)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("filter '%s': expected <can_id>:<can_mask> in hex, e.g. 123:7FF", text));
  }
  CanFilter filter{id & kCanExtIdMax, mask & kCanExtIdMax, std::nullopt};
  if (mask & 0x80000000u) filter.extended = (id & 0x80000000u) != 0;
  return filter;
}

std::string ReadableFilters(absl::string_view filters_text) {
  std::string out;
  for (absl::string_view word : absl::StrSplit(filters_text, ' ', absl::SkipEmpty())) {
    if (!out.empty()) out += ", ";
    absl::StatusOr<CanFilter> f = ParseFilter(word);
    if (!f.ok()) {
      out.append(word.data(), word.size());
      continue;
    }
    const char* type = !f->extended.has_value() ? "either type"
                       : *f->extended           ? "extended"
                                                : "standard";
    absl::StrAppendFormat(&out, "%X:%X %s", f->can_id, f->can_mask, type);
  }
  return out.empty() ? "everything" : out;
}

std::string FormatFilters(const FilterSet& filters) {
  std::string out;
  for (const CanFilter& f : filters.filters()) {
    uint32_t id = f.can_id;
    uint32_t mask = f.can_mask;
    if (f.extended.has_value()) {
      mask |= 0x80000000u;
      if (*f.extended) id |= 0x80000000u;
    }
    absl::StrAppendFormat(&out, "%s%X:%X", out.empty() ? "" : " ", id, mask);
  }
  return out;
}

}  // namespace canserver
