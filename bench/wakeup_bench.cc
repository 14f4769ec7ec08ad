// What one thread wake-up costs on this machine: the price of each hop on canserver's path
// (bus -> CAN thread -> io thread -> client), which sets its latency floor at low rates.
//
// Two threads ping-pong through two Wakeups (eventfds), each sleeping in poll() as the server's
// threads sleep in epoll_wait(). Arg 0: both pinned to CPU 0, so a wake-up is a context switch.
// Arg 1: pinned to CPUs 0 and 1, so each wake-up also has to wake an idle CPU; under a
// hypervisor that is an inter-processor interrupt to a halted vCPU, which can cost far more.
// Time per iteration is one round trip: two wake-ups.
#include <poll.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <thread>

#include "benchmark/benchmark.h"
#include "io/wakeup.h"

namespace canserver {
namespace {

bool Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
}

void WaitFor(const Wakeup& w) {
  pollfd p{w.fd(), POLLIN, 0};
  while (::poll(&p, 1, -1) != 1) {
  }
  w.Drain();
}

void BM_WakeupRoundTrip(benchmark::State& state) {
  const int other_cpu = static_cast<int>(state.range(0));
  if (other_cpu >= static_cast<int>(std::thread::hardware_concurrency())) {
    state.SkipWithError("needs a second CPU");
    return;
  }
  auto ping = Wakeup::Create();
  auto pong = Wakeup::Create();
  if (!ping.ok() || !pong.ok() || !Pin(0)) {
    state.SkipWithError("eventfd or affinity failed");
    return;
  }
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    (void)Pin(other_cpu);
    while (true) {
      WaitFor(*ping);
      if (stop.load()) break;
      pong->Notify();
    }
  });
  for (auto _ : state) {
    ping->Notify();
    WaitFor(*pong);
  }
  stop = true;
  ping->Notify();
  echo.join();
  state.SetItemsProcessed(state.iterations() * 2);  // wake-ups
  state.SetLabel(other_cpu == 0 ? "same CPU" : "other CPU");
}
BENCHMARK(BM_WakeupRoundTrip)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace canserver
