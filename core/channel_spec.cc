#include "core/channel_spec.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/python_can_names.h"

namespace canserver {

absl::StatusOr<ChannelSpec> ParseChannelSpec(absl::string_view text) {
  ChannelSpec spec;
  absl::string_view rest = text;
  // "virtual:", "socketcan:", or a python-can interface ("kvaser:0", "pcan:PCAN_USBBUS1:54703").
  if (const size_t colon = rest.find(':'); colon != absl::string_view::npos) {
    const absl::string_view backend = rest.substr(0, colon);
    if (backend == "virtual" || backend == "socketcan" || backend == "slcan" ||
        IsPythonCanHardwareInterface(backend)) {
      spec.backend = std::string(backend);
      rest.remove_prefix(colon + 1);
    }
  }
  if (const size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    int port = 0;
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &port) || port < 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "channel '%s': '%s' is not a port (0..65535)", text, rest.substr(colon + 1)));
    }
    spec.port = port;
    rest = rest.substr(0, colon);
  }
  // A serial device for slcan ("/dev/ttyACM0@115200"), else an interface name.
  const bool device = absl::StartsWith(rest, "/dev/") && rest.size() <= 255;
  if (rest.empty() || (rest.size() > 15 && !device) || absl::StrContains(rest, ':') ||
      (absl::StrContains(rest, '/') && !device) || absl::StrContains(rest, ' ')) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "channel '%s': want NAME[:PORT] with an interface name of 1..15 characters, e.g. can0 or "
        "can1:54702 (optionally virtual:NAME)",
        text));
  }
  spec.name = std::string(rest);
  return spec;
}

absl::Status AssignPorts(std::vector<ChannelSpec>& specs, int base_port) {
  std::set<std::string> names;
  std::set<int> taken;
  for (const ChannelSpec& s : specs) {
    if (!names.insert(s.backend + ":" + s.name).second) {
      return absl::InvalidArgumentError(absl::StrFormat("channel '%s' is listed twice", s.name));
    }
    if (s.port > 0 && !taken.insert(s.port).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("port %d is given to two channels", s.port));
    }
  }
  int next = base_port;
  for (ChannelSpec& s : specs) {
    if (s.port >= 0) continue;
    if (base_port == 0) {
      s.port = 0;
      continue;
    }
    while (taken.count(next) > 0) ++next;
    if (next > 65535) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "no free port left for channel '%s' (counting from %d)", s.name, base_port));
    }
    s.port = next;
    taken.insert(next++);
  }
  return absl::OkStatus();
}

}  // namespace canserver
