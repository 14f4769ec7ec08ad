#include "core/queues.h"

#include <thread>

#include "core/wake_gate.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

TEST(FrameRingTest, TryPushFailsWhenFull) {
  FrameRing ring(3);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(ring.TryPush(CanFrame::Classic(i, {})));
  EXPECT_FALSE(ring.TryPush(CanFrame::Classic(99, {})));
  CanFrame out[8];
  ASSERT_EQ(ring.PopBulk(out, 8), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(out[i].id, i) << "FIFO order";
  EXPECT_TRUE(ring.empty());
  EXPECT_TRUE(ring.TryPush(CanFrame::Classic(4, {})));
}

TEST(FrameRingTest, BoundIsExactAcrossPartialPops) {
  // The bound is the configured capacity, not the queue's rounded-up one, and slots freed by a
  // partial pop are usable again exactly.
  FrameRing ring(1000);
  uint32_t pushed = 0;
  while (ring.TryPush(CanFrame::Classic(pushed & 0x7FF, {}))) ++pushed;
  EXPECT_EQ(pushed, 1000u);
  EXPECT_EQ(ring.size_approx(), 1000u);
  CanFrame out[7];
  ASSERT_EQ(ring.PopBulk(out, 7), 7u);
  EXPECT_EQ(out[0].id, 0u);
  int again = 0;
  while (ring.TryPush(CanFrame::Classic(0, {}))) ++again;
  EXPECT_EQ(again, 7);
  EXPECT_EQ(ring.size_approx(), 1000u);
}

TEST(FrameRingTest, OneProducerOneConsumerKeepOrder) {
  constexpr uint32_t kFrames = 200000;
  FrameRing ring(1024);
  std::thread producer([&] {
    for (uint32_t i = 0; i < kFrames;) {
      if (ring.TryPush(CanFrame::Classic(i & 0x7FF, {static_cast<uint8_t>(i >> 11)}))) ++i;
    }
  });
  uint32_t next = 0;
  CanFrame out[64];
  while (next < kFrames) {
    const size_t n = ring.PopBulk(out, 64);
    for (size_t k = 0; k < n; ++k, ++next) {
      ASSERT_EQ(out[k].id, next & 0x7FF);
      ASSERT_EQ(out[k].data[0], static_cast<uint8_t>(next >> 11));
    }
  }
  producer.join();
}

TEST(WakeGateTest, NotifiesOncePerArm) {
  WakeGate gate;
  EXPECT_FALSE(gate.ShouldNotify()) << "not armed";
  gate.Arm();
  EXPECT_TRUE(gate.ShouldNotify());
  EXPECT_FALSE(gate.ShouldNotify()) << "only the first producer wakes";
  gate.Arm();
  gate.Disarm();
  EXPECT_FALSE(gate.ShouldNotify());
}

TEST(MpscQueueTest, BoundedByCapacity) {
  MpscQueue<int> q(2);
  EXPECT_TRUE(q.TryPush(1));
  EXPECT_TRUE(q.TryPush(2));
  EXPECT_FALSE(q.TryPush(3));
  int out[4];
  EXPECT_EQ(q.PopBulk(out, 4), 2u);
}

}  // namespace
}  // namespace canserver
