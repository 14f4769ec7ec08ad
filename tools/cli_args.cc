#include "tools/cli_args.h"

#include <algorithm>

#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/version.h"

namespace canserver {

std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  std::vector<std::string> out;
  bool rest_positional = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 0 || rest_positional) {
      out.push_back(arg);
      continue;
    }
    if (arg == "--") {
      rest_positional = true;
      out.push_back(arg);
      continue;
    }
    if (arg.size() >= 2 && arg[0] == '-' && arg[1] == 'v' &&
        arg.find_first_not_of('v', 1) == std::string::npos) {
      out.push_back(absl::StrCat("--v=", arg.size() - 1));  // -v, -vv, -vvv
      continue;
    }
    if (absl::StartsWith(arg, "--")) {
      const size_t eq = arg.find('=');
      std::replace(arg.begin() + 2,
                   eq == std::string::npos ? arg.end() : arg.begin() + static_cast<long>(eq), '-',
                   '_');
    }
    out.push_back(arg);
  }
  return out;
}

std::vector<std::string> TakeFlagValues(std::vector<std::string>& args, const std::string& name) {
  const std::string flag = "--" + name;
  std::vector<std::string> values;
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) {
      values.push_back(args[++i]);
    } else if (absl::StartsWith(args[i], flag + "=")) {
      values.push_back(args[i].substr(flag.size() + 1));
    } else {
      kept.push_back(args[i]);
    }
  }
  args = std::move(kept);
  return values;
}

void SetUsageConfig(const std::string& program) {
  absl::FlagsUsageConfig usage;
  usage.version_string = [program] { return absl::StrCat(program, " ", kVersion, "\n"); };
  usage.normalize_filename = [](absl::string_view file) {
    const size_t at = file.rfind("tools/");
    return std::string(at == absl::string_view::npos ? file : file.substr(at));
  };
  absl::SetFlagsUsageConfig(usage);
}

}  // namespace canserver
