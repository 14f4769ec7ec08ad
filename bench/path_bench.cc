// The per-frame path of the server, piece by piece: filter matching, ring push/pop, fan-out of
// one frame to N rings, and batching encoded frames into one write. Items are frames.
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/filter.h"
#include "core/queues.h"
#include "core/v5_codec.h"

namespace canserver {
namespace {

FilterSet Filters(int n) {
  std::vector<CanFilter> filters;
  for (int i = 0; i < n; ++i) {
    filters.push_back({static_cast<uint32_t>(0x100 + i), 0x7FF, std::nullopt});
  }
  return FilterSet(filters);
}

// A frame that matches only the last filter: the worst case for a linear scan.
void BM_FilterMatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const FilterSet set = Filters(n);
  CanFrame f = CanFrame::Classic(static_cast<uint32_t>(0x100 + (n > 0 ? n - 1 : 0)), {1});
  for (auto _ : state) benchmark::DoNotOptimize(set.Matches(f));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FilterMatch)->Arg(0)->Arg(1)->Arg(16);

void BM_RingPushPop(benchmark::State& state) {
  FrameRing ring(4096);
  CanFrame f = CanFrame::Classic(0x123, {1, 2, 3, 4, 5, 6, 7, 8});
  CanFrame out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.TryPush(f));
    benchmark::DoNotOptimize(ring.PopBulk(&out, 1));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(sizeof(CanFrame)));
}
BENCHMARK(BM_RingPushPop);

void BM_RingPushPopBulk(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  FrameRing ring(4096);
  CanFrame f = CanFrame::Classic(0x123, {1, 2, 3, 4, 5, 6, 7, 8});
  std::vector<CanFrame> out(batch);
  for (auto _ : state) {
    for (size_t i = 0; i < batch; ++i) benchmark::DoNotOptimize(ring.TryPush(f));
    benchmark::DoNotOptimize(ring.PopBulk(out.data(), batch));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * state.range(0) *
                          static_cast<int64_t>(sizeof(CanFrame)));
}
BENCHMARK(BM_RingPushPopBulk)->Arg(64)->Arg(256);

// The real pattern: the CAN thread pushes while an io thread pops on another core, in batches
// of up to 64 as Session::Pump does. Capacity 8192 is canserver's default ring, 65536 canbench's.
// Before FrameRing kept its own counts, the bound check walked every 512-frame block per push,
// so pushing got slower with capacity and with a consumer writing those blocks.
void BM_RingAcrossThreads(benchmark::State& state) {
  static std::unique_ptr<FrameRing> ring;
  if (state.thread_index() == 0) ring = std::make_unique<FrameRing>(state.range(0));
  CanFrame f = CanFrame::Classic(0x123, {1, 2, 3, 4, 5, 6, 7, 8});
  CanFrame out[64];
  int64_t moved = 0;
  for (auto _ : state) {
    // 64 frames per iteration on either side, so both threads move the same number.
    if (state.thread_index() == 0) {
      for (int i = 0; i < 64;) i += ring->TryPush(f) ? 1 : 0;
    } else {
      for (size_t got = 0; got < 64;) got += ring->PopBulk(out, 64 - got);
    }
    moved += 64;
  }
  if (state.thread_index() == 1) state.SetItemsProcessed(moved);  // frames moved, once
}
BENCHMARK(BM_RingAcrossThreads)->Arg(8192)->Arg(65536)->Threads(2)->UseRealTime();

// What the CAN thread does per bus frame: for each of N subscribers, filter and push. Rings are
// drained every 256 frames by the same thread so they never fill.
void BM_FanOut(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::unique_ptr<FrameRing>> rings;
  std::vector<FilterSet> filters;
  for (int i = 0; i < n; ++i) {
    rings.push_back(std::make_unique<FrameRing>(1024));
    filters.push_back(Filters(i % 2 == 0 ? 0 : 1));  // half take everything, half one id
  }
  CanFrame f = CanFrame::Classic(0x100, {1, 2, 3, 4});
  CanFrame drain[256];
  int64_t frames = 0;
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) {
      if (filters[static_cast<size_t>(i)].Matches(f)) {
        benchmark::DoNotOptimize(rings[static_cast<size_t>(i)]->TryPush(f));
      }
    }
    if (++frames % 256 == 0) {
      state.PauseTiming();
      for (auto& r : rings) r->PopBulk(drain, 256);
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["deliveries/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FanOut)->Arg(1)->Arg(4)->Arg(64);

// Encoding `batch` frames into one buffer and writing it with one syscall (to /dev/null), as an
// io thread does; batch 1 is the cost of a syscall per frame.
void BM_OutputBatching(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  std::string out;
  out.reserve(batch * v5::kCanMessageSize);
  CanFrame f = CanFrame::Classic(0x123, {1, 2, 3, 4, 5, 6, 7, 8});
  f.timestamp_ns = 1'700'000'000'000'000'000;
  for (auto _ : state) {
    out.resize(batch * v5::kCanMessageSize);
    for (size_t i = 0; i < batch; ++i) {
      v5::EncodeCanMessage(f, reinterpret_cast<uint8_t*>(&out[i * v5::kCanMessageSize]));
    }
    benchmark::DoNotOptimize(::write(fd, out.data(), out.size()));
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * state.range(0) *
                          static_cast<int64_t>(v5::kCanMessageSize));
}
BENCHMARK(BM_OutputBatching)->Arg(1)->Arg(16)->Arg(256);

}  // namespace
}  // namespace canserver
