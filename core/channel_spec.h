// Which channels one canserver serves, and on which ports: `--channel NAME[:PORT]` (repeatable)
// and the sections of a config file both become ChannelSpecs.
//
//   "can0"              socketcan (or --interface's backend) channel can0, next free port
//   "can1:54710"        on port 54710
//   "virtual:bench"     the in-process virtual bus named "bench" whatever --interface says
//   "socketcan:vcan0:55000"
//   "kvaser:0", "pcan:PCAN_USBBUS1:54703"   python-can's names (core/python_can_names.h)
//   "slcan:/dev/ttyACM0@115200"   a serial-line adapter canserver attaches (io/slcan_attachment.h)
//
// Ports: a channel without one gets the next port counting from --port that no other channel
// names (so `--channel can0 --channel can1` serves can0 on 54701 and can1 on 54702). With
// --port 0 (tests) every such channel gets an ephemeral port.
//
// Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canserver {

struct ChannelSpec {
  std::string name;     // interface (socketcan), bus name (virtual) or python-can channel ("0")
  std::string backend;  // "socketcan", "virtual", a python-can interface ("kvaser"), or empty:
                        // the server's --interface
  int port = -1;        // -1: assign (AssignPorts); 0: any free port

  friend bool operator==(const ChannelSpec&, const ChannelSpec&) = default;
};

// Parses "NAME[:PORT]" with an optional "virtual:", "socketcan:" or python-can interface prefix.
// Errors name the text.
absl::StatusOr<ChannelSpec> ParseChannelSpec(absl::string_view text);

// Gives every spec without a port the next free one counting from `base_port` (0: leaves them
// at 0, any free port). Fails on a name served twice or a port given twice, and on ports past
// 65535.
absl::Status AssignPorts(std::vector<ChannelSpec>& specs, int base_port);

}  // namespace canserver
