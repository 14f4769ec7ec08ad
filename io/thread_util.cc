#include "io/thread_util.h"

#include <time.h>

#include <algorithm>
#include <string>

namespace canserver {

void NameThisThread(absl::string_view name) noexcept {
  const std::string cut(name.substr(0, std::min<size_t>(name.size(), 15)));
  (void)::pthread_setname_np(::pthread_self(), cut.c_str());
}

absl::Duration ThreadCpuTime(pthread_t t) noexcept {
  clockid_t clock;
  timespec ts{};
  if (::pthread_getcpuclockid(t, &clock) != 0 || ::clock_gettime(clock, &ts) != 0) {
    return absl::ZeroDuration();
  }
  return absl::DurationFromTimespec(ts);
}

}  // namespace canserver
