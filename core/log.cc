#include "core/log.h"

#include <unistd.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace canserver {

void LogLine(LogLevel level, const std::string& text) {
  // A negative verbosity (tools that print their own results) keeps only warnings and errors.
  if (level == LogLevel::kInfo && g_log_verbosity.load(std::memory_order_relaxed) < 0) return;
  static constexpr char kLevels[] = {'I', 'W', 'E'};
  std::string line = absl::StrFormat(
      "%c %s %s\n", kLevels[static_cast<int>(level)],
      absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()), text);
  // One write per line so lines from different threads do not interleave.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace canserver
