#include "tools/cli_args.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

namespace {

// `text` wrapped at 78 columns, each line indented by `indent` spaces.
std::string Wrap(absl::string_view text, size_t indent) {
  std::string out;
  size_t column = 0;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > indent && column + 1 + word.size() > 78) {
      out += '\n';
      column = 0;
    }
    if (column == 0) {
      out.append(indent, ' ');
      column = indent;
    } else {
      out += ' ';
      ++column;
    }
    absl::StrAppend(&out, word);
    column += word.size();
  }
  return out + "\n";
}

void PrintFlag(const absl::CommandLineFlag& flag) {
  std::string name(flag.Name());
  std::replace(name.begin(), name.end(), '_', '-');  // as users type them (NormalizeArgs)
  std::printf("  --%s (default: %s)\n%s", name.c_str(),
              flag.DefaultValue().empty() ? "none" : flag.DefaultValue().c_str(),
              Wrap(flag.Help(), 6).c_str());
}

}  // namespace

void PrintGroupedHelp(const std::vector<FlagTopic>& topics, const std::string& source_file) {
  // "tools/canserver.cc" → "canserver"
  std::string program = source_file.substr(source_file.rfind('/') + 1);
  program = program.substr(0, program.rfind('.'));
  std::printf("%s: %s\n", program.c_str(), std::string(absl::ProgramUsageMessage()).c_str());
  const auto all = absl::GetAllFlags();
  std::set<std::string> shown;
  for (const FlagTopic& topic : topics) {
    std::printf("\n%s:\n", topic.title);
    for (const char* name : topic.flags) {
      auto it = all.find(name);
      if (it == all.end()) continue;
      PrintFlag(*it->second);
      shown.insert(name);
    }
  }
  std::vector<const absl::CommandLineFlag*> rest;
  for (const auto& [name, flag] : all) {
    if (absl::EndsWith(flag->Filename(), source_file) && !shown.count(std::string(name))) {
      rest.push_back(flag);
    }
  }
  std::sort(rest.begin(), rest.end(), [](auto* a, auto* b) { return a->Name() < b->Name(); });
  if (!rest.empty()) std::printf("\nOther:\n");
  for (const absl::CommandLineFlag* flag : rest) PrintFlag(*flag);
  std::printf(
      "\n  --version   print the version and exit\n"
      "  --helpfull  every flag, abseil's own included\n");
}

}  // namespace canserver
