#include "core/frame.h"

#include "absl/strings/str_format.h"

namespace canserver {

std::string ToString(const CanFrame& frame) {
  std::string out =
      frame.extended() ? absl::StrFormat("%08X#", frame.id) : absl::StrFormat("%03X#", frame.id);
  if (frame.error()) out.insert(0, "ERR:");
  if (frame.remote()) {
    absl::StrAppendFormat(&out, "R%u", frame.len);
    return out;
  }
  for (uint8_t i = 0; i < frame.len && i < kCanFdMaxLen; ++i) {
    absl::StrAppendFormat(&out, "%02X", frame.data[i]);
  }
  return out;
}

}  // namespace canserver
