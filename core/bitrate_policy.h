// What a client's requested bit rate means (`canserver --bitrate-policy`), as pure logic:
//
//   check  (default) a client asking for a rate other than the bus's is refused with a
//          RemoteException naming both: nothing runs at the wrong speed silently. Rate 0, or a
//          bus without bit timing (vcan, the plain virtual bus), always passes.
//   ignore every client is let in; BusResponse still tells the bus's real rate.
//   apply  the server sets the bus to the requested rate, when no other client is on it (and it
//          has the right to: CAP_NET_ADMIN); otherwise the client is refused with the reason.
//
// Pure functions; Session calls them from its io thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canserver {

enum class BitratePolicy { kCheck, kIgnore, kApply };

absl::StatusOr<BitratePolicy> ParseBitratePolicy(absl::string_view text);

struct BitrateDecision {
  enum class Action { kAccept, kRefuse, kApply } action = Action::kAccept;
  std::string reason;  // for kRefuse: the RemoteException text
};

// `asked`: the client's BusRequest rate (0: any); `bus`: the bus's rate (0: no bit timing);
// `other_clients`: clients already on the channel.
BitrateDecision DecideBitrate(BitratePolicy policy, int32_t asked, int32_t bus,
                              size_t other_clients, absl::string_view channel);

// The rate part of BusResponse's text: "500000 bit/s" ("500000 bit/s, data 2000000 bit/s" for
// CAN FD), or for a bus without bit timing "no bit timing (asked 500000 bit/s)" — or `forced`
// (canserver --bitrate) where given.
std::string DescribeBitrate(int32_t bus, int32_t asked, int32_t forced, int32_t data_bus = 0);

}  // namespace canserver
