// Minimal leveled logging to stderr (Debian 12's abseil predates absl/log).
//
//   CS_LOG(kInfo, "session %d closed: %s", id, reason);
//   CS_VLOG(2, "batch of %d frames", n);   // only with -v 2 or more
//
// Thread-safe: each line is written with a single write(2).
#pragma once

#include <atomic>
#include <string>

#include "absl/strings/str_format.h"

namespace canserver {

enum class LogLevel { kInfo, kWarning, kError };

// Verbosity set by -v; read on every CS_VLOG.
inline std::atomic<int> g_log_verbosity{0};

void LogLine(LogLevel level, const std::string& text);

}  // namespace canserver

#define CS_LOG(level, ...) \
  ::canserver::LogLine(::canserver::LogLevel::level, ::absl::StrFormat(__VA_ARGS__))
#define CS_VLOG(n, ...)                                                                   \
  do {                                                                                    \
    if (::canserver::g_log_verbosity.load(std::memory_order_relaxed) >= (n)) {            \
      ::canserver::LogLine(::canserver::LogLevel::kInfo, ::absl::StrFormat(__VA_ARGS__)); \
    }                                                                                     \
  } while (0)
