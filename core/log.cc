#include "core/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace canserver {

namespace {

// systemd sets JOURNAL_STREAM when stderr is connected to the journal, which timestamps each line
// itself and reads a "<N>" syslog priority prefix (sd-daemon(3)).
bool StderrIsJournal() {
  static const bool journal = [] {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    struct stat st;
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return absl::StrFormat("%d:%d", st.st_dev, st.st_ino) == stream;
  }();
  return journal;
}

}  // namespace

void LogLine(LogLevel level, const std::string& text) {
  // A negative verbosity (tools that print their own results) keeps only warnings and errors.
  if (level == LogLevel::kInfo && g_log_verbosity.load(std::memory_order_relaxed) < 0) return;
  if (StderrIsJournal()) {
    static constexpr const char* kPriorities[] = {"<6>", "<4>", "<3>"};  // info, warning, err
    const std::string line = absl::StrCat(kPriorities[static_cast<int>(level)], text, "\n");
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    return;
  }
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
