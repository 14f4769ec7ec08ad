#include "core/bitrate_policy.h"

#include "absl/strings/str_format.h"

namespace canserver {

absl::StatusOr<BitratePolicy> ParseBitratePolicy(absl::string_view text) {
  if (text == "check") return BitratePolicy::kCheck;
  if (text == "ignore") return BitratePolicy::kIgnore;
  if (text == "apply") return BitratePolicy::kApply;
  return absl::InvalidArgumentError(
      absl::StrFormat("--bitrate-policy '%s' is not check, ignore or apply", text));
}

BitrateDecision DecideBitrate(BitratePolicy policy, int32_t asked, int32_t bus,
                              size_t other_clients, absl::string_view channel) {
  BitrateDecision d;
  if (asked <= 0 || bus <= 0 || asked == bus || policy == BitratePolicy::kIgnore) return d;
  if (policy == BitratePolicy::kCheck) {
    d.action = BitrateDecision::Action::kRefuse;
    d.reason = absl::StrFormat(
        "bit rate mismatch: the client asked for %d bit/s, but %s runs at %d bit/s "
        "(canserver --bitrate-policy check)",
        asked, channel, bus);
    return d;
  }
  if (other_clients > 0) {
    d.action = BitrateDecision::Action::kRefuse;
    d.reason = absl::StrFormat(
        "cannot set %s to %d bit/s: %d other client(s) use it at %d bit/s "
        "(canserver --bitrate-policy apply)",
        channel, asked, other_clients, bus);
    return d;
  }
  d.action = BitrateDecision::Action::kApply;
  return d;
}

std::string DescribeBitrate(int32_t bus, int32_t asked, int32_t forced, int32_t data_bus) {
  if (bus > 0 && data_bus > 0) return absl::StrFormat("%d bit/s, data %d bit/s", bus, data_bus);
  if (bus > 0) return absl::StrFormat("%d bit/s", bus);
  if (forced > 0) return absl::StrFormat("%d bit/s (--bitrate)", forced);
  return absl::StrFormat("no bit timing (asked %d bit/s)", asked);
}

}  // namespace canserver
