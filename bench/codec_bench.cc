// Protocol v5 codec: encoding frames into a session buffer and decoding a client's stream.
#include <string>

#include "benchmark/benchmark.h"
#include "core/v5_codec.h"

namespace canserver {
namespace {

void BM_EncodeCanMessage(benchmark::State& state) {
  CanFrame f = CanFrame::Classic(0x123, {1, 2, 3, 4, 5, 6, 7, 8});
  f.timestamp_ns = 1'700'000'000'123'456'789;
  uint8_t out[v5::kCanMessageSize];
  for (auto _ : state) {
    benchmark::DoNotOptimize(v5::EncodeCanMessage(f, out));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(v5::kCanMessageSize));
}
BENCHMARK(BM_EncodeCanMessage);

void BM_DecodeStream(benchmark::State& state) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) {
    (void)v5::Encode(v5::CanMessage{CanFrame::Classic(static_cast<uint32_t>(i) & 0x7FF, {1, 2, 3})},
                     &stream);
  }
  for (auto _ : state) {
    v5::StreamDecoder dec;
    dec.Append(stream);
    size_t n = 0;
    while (true) {
      auto e = dec.Next();
      if (!e.ok() || !e->has_value()) break;
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
}
BENCHMARK(BM_DecodeStream);

}  // namespace
}  // namespace canserver
