#include "net/client_config.h"

#include <cstdlib>
#include <tuple>

#include "INIReader.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canserver {
namespace {

struct Value {
  std::string text;
  std::string source;
};

}  // namespace

ConfigSources ConfigSources::Default() {
  ConfigSources s;
  s.getenv = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  const char* home = std::getenv("HOME");
  const std::string h = home != nullptr ? home : "";
  s.files = {"can.ini"};
  if (!h.empty()) {
    for (const char* f : {"/can.ini", "/.canrc", "/.can", "/can.conf"}) s.files.push_back(h + f);
  }
  s.files.push_back("/etc/can.conf");
  return s;
}

absl::StatusOr<ClientConfig> LoadClientConfig(const ClientConfigOverrides& overrides,
                                              const ConfigSources& sources) {
  std::vector<std::unique_ptr<INIReader>> files;
  for (const std::string& path : sources.files) {
    auto reader = std::make_unique<INIReader>(path);
    if (reader->ParseError() == -1) continue;  // no such file
    if (reader->ParseError() != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: syntax error on line %d", path, reader->ParseError()));
    }
    files.push_back(std::move(reader));
  }
  // The highest-priority source that sets `key`.
  auto lookup = [&](const std::optional<std::string>& arg, const char* flag, const char* env,
                    const char* key, const char* alias) -> std::optional<Value> {
    if (arg.has_value()) return Value{*arg, flag};
    if (auto v = sources.getenv(env)) return Value{*v, env};
    for (size_t i = 0; i < files.size(); ++i) {
      for (const char* k : {key, alias}) {
        if (k != nullptr && files[i]->HasValue("default", k)) {
          return Value{files[i]->Get("default", k, ""),
                       absl::StrCat(sources.files[i], " [default] ", k)};
        }
      }
    }
    return std::nullopt;
  };

  ClientConfig config;
  if (auto v = lookup(overrides.interface, "-i", "CAN_INTERFACE", "interface", "bustype")) {
    if (v->text != "remote") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "interface '%s' (from %s): these tools reach the bus through canserver; use 'remote'",
          v->text, v->source));
    }
  }
  const std::optional<std::string> bitrate_arg =
      overrides.bitrate ? std::optional<std::string>(absl::StrCat(*overrides.bitrate))
                        : std::nullopt;
  if (auto v = lookup(bitrate_arg, "-b", "CAN_BITRATE", "bitrate", nullptr)) {
    if (!absl::SimpleAtoi(v->text, &config.bitrate) || config.bitrate <= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bitrate '%s' (from %s) is not a positive number", v->text, v->source));
    }
  }
  auto channel = lookup(overrides.channel, "-c", "CAN_CHANNEL", "channel", nullptr);
  if (!channel.has_value() || channel->text.empty()) {
    return absl::InvalidArgumentError(
        "no channel: give -c host[:port], set CAN_CHANNEL, or put 'channel = host:54701' in the "
        "[default] section of ~/.canrc");
  }
  config.channel = channel->text;
  config.source = channel->source;
  for (auto [arg, flag, key, out] :
       {std::tuple{&overrides.tls_ca, "--tls-ca", "tls_ca", &config.tls_ca},
        std::tuple{&overrides.tls_cert, "--tls-cert", "tls_cert", &config.tls_cert},
        std::tuple{&overrides.tls_key, "--tls-key", "tls_key", &config.tls_key}}) {
    if (auto v = lookup(*arg, flag, "", key, nullptr)) *out = v->text;
  }
  return config;
}

}  // namespace canserver
