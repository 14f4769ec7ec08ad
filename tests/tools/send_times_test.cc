#include "tools/send_times.h"

#include <thread>

#include "gtest/gtest.h"

namespace canserver {
namespace {

TEST(SendTimesTest, LooksUpWhatWasRecorded) {
  SendTimes t;
  EXPECT_FALSE(t.Lookup(5).has_value()) << "nothing written yet";
  t.Record(5, 1234);
  EXPECT_EQ(t.Lookup(5), 1234);
  EXPECT_FALSE(t.Lookup(6).has_value());
}

// A frame that arrives after its slot was reused is left out, never given another frame's time.
TEST(SendTimesTest, ReusedSlotDoesNotMatchTheOldFrame) {
  SendTimes t;
  t.Record(7, 100);
  t.Record(7 + SendTimes::kSlots, 200);
  EXPECT_FALSE(t.Lookup(7).has_value());
  EXPECT_EQ(t.Lookup(7 + SendTimes::kSlots), 200);
}

// The load thread writes while a reader looks up (run under TSan in the sanitizer builds).
TEST(SendTimesTest, ConcurrentWriterAndReader) {
  SendTimes t;
  constexpr uint32_t kFrames = 3 * SendTimes::kSlots;
  std::atomic<uint32_t> written{0};
  std::thread writer([&] {
    for (uint32_t seq = 0; seq < kFrames; ++seq) {
      t.Record(seq, int64_t{seq} * 10);
      written.store(seq + 1, std::memory_order_release);
    }
  });
  uint32_t checked = 0;
  while (checked < kFrames) {
    const uint32_t upto = written.load(std::memory_order_acquire);
    for (; checked < upto; checked += 997) {
      const std::optional<int64_t> ns = t.Lookup(checked);
      if (ns.has_value()) {
        ASSERT_EQ(*ns, int64_t{checked} * 10) << "a time from another frame";
      }
    }
  }
  writer.join();
}

}  // namespace
}  // namespace canserver
