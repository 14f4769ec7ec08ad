// canserver's config file (`canserver --config /etc/canserver/canserver.conf`): INI like
// python-can's .canrc, one section per channel, the same keys as the command-line flags.
//
//   [canserver]            ; settings: any canserver flag without its dashes
//   threads = 4
//   port = 54701           ; where channels without a port start counting
//
//   [can0]                 ; a channel: its interface name
//   [can1]
//   port = 54710           ; optional: its TCP port
//   [bench]
//   interface = virtual    ; optional: its backend, instead of [canserver] interface
//
// Keys may use dashes or underscores. Pure function; canserver applies the settings to its flags.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/channel_spec.h"

namespace canserver {

struct ServerConfigFile {
  // [canserver] key = value, keys with underscores, in file order.
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<ChannelSpec> channels;  // in file order; port -1 where none is given
  // [access]: "NAME=WHO ROLE [on CHANNEL...]" per line, in file order (net/access_rules.h).
  std::vector<std::string> access_rules;
  // The line of each setting, parallel to `settings`, so a value the flags refuse can be shown
  // where it is ("canserver.conf:4: threads = x: …").
  std::vector<int> setting_lines;
};

// Parses the text of a config file. Errors say where: "canserver.conf:7: unknown key 'prot' in
// [can1] (a channel takes port and interface)"; `origin` names the file.
absl::StatusOr<ServerConfigFile> ParseServerConfig(absl::string_view text,
                                                   absl::string_view origin);

}  // namespace canserver
