// Naming the server's threads (top -H, ps -L, perf and gdb show the name) and reading the CPU
// time each has used, so benchmarks and operators can tell what a frame costs.
#pragma once

#include <pthread.h>

#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace canserver {

// Names the calling thread; the kernel keeps 15 bytes, so `name` is cut there.
void NameThisThread(absl::string_view name) noexcept;

// The CPUs this process may run on (its affinity mask, e.g. from taskset or systemd's
// CPUAffinity=).
std::vector<int> AllowedCpus() noexcept;

// Names the calling thread and, for `cpu` >= 0, pins it there; a pin that fails is logged as a
// warning and the thread runs anywhere (the server checked the CPUs at start). Each server
// thread calls it first thing.
void PlaceThisThread(absl::string_view name, int cpu) noexcept;

// CPU time (user + system) the running thread `t` has used so far; zero once it has ended or
// was never started. Any thread may ask.
absl::Duration ThreadCpuTime(pthread_t t) noexcept;
inline absl::Duration ThreadCpuTime(std::jthread& t) noexcept {
  return t.joinable() ? ThreadCpuTime(t.native_handle()) : absl::ZeroDuration();
}

}  // namespace canserver
