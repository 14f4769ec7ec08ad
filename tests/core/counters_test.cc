#include "core/counters.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace canserver {
namespace {

// The /metrics histogram: each latency lands in the first bucket whose bound it does not exceed;
// negative ones (a clock step) count as zero.
TEST(DeliveryLatencyTest, CountsEachLatencyInItsBucket) {
  DeliveryLatency h;
  const int64_t ns[] = {-5, 50'000, 50'001, 999'999, 2'000'000'000};
  h.Record(ns, std::size(ns));
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.bucket(0), 2u);  // ≤ 50 µs: -5 (as 0) and exactly 50 µs
  EXPECT_EQ(h.bucket(1), 1u);  // ≤ 100 µs
  EXPECT_EQ(h.bucket(4), 1u);  // ≤ 1 ms
  EXPECT_EQ(h.bucket(DeliveryLatency::kBuckets - 1), 1u);  // +Inf
  EXPECT_NEAR(h.sum_seconds(), 2.0011, 1e-9);
}

// canbench's per-hop percentiles: 1 µs steps, only what was recorded after EnableFine().
TEST(DeliveryLatencyTest, FineQuantilesIn1usSteps) {
  DeliveryLatency h;
  const int64_t before[] = {900'000};
  h.Record(before, 1);
  EXPECT_EQ(h.FineQuantileUs(0.5), 0.0);  // not enabled: nothing to say
  h.EnableFine();
  std::vector<int64_t> ns;
  for (int64_t us = 1; us <= 1000; ++us) ns.push_back(us * 1000 + 500);  // 1.5 … 1000.5 µs
  h.Record(ns.data(), ns.size());
  EXPECT_EQ(h.FineQuantileUs(0.0), 1.0);
  EXPECT_EQ(h.FineQuantileUs(0.5), 500.0);
  EXPECT_EQ(h.FineQuantileUs(0.99), 990.0);
  EXPECT_EQ(h.FineQuantileUs(1.0), 1000.0);
  const int64_t far[] = {10'000'000'000};  // beyond the fine range: reported as its end
  for (int i = 0; i < 2000; ++i) h.Record(far, 1);
  EXPECT_EQ(h.FineQuantileUs(0.99), static_cast<double>(DeliveryLatency::kFineMicros));
}

}  // namespace
}  // namespace canserver
