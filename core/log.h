// Minimal leveled logging to stderr (Debian 12's abseil predates absl/log).
//
//   CS_LOG(kInfo, "session %d closed: %s", id, reason);
//   CS_VLOG(2, "batch of %d frames", n);   // only with -v 2 or more
//   CS_LOG_LIMITED(kWarning, "refused %s: …", peer);  // any path a remote peer can trigger
//
// CS_LOG_LIMITED writes at most LogRateLimit::kBurst lines per call site every
// LogRateLimit::kWindow; the first line after a quiet spell says how many were held back
// ("… (and 1234 more like this since the previous one, not logged)"), and log_lines_suppressed()
// counts them all for /metrics. So a connect flood costs the journal a few lines, not thousands a
// second.
//
// Thread-safe: each line is written with a single write(2).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/strings/str_format.h"

namespace canserver {

enum class LogLevel { kInfo, kWarning, kError };

// Verbosity set by -v; read on every CS_VLOG.
inline std::atomic<int> g_log_verbosity{0};

void LogLine(LogLevel level, const std::string& text);
// True when stderr is systemd's journal (JOURNAL_STREAM names it): lines then carry a "<N>"
// priority and no timestamp.
bool StderrIsJournal();

// One call site's budget of log lines. Thread-safe.
class LogRateLimit {
 public:
  static constexpr int kBurst = 10;
  static constexpr int64_t kWindowNs = 10'000'000'000;  // 10 s
  // True if a line may be written now; *held_back is then the number of lines this site
  // suppressed since the last one written (0 if none).
  bool Allow(uint64_t* held_back);

 private:
  std::mutex mu_;
  int64_t window_start_ns_ = INT64_MIN;
  int written_ = 0;
  uint64_t held_back_ = 0;
};

// Lines CS_LOG_LIMITED suppressed since the start, all call sites together.
uint64_t log_lines_suppressed();
// "text", or with " (and N more like this since the previous one, not logged)".
std::string WithHeldBack(std::string text, uint64_t held_back);

}  // namespace canserver

#define CS_LOG(level, ...) \
  ::canserver::LogLine(::canserver::LogLevel::level, ::absl::StrFormat(__VA_ARGS__))
#define CS_LOG_LIMITED(level, ...)                                                   \
  do {                                                                               \
    static ::canserver::LogRateLimit cs_log_limit_;                                  \
    uint64_t cs_held_back_ = 0;                                                      \
    if (cs_log_limit_.Allow(&cs_held_back_)) {                                       \
      ::canserver::LogLine(                                                          \
          ::canserver::LogLevel::level,                                              \
          ::canserver::WithHeldBack(::absl::StrFormat(__VA_ARGS__), cs_held_back_)); \
    }                                                                                \
  } while (0)
#define CS_VLOG(n, ...)                                                                   \
  do {                                                                                    \
    if (::canserver::g_log_verbosity.load(std::memory_order_relaxed) >= (n)) {            \
      ::canserver::LogLine(::canserver::LogLevel::kInfo, ::absl::StrFormat(__VA_ARGS__)); \
    }                                                                                     \
  } while (0)
