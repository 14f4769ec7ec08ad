// The transmit path's policy without threads or clocks: round-robin batches, retries that adapt
// to the bus, refusals only when waiting cannot help (core/transmit_scheduler.h).
#include "core/transmit_scheduler.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace canserver {
namespace {

using Pick = TransmitScheduler::Pick;
using Verdict = TransmitScheduler::Verdict;
constexpr int64_t kMs = 1'000'000;

// The lanes of a batch, as a string: "0 1 2 0 1 0".
std::string Lanes(const TransmitScheduler& s, std::vector<size_t> waiting, size_t max) {
  std::vector<Pick> picks(max);
  const size_t n = s.BuildBatch(waiting, absl::MakeSpan(picks));
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (!out.empty()) out += ' ';
    out += std::to_string(picks[i].lane) + ":" + std::to_string(picks[i].index);
  }
  return out;
}

TEST(TransmitSchedulerTest, OneFrameOfEachClientPerRoundOldestFirst) {
  TransmitScheduler s(0);
  // A burst of 3 behind nothing, 1 and 2 of the others: the single frame is not kept waiting
  // behind the burst.
  EXPECT_EQ(Lanes(s, {3, 1, 2}, 64), "0:0 1:0 2:0 0:1 2:1 0:2");
  EXPECT_EQ(Lanes(s, {0, 0, 0}, 64), "");
  EXPECT_EQ(Lanes(s, {}, 64), "");
}

TEST(TransmitSchedulerTest, ABatchEndsAtItsSizeAndTheNextStartsAfterTheLastWritten) {
  TransmitScheduler s(0);
  EXPECT_EQ(Lanes(s, {5, 5, 5}, 4), "0:0 1:0 2:0 0:1");
  s.Written(0, 3);  // the bus took all four; the last was lane 0's
  EXPECT_EQ(Lanes(s, {4, 4, 4}, 4), "1:0 2:0 0:0 1:1");
  s.Written(2, 3);
  EXPECT_EQ(Lanes(s, {4, 4, 4}, 2), "0:0 1:0");
}

TEST(TransmitSchedulerTest, ARemovedLaneKeepsTheRotation) {
  TransmitScheduler s(0);
  s.Written(1, 4);      // next: lane 2
  s.LaneRemoved(0, 3);  // lane 2 is now lane 1
  EXPECT_EQ(Lanes(s, {1, 1, 1}, 8), "1:0 2:0 0:0");
  s.Written(2, 3);  // next: lane 0
  s.LaneRemoved(2, 2);
  EXPECT_EQ(Lanes(s, {1, 1}, 8), "0:0 1:0");
}

TEST(TransmitSchedulerTest, ARefusalThatWaitingCannotFixIsImmediate) {
  TransmitScheduler s(1000 * kMs);
  EXPECT_EQ(s.AfterShortWrite(0, /*busy=*/false, 0, 5 * kMs), Verdict::kRefuse);
  EXPECT_EQ(s.retry_at(), 0);
  EXPECT_TRUE(s.MayWrite(5 * kMs));
}

TEST(TransmitSchedulerTest, ABusyBusIsRetriedWithABackoffThatGrowsWhileNothingGoes) {
  TransmitScheduler s(0);  // never time out
  int64_t now = 100 * kMs;
  int64_t last_delay = 0;
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(s.AfterShortWrite(0, true, 0, now), Verdict::kRetry);
    const int64_t delay = s.retry_at() - now;
    EXPECT_GE(delay, TransmitScheduler::kMinBackoffNs);
    EXPECT_LE(delay, TransmitScheduler::kMaxBackoffNs);
    EXPECT_GE(delay, last_delay) << "attempt " << i;
    EXPECT_FALSE(s.MayWrite(s.retry_at() - 1));
    EXPECT_TRUE(s.MayWrite(s.retry_at()));
    last_delay = delay;
    now += delay;
  }
  EXPECT_EQ(last_delay, TransmitScheduler::kMaxBackoffNs);  // capped
  // Retries that find room for many frames shorten it again.
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(s.AfterShortWrite(4 * TransmitScheduler::kRetryTarget, true, 0, now),
              Verdict::kRetry);
    now = s.retry_at();
  }
  ASSERT_EQ(s.AfterShortWrite(4 * TransmitScheduler::kRetryTarget, true, 0, now), Verdict::kRetry);
  EXPECT_EQ(s.retry_at() - now, TransmitScheduler::kMinBackoffNs);
}

TEST(TransmitSchedulerTest, TheBackendsHintWinsOverTheBackoff) {
  TransmitScheduler s(0);
  ASSERT_EQ(s.AfterShortWrite(0, true, 3 * kMs, 10 * kMs), Verdict::kRetry);
  EXPECT_EQ(s.retry_at(), 13 * kMs);
  // Never a busy loop, whatever the hint.
  ASSERT_EQ(s.AfterShortWrite(0, true, 1, 20 * kMs), Verdict::kRetry);
  EXPECT_EQ(s.retry_at(), 20 * kMs + 1000);
}

TEST(TransmitSchedulerTest, ABusThatTakesNothingForTheTimeoutRefusesAndRecovers) {
  TransmitScheduler s(1000 * kMs);
  int64_t now = 5000 * kMs;  // CLOCK_MONOTONIC: never 0 (0 means "not stalled")
  ASSERT_EQ(s.AfterShortWrite(0, true, 0, now), Verdict::kRetry);  // stalled from now
  now += 999 * kMs;
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now), Verdict::kRetry);
  now += 1 * kMs;
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now), Verdict::kTimeout);
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now + 1), Verdict::kTimeout);  // each frame, one try
  // The bus takes frames again: the stall ends, waiting is back.
  s.AfterFullWrite();
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now + 2 * kMs), Verdict::kRetry);
  // A short write that took something restarts the stall's clock.
  EXPECT_EQ(s.AfterShortWrite(3, true, 0, now + 1500 * kMs), Verdict::kRetry);
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now + 2400 * kMs), Verdict::kRetry);
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, now + 2500 * kMs), Verdict::kTimeout);
}

TEST(TransmitSchedulerTest, WithoutATimeoutABusyBusIsWaitedForForever) {
  TransmitScheduler s(0);
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, kMs), Verdict::kRetry);
  EXPECT_EQ(s.AfterShortWrite(0, true, 0, int64_t{3600} * 1000 * kMs), Verdict::kRetry);
}

}  // namespace
}  // namespace canserver
