#include "core/log.h"

#include <time.h>
#include <unistd.h>

namespace canserver {

void LogLine(LogLevel level, const std::string& text) {
  // A negative verbosity (tools that print their own results) keeps only warnings and errors.
  if (level == LogLevel::kInfo && g_log_verbosity.load(std::memory_order_relaxed) < 0) return;
  static constexpr char kLevels[] = {'I', 'W', 'E'};
  // localtime_r rather than absl's time zones: their lazy loading in Debian's (uninstrumented)
  // abseil shows up as a race under TSan when the first log lines come from two threads.
  timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm local;
  ::localtime_r(&now.tv_sec, &local);
  std::string line = absl::StrFormat("%c %02d:%02d:%02d.%03d %s\n",
                                     kLevels[static_cast<int>(level)], local.tm_hour, local.tm_min,
                                     local.tm_sec, static_cast<int>(now.tv_nsec / 1'000'000), text);
  // One write per line so lines from different threads do not interleave.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace canserver
