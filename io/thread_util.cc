#include "io/thread_util.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/log.h"

namespace canserver {
namespace {

// Confines the calling thread to CPU `cpu`; fails, naming the CPU, where it may not run.
absl::Status PinThisThread(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (const int err = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set); err != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot pin to CPU %d: %s", cpu, std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

void NameThisThread(absl::string_view name) noexcept {
  const std::string cut(name.substr(0, std::min<size_t>(name.size(), 15)));
  (void)::pthread_setname_np(::pthread_self(), cut.c_str());
}

std::vector<int> AllowedCpus() noexcept {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

void PlaceThisThread(absl::string_view name, int cpu) noexcept {
  NameThisThread(name);
  if (cpu < 0) return;
  if (absl::Status s = PinThisThread(cpu); !s.ok()) {
    CS_LOG(kWarning, "thread %s: %s; it runs anywhere", name, s.message());
  }
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
