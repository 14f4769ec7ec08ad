// Where a client finds its bus, as python-can does: explicit arguments (-i/-c/-b), then the
// CAN_INTERFACE / CAN_CHANNEL / CAN_BITRATE environment variables, then the [default] section of
// the first config file that sets the key among ./can.ini, ~/can.ini, ~/.canrc, ~/.can,
// ~/can.conf, /etc/can.conf. The C++ tools speak only interface 'remote'.
//
//   auto config = LoadClientConfig({.channel = flag_channel});
//   if (config.ok()) opts.channel = config->channel;
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace canserver {

struct ClientConfig {
  std::string interface = "remote";
  std::string channel;  // host[:port]
  int32_t bitrate = 0;  // 0: whatever the bus runs at
  std::string source;   // where the channel came from, for messages
  // TLS, as the python plugin's tls_ca/tls_cert/tls_key (the same keys in ~/.canrc, can.ini).
  std::string tls_ca, tls_cert, tls_key;
};

struct ClientConfigOverrides {
  std::optional<std::string> interface;
  std::optional<std::string> channel;
  std::optional<int32_t> bitrate;
  std::optional<std::string> tls_ca, tls_cert, tls_key;
};

// Injected for tests; by default the process environment and the files listed above.
struct ConfigSources {
  std::function<std::optional<std::string>(const char*)> getenv;
  std::vector<std::string> files;  // highest priority first
  static ConfigSources Default();
};

// Fails when no channel is configured anywhere, when the interface is not 'remote', or when a
// bitrate is not a positive number — saying which source held the bad value.
absl::StatusOr<ClientConfig> LoadClientConfig(
    const ClientConfigOverrides& overrides,
    const ConfigSources& sources = ConfigSources::Default());

}  // namespace canserver
