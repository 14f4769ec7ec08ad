#include "core/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace canserver {

namespace {

std::atomic<uint64_t> g_suppressed{0};

}  // namespace

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

bool LogRateLimit::Allow(uint64_t* held_back) {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t now_ns = int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  std::lock_guard<std::mutex> lock(mu_);
  if (window_start_ns_ == INT64_MIN || now_ns - window_start_ns_ >= kWindowNs) {
    window_start_ns_ = now_ns;
    written_ = 0;
  }
  if (written_ >= kBurst) {
    ++held_back_;
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ++written_;
  *held_back = held_back_;
  held_back_ = 0;
  return true;
}

uint64_t log_lines_suppressed() { return g_suppressed.load(std::memory_order_relaxed); }

std::string WithHeldBack(std::string text, uint64_t held_back) {
  if (held_back > 0) {
    absl::StrAppend(&text, " (and ", held_back,
                    " more like this since the previous one, not logged)");
  }
  return text;
}

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
