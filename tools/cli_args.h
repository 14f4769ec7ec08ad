// Command-line spelling our users type, mapped onto abseil flags (which only know
// --name_with_underscores):
// "--error-frames" → "--error_frames", "-v" → "--v=1", "-vv" → "--v=2", "-v 3" stays a value.
#pragma once

#include <string>
#include <vector>

namespace canserver {

// Returns the rewritten arguments (argv[0] included).
std::vector<std::string> NormalizeArgs(int argc, char** argv);

}  // namespace canserver
