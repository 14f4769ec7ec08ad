// Command-line spelling our users type, mapped onto abseil flags (which only know
// --name_with_underscores):
// "--error-frames" → "--error_frames", "-v" → "--v=1", "-vv" → "--v=2", "-v 3" stays a value.
#pragma once

#include <string>
#include <vector>

namespace canserver {

// Returns the rewritten arguments (argv[0] included).
std::vector<std::string> NormalizeArgs(int argc, char** argv);

// Removes every "--NAME VALUE" and "--NAME=VALUE" from `args` and returns the values in order.
// For flags abseil would keep only the last of (a repeated --channel).
std::vector<std::string> TakeFlagValues(std::vector<std::string>& args, const std::string& name);

// --version prints "PROGRAM <version>"; --help names "tools/x.cc", not the build's path.
void SetUsageConfig(const std::string& program);

// --help grouped by topic: the program's usage message, then for each (title, flag names) its
// flags with their defaults and help, wrapped; flags of `source_file` in no topic come last under
// "Other", so none is ever left out. Written to stdout.
struct FlagTopic {
  const char* title;
  std::vector<const char*> flags;
};
void PrintGroupedHelp(const std::vector<FlagTopic>& topics, const std::string& source_file);

}  // namespace canserver
