#include "core/socketcand_codec.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace canserver::socketcand {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char* PutHexByte(char* p, uint8_t b) {
  *p++ = kHex[b >> 4];
  *p++ = kHex[b & 0xF];
  return p;
}

char* PutText(char* p, absl::string_view text) {
  std::copy(text.begin(), text.end(), p);
  return p + text.size();
}

// "%03X" for standard ids, "%08X" for extended ones (and error classes), as socketcand writes.
char* PutId(char* p, uint32_t id, int digits) {
  int n = 1;
  while (n < 8 && (id >> (4 * n)) != 0) ++n;
  n = std::max(n, digits);
  for (int i = n - 1; i >= 0; --i) *p++ = kHex[(id >> (4 * i)) & 0xF];
  return p;
}

char* PutDecimal(char* p, uint64_t v, int min_digits) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 || n < min_digits);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

// " SECONDS.MICROSECONDS". Frames of one batch share their second: its digits are kept per
// thread (an io thread formats many frames in a row).
char* PutTimestamp(char* p, int64_t ns) {
  thread_local uint64_t cached_secs = UINT64_MAX;
  thread_local char cached[24];
  thread_local size_t cached_len = 0;
  const uint64_t t = ns > 0 ? static_cast<uint64_t>(ns) : 0;
  const uint64_t secs = t / 1'000'000'000;
  if (secs != cached_secs) {
    cached_secs = secs;
    cached_len = static_cast<size_t>(PutDecimal(cached, secs, 1) - cached);
  }
  *p++ = ' ';
  p = PutText(p, absl::string_view(cached, cached_len));
  *p++ = '.';
  uint32_t us = static_cast<uint32_t>(t % 1'000'000'000 / 1000);
  for (int i = 5; i >= 0; --i) {
    p[i] = static_cast<char>('0' + us % 10);
    us /= 10;
  }
  return p + 6;
}

char* PutFrameId(char* p, const CanFrame& frame) {
  return PutId(p, frame.id, frame.extended() ? 8 : 3);
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

ElementParser::Kind ElementParser::Garbage(std::string error, State next) {
  error_ = std::move(error);
  element_.clear();
  state_ = next;
  return Kind::kGarbage;
}

ElementParser::Kind ElementParser::Next(absl::string_view in, size_t* pos) {
  if (complete_) {
    element_.clear();
    complete_ = false;
  }
  while (*pos < in.size()) {
    if (state_ == State::kInside) {
      // The run of plain printable bytes up to the next one that needs a look, in one append.
      size_t end = *pos;
      while (end < in.size() && in[end] > 0x20 && in[end] < 0x7F && in[end] != '<' &&
             in[end] != '>') {
        ++end;
      }
      element_.append(in.data() + *pos, end - *pos);
      *pos = end;
      if (element_.size() > kMaxElementLength) {
        return Garbage(absl::StrFormat("element longer than %d bytes", kMaxElementLength),
                       State::kSkipElement);
      }
      if (*pos == in.size()) break;
    }
    const char c = in[(*pos)++];
    switch (state_) {
      case State::kBetween:
        if (c == '<') {
          state_ = State::kInside;
        } else if (!IsSpace(c)) {
          return Garbage(absl::StrFormat("expected the start of an element, got '%s' between "
                                         "elements",
                                         absl::CHexEscape(absl::string_view(&c, 1))),
                         State::kSkipGarbage);
        }
        break;
      case State::kSkipGarbage:
        if (c == '<') state_ = State::kInside;
        break;
      case State::kSkipElement:
        if (c == '>') state_ = State::kBetween;
        break;
      case State::kInside:
        if (c == '>') {
          state_ = State::kBetween;
          element_ = std::string(absl::StripAsciiWhitespace(element_));
          complete_ = true;
          return Kind::kElement;
        }
        if (c == '<') {
          // The element before was cut short; this '<' opens the next one.
          return Garbage(
              "an element began before the last one ended (its closing bracket is "
              "missing)",
              State::kInside);
        }
        if (IsSpace(c)) {
          element_.push_back(' ');
        } else if (c < 0x20 || c > 0x7E) {
          return Garbage(absl::StrFormat("byte 0x%02X inside an element (printable ASCII only)",
                                         static_cast<uint8_t>(c)),
                         State::kSkipElement);
        } else {
          element_.push_back(c);
        }
        if (element_.size() > kMaxElementLength) {
          return Garbage(absl::StrFormat("element longer than %d bytes", kMaxElementLength),
                         State::kSkipElement);
        }
        break;
    }
  }
  return Kind::kNeedMore;
}

std::vector<absl::string_view> Words(absl::string_view element) {
  return absl::StrSplit(element, ' ', absl::SkipEmpty());
}

absl::StatusOr<ParsedId> ParseId(absl::string_view word) {
  if (word.empty() || word.size() > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("CAN id '", word, "': 1 to 8 hex digits expected"));
  }
  uint32_t id = 0;
  for (char c : word) {
    const int v = HexValue(c);
    if (v < 0) return absl::InvalidArgumentError(absl::StrCat("CAN id '", word, "' is not hex"));
    id = id << 4 | static_cast<uint32_t>(v);
  }
  if (id > kCanExtIdMax) {
    return absl::InvalidArgumentError(absl::StrFormat("CAN id %X is longer than 29 bits", id));
  }
  return ParsedId{id, word.size() == 8 || id > kCanStdIdMax};
}

absl::StatusOr<uint8_t> ParseHexByte(absl::string_view word) {
  if (word.empty() || word.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat("data byte '", word, "': 1 or 2 hex digits"));
  }
  int value = 0;
  for (char c : word) {
    const int v = HexValue(c);
    if (v < 0) return absl::InvalidArgumentError(absl::StrCat("data byte '", word, "' is not hex"));
    value = value << 4 | v;
  }
  return static_cast<uint8_t>(value);
}

absl::StatusOr<uint64_t> ParseDecimal(absl::string_view word, uint64_t max,
                                      absl::string_view what) {
  uint64_t value = 0;
  bool ok = !word.empty() && word.size() <= 19;
  for (char c : word) {
    if (c < '0' || c > '9') ok = false;
    if (ok) value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", word, "': a decimal number from 0 to ", max, " expected"));
  }
  return value;
}

absl::StatusOr<uint32_t> ParseHex(absl::string_view word, uint32_t max, absl::string_view what) {
  uint32_t value = 0;
  bool ok = !word.empty() && word.size() <= 8;
  for (char c : word) {
    const int v = HexValue(c);
    if (v < 0) ok = false;
    if (ok) value = value << 4 | static_cast<uint32_t>(v);
  }
  if (!ok || value > max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s '%s': hex up to %X expected", what, word, max));
  }
  return value;
}

absl::StatusOr<std::string> ParseHexRun(absl::string_view word, size_t max) {
  if (word.size() % 2 != 0 || word.size() / 2 > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "hex data of %d digits: an even number of digits, at most %d bytes", word.size(), max));
  }
  std::string bytes(word.size() / 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int hi = HexValue(word[2 * i]);
    const int lo = HexValue(word[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("hex data: '%s' is not hex", word.substr(2 * i, 2)));
    }
    bytes[i] = static_cast<char>(hi << 4 | lo);
  }
  return bytes;
}

size_t FormatRawFrame(const CanFrame& frame, char* out) {
  char* p = out;
  if (frame.error()) {
    p = PutText(p, "< error ");
    p = PutId(p, frame.id, 8);
    p = PutTimestamp(p, frame.timestamp_ns);
    *p++ = ' ';
    for (uint8_t i = 0; i < frame.len && i < kCanClassicMaxLen; ++i)
      p = PutHexByte(p, frame.data[i]);
  } else if (frame.remote()) {
    p = PutText(p, "< rtr ");
    p = PutFrameId(p, frame);
    p = PutTimestamp(p, frame.timestamp_ns);
    *p++ = ' ';
    p = PutDecimal(p, frame.len, 1);
  } else if (frame.fd()) {
    p = PutText(p, "< fdframe ");
    p = PutFrameId(p, frame);
    *p++ = ' ';
    // The kernel's canfd_frame flags: CANFD_BRS 01, CANFD_ESI 02, CANFD_FDF 04.
    const uint8_t flags = static_cast<uint8_t>(0x04 | ((frame.flags & kCanFlagBrs) ? 0x01 : 0) |
                                               ((frame.flags & kCanFlagEsi) ? 0x02 : 0));
    p = PutHexByte(p, flags);
    p = PutTimestamp(p, frame.timestamp_ns);
    *p++ = ' ';
    for (uint8_t i = 0; i < frame.len; ++i) p = PutHexByte(p, frame.data[i]);
  } else {
    p = PutText(p, "< frame ");
    p = PutFrameId(p, frame);
    p = PutTimestamp(p, frame.timestamp_ns);
    *p++ = ' ';
    for (uint8_t i = 0; i < frame.len; ++i) p = PutHexByte(p, frame.data[i]);
  }
  p = PutText(p, " >");
  return static_cast<size_t>(p - out);
}

size_t FormatBcmFrame(const CanFrame& frame, char* out) {
  if (frame.remote() || frame.fd() || frame.error()) return FormatRawFrame(frame, out);
  char* p = PutText(out, "< frame ");
  p = PutFrameId(p, frame);
  p = PutTimestamp(p, frame.timestamp_ns);
  *p++ = ' ';
  for (uint8_t i = 0; i < frame.len; ++i) {
    p = PutHexByte(p, frame.data[i]);
    *p++ = ' ';
  }
  p = PutText(p, " >");
  return static_cast<size_t>(p - out);
}

namespace {
// "1470925506.062124" → nanoseconds.
absl::StatusOr<int64_t> ParseSeconds(absl::string_view word) {
  const size_t dot = word.find('.');
  uint64_t secs = 0;
  uint64_t frac = 0;
  int digits = 0;
  bool ok = !word.empty() && dot != 0;
  for (size_t i = 0; i < word.size() && ok; ++i) {
    if (i == dot) continue;
    if (word[i] < '0' || word[i] > '9') ok = false;
    if (dot == absl::string_view::npos || i < dot) {
      secs = secs * 10 + static_cast<uint64_t>(word[i] - '0');
      ok = ok && secs < 10'000'000'000ull;
    } else if (digits < 9) {
      frac = frac * 10 + static_cast<uint64_t>(word[i] - '0');
      ++digits;
    }
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("timestamp '", word, "'"));
  while (digits++ < 9) frac *= 10;
  return static_cast<int64_t>(secs * 1'000'000'000 + frac);
}
}  // namespace

absl::StatusOr<CanFrame> ParseFrameElement(absl::string_view element) {
  // Split by hand: this runs once per frame in clients (canbench). 4 words + 8 data bytes one per
  // word (BCM form) at most; FD data comes as one run.
  absl::string_view w[4 + kCanClassicMaxLen];
  size_t n = 0;
  for (size_t i = 0; i < element.size();) {
    while (i < element.size() && element[i] == ' ') ++i;
    const size_t start = i;
    while (i < element.size() && element[i] != ' ') ++i;
    if (i > start) {
      if (n == std::size(w)) return absl::InvalidArgumentError("frame element: too many words");
      w[n++] = element.substr(start, i - start);
    }
  }
  const bool fd = n > 0 && w[0] == "fdframe";
  const size_t ts_at = fd ? 3 : 2;
  if (n < ts_at + 1 || (w[0] != "frame" && w[0] != "rtr" && !fd)) {
    return absl::InvalidArgumentError(absl::StrCat("not a frame: '", element, "'"));
  }
  CanFrame f;
  auto id = ParseId(w[1]);
  if (!id.ok()) return id.status();
  f.id = id->id;
  f.flags = id->extended ? kCanFlagExtended : 0;
  auto ts = ParseSeconds(w[ts_at]);
  if (!ts.ok()) return ts.status();
  f.timestamp_ns = *ts;
  if (w[0] == "rtr") {
    if (n != 4) return absl::InvalidArgumentError("rtr: ID SECONDS DLC expected");
    auto dlc = ParseDecimal(w[3], kCanClassicMaxLen, "dlc");
    if (!dlc.ok()) return dlc.status();
    f.flags |= kCanFlagRemote;
    f.len = static_cast<uint8_t>(*dlc);
    return f;
  }
  if (fd) {
    auto flags = ParseHexByte(w[2]);
    if (!flags.ok()) return flags.status();
    f.flags = static_cast<uint8_t>(f.flags | kCanFlagFd | ((*flags & 0x01) ? kCanFlagBrs : 0) |
                                   ((*flags & 0x02) ? kCanFlagEsi : 0));
  }
  // Data: one run of hex digits (raw mode) or a word per byte (BCM mode, one or two digits).
  const size_t max = fd ? kCanFdMaxLen : kCanClassicMaxLen;
  size_t len = 0;
  for (size_t i = ts_at + 1; i < n; ++i) {
    absl::string_view word = w[i];
    if (word.size() == 1) {
      auto b = ParseHexByte(word);
      if (!b.ok() || len == max) return absl::InvalidArgumentError("frame element: bad data");
      f.data[len++] = *b;
      continue;
    }
    if (word.size() % 2 != 0 || len + word.size() / 2 > max) {
      return absl::InvalidArgumentError("frame element: bad data length");
    }
    for (size_t k = 0; k < word.size(); k += 2) {
      const int hi = HexValue(word[k]);
      const int lo = HexValue(word[k + 1]);
      if (hi < 0 || lo < 0) return absl::InvalidArgumentError("frame element: data is not hex");
      f.data[len++] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
  if (fd && !IsCanFdLength(static_cast<uint8_t>(len))) {
    return absl::InvalidArgumentError("fdframe: not a CAN FD length");
  }
  f.len = static_cast<uint8_t>(len);
  return f;
}

std::string ErrorElement(absl::string_view text) {
  std::string clean(text);
  for (char& c : clean) {
    if (c == '<') c = '(';
    if (c == '>') c = ')';
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) c = '?';
  }
  return absl::StrCat("< error ", clean, " >");
}

}  // namespace canserver::socketcand
