#include "core/server_config.h"

#include <ini.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/python_can_names.h"

namespace canserver {
namespace {

constexpr absl::string_view kSettingsSection = "canserver";
constexpr absl::string_view kAccessSection = "access";

struct Parser {
  ServerConfigFile out;
  std::string error;
  std::set<std::string> seen;  // "section/key", for duplicates

  // The channel a section made ("[kvaser:0]" is channel "0" of backend kvaser).
  ChannelSpec* Channel(const std::string& section) {
    for (size_t i = 0; i < sections.size(); ++i)
      if (sections[i] == section) return &out.channels[i];
    return nullptr;
  }
  std::vector<std::string> sections;  // of out.channels, index for index

  // inih calls this for every key (and, with an empty name, for every new section).
  bool Handle(const char* section_in, const char* name_in, const char* value_in) {
    const std::string section = section_in;
    if (section.empty()) {
      error = "a key before the first [section] (settings go under [canserver])";
      return false;
    }
    if (section != kSettingsSection && section != kAccessSection && Channel(section) == nullptr) {
      absl::StatusOr<ChannelSpec> spec = ParseChannelSpec(section);
      if (!spec.ok() || spec->port >= 0) {
        error = absl::StrFormat(
            "[%s] is not a channel name (an interface name such as can0, or python-can's as "
            "kvaser:0; the port goes in a port key)",
            section);
        return false;
      }
      out.channels.push_back(*spec);
      sections.push_back(section);
    }
    if (name_in == nullptr) return true;  // a section line alone
    std::string key = name_in;
    std::replace(key.begin(), key.end(), '-', '_');
    const std::string value = value_in == nullptr ? "" : value_in;
    if (value.empty()) {
      error = absl::StrFormat("'%s' in [%s] has no value", key, section);
      return false;
    }
    if (!seen.insert(section + "/" + key).second) {
      error = absl::StrFormat("'%s' is given twice in [%s]", key, section);
      return false;
    }
    if (section == kSettingsSection) {
      out.settings.emplace_back(key, value);
      return true;
    }
    if (section == kAccessSection) {
      // One rule per line, the key its name: "lab = 10.1.0.0/16 transmit on can0".
      out.access_rules.push_back(absl::StrCat(name_in, "=", value));
      return true;
    }
    ChannelSpec& channel = *Channel(section);
    if (key == "port") {
      int port = 0;
      if (!absl::SimpleAtoi(value, &port) || port < 0 || port > 65535) {
        error = absl::StrFormat("port '%s' in [%s] is not 0..65535", value, section);
        return false;
      }
      channel.port = port;
    } else if (key == "interface") {
      if (value != "socketcan" && value != "virtual" && value != "slcan" &&
          !IsPythonCanHardwareInterface(value)) {
        error = absl::StrFormat(
            "interface '%s' in [%s] is not socketcan, virtual, slcan or one of python-can's "
            "kvaser, pcan, gs_usb, candle, cantact, usb2can, ixxat",
            value, section);
        return false;
      }
      channel.backend = value;
    } else {
      error = absl::StrFormat("unknown key '%s' in [%s] (a channel takes port and interface)", key,
                              section);
      return false;
    }
    return true;
  }
};

}  // namespace

absl::StatusOr<ServerConfigFile> ParseServerConfig(absl::string_view text,
                                                   absl::string_view origin) {
  Parser parser;
  // Debian's inih calls the handler for keys only, so a channel section without keys ([can0]
  // alone) is found here, in file order; inih then parses the keys.
  int line_no = 0;
  std::vector<std::pair<std::string, int>> setting_lines;  // [canserver] key → its line
  bool in_settings = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == ';' || line.front() == '#') continue;
    if (line.front() != '[') {
      const size_t eq = line.find_first_of("=:");
      if (in_settings && eq != absl::string_view::npos) {
        std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
        std::replace(key.begin(), key.end(), '-', '_');
        setting_lines.emplace_back(key, line_no);
      }
      continue;
    }
    const size_t close = line.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: '%s' opens a section but has no closing ']'", origin, line_no, line));
    }
    in_settings = line.substr(1, close - 1) == kSettingsSection;
    if (!parser.Handle(std::string(line.substr(1, close - 1)).c_str(), nullptr, nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: %s", origin, line_no, parser.error));
    }
  }
  const std::string copy(text);
  const int line = ini_parse_string(
      copy.c_str(),
      [](void* user, const char* section, const char* name, const char* value) -> int {
        return static_cast<Parser*>(user)->Handle(section, name, value) ? 1 : 0;
      },
      &parser);
  if (line != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d: %s", origin, line, parser.error.empty() ? "not an INI line" : parser.error));
  }
  std::set<int> ports;
  for (const ChannelSpec& c : parser.out.channels) {
    if (c.port > 0 && !ports.insert(c.port).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: port %d is given to two channels", origin, c.port));
    }
  }
  for (const auto& [key, value] : parser.out.settings) {
    int at = 0;
    for (const auto& [k, l] : setting_lines) {
      if (k == key) at = l;
    }
    parser.out.setting_lines.push_back(at);
  }
  if (!parser.out.access_rules.empty() && parser.seen.count("canserver/access") > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: roles are given both as 'access =' in [canserver] and in [access]; keep one", origin));
  }
  if (parser.out.channels.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: no channel: add a section per channel, e.g. [can0]", origin));
  }
  return parser.out;
}

}  // namespace canserver
