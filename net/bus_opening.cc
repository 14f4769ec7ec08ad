#include "net/bus_opening.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/bitrate_policy.h"
#include "core/bus_state.h"
#include "core/log.h"
#include "core/version.h"

namespace canserver {

absl::StatusOr<CanChannel*> FindChannel(absl::Span<CanChannel* const> channels,
                                        absl::string_view name) {
  std::vector<std::string> names;
  for (CanChannel* c : channels) {
    if (c->backend().name() == name) return c;
    names.push_back(c->backend().name());
  }
  return absl::NotFoundError(absl::StrFormat("no channel '%s' here; this server serves %s", name,
                                             absl::StrJoin(names, ", ")));
}

absl::StatusOr<BusOpening> SettleBitrate(CanChannel& channel, const ServerOptions& options,
                                         int32_t asked, absl::string_view who,
                                         absl::string_view not_configure) {
  BusOpening out;
  out.timing = channel.backend().timing();
  const bool demoted = options.bitrate_policy == BitratePolicy::kApply && !not_configure.empty();
  const BitrateDecision decision =
      DecideBitrate(demoted ? BitratePolicy::kCheck : options.bitrate_policy, asked,
                    out.timing.bitrate, channel.subscriber_count(), channel.channel_info());
  if (decision.action == BitrateDecision::Action::kRefuse) {
    if (demoted) {
      return absl::PermissionDeniedError(absl::StrFormat(
          "%s; only a client with role configure may change it (this one: %s; canserver "
          "--access)",
          decision.reason, not_configure));
    }
    return absl::FailedPreconditionError(decision.reason);
  }
  if (decision.action == BitrateDecision::Action::kApply) {
    if (absl::Status set = channel.backend().SetBitrate(asked); !set.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(set.message(), " (canserver --bitrate-policy apply)"));
    }
    CS_LOG_LIMITED(kInfo, "%s set %s from %d to %d bit/s", who, channel.channel_info(),
                   out.timing.bitrate, asked);
    out.timing = channel.backend().timing();
  }
  out.rate =
      DescribeBitrate(out.timing.bitrate, asked, options.forced_bitrate, out.timing.data_bitrate);
  if (!out.timing.state.empty()) out.log_state = ", " + out.timing.state;
  if (out.timing.tx_errors >= 0) {
    out.log_state += absl::StrFormat(" (tx errors %d, rx errors %d)", out.timing.tx_errors,
                                     out.timing.rx_errors);
  }
  return out;
}

std::string OpenReply(const CanChannel& channel, const BusOpening& opening) {
  const std::string state = opening.timing.state.empty()
                                ? std::string(BusStateName(channel.bus_state()))
                                : opening.timing.state;
  const std::string unusual = state == "error-active" ? "" : ", " + state;
  return absl::StrFormat("%s, %s%s (canserver %s)", channel.channel_info(), opening.rate, unusual,
                         kVersion);
}

}  // namespace canserver
