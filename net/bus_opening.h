// What a session settles when its client opens a bus, apart from subscribing: which channel a
// socketcand client named, the bus's bit rate under --bitrate-policy (core/bitrate_policy.h:
// the bus's own rate decides, not the client's wish), and the words of the log line and of the
// client's reply (BusResponse, socketcand's "< ok >").
//
// Owning io thread of the session; the channel's backend calls are thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "io/can_backend.h"
#include "io/can_channel.h"
#include "net/server_options.h"

namespace canserver {

// The channel called `name` among `channels`, or an error listing those served.
absl::StatusOr<CanChannel*> FindChannel(absl::Span<CanChannel* const> channels,
                                        absl::string_view name);

struct BusOpening {
  BusTiming timing;       // after the policy ran (the client's rate set where it may be)
  std::string rate;       // "500000 bit/s" and how it relates to what was asked
  std::string log_state;  // ", error-active (tx errors 0, rx errors 0)", or ""
};

// Applies the bit-rate policy to `asked` (0: no wish). An error names why the client cannot
// have its rate and the flag that decides. `who` ("session 3 (192.0.2.7:51234)") is for the
// log line when the rate is set. `not_configure`: the client's role when it may not change the
// bit rate (--access; "" when it may): --bitrate-policy apply then checks instead.
absl::StatusOr<BusOpening> SettleBitrate(CanChannel& channel, const ServerOptions& options,
                                         int32_t asked, absl::string_view who,
                                         absl::string_view not_configure = "");

// The reply's text: the channel, its rate, its state when that is not error-active (the
// plugin's bus.state), canserver's version.
std::string OpenReply(const CanChannel& channel, const BusOpening& opening);

}  // namespace canserver
