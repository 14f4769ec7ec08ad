#include "tools/bench_sequence.h"

#include <vector>

#include "gtest/gtest.h"

namespace canserver {
namespace {

// Every dlc and id kind, in order, across the points where the id's bits and the 32-bit counter
// wrap: each frame's sequence number comes back exactly.
TEST(BenchSequenceTest, EveryDlcAndIdKindRoundTrips) {
  const std::vector<uint32_t> starts = {
      0, 2040, (1u << 19) - 5, (1u << 27) - 5, (1u << 29) - 5, 0xFFFFFFF0u};
  for (bool ext : {false, true}) {
    for (int dlc = 0; dlc <= 8; ++dlc) {
      for (uint32_t start : starts) {
        SequenceTracker tracker;
        // The tracker has seen the numbers before `start` (as a reader that got them would).
        if (start > 0) (void)tracker.Recover(MakeSequencedFrame(start - 1, true, 8));
        for (uint32_t seq = start; seq != start + 20; ++seq) {
          const CanFrame f = MakeSequencedFrame(seq, ext, dlc);
          ASSERT_EQ(f.len, dlc);
          ASSERT_EQ(f.extended(), ext);
          ASSERT_LE(f.id, ext ? 0x1FFFFFFFu : 0x7FFu);
          ASSERT_EQ(tracker.Recover(f), seq) << "ext " << ext << " dlc " << dlc;
        }
      }
    }
  }
}

TEST(BenchSequenceTest, DlcFourAndUpCarryTheNumberInTheData) {
  const CanFrame f = MakeSequencedFrame(0x01020304, false, 6);
  EXPECT_EQ(f.data[0], 0x01);
  EXPECT_EQ(f.data[3], 0x04);
  EXPECT_EQ(f.data[4], 0);
  SequenceTracker fresh;  // no history needed
  EXPECT_EQ(fresh.Recover(f), 0x01020304u);
}

// With 11 bits (standard id, dlc 0), up to 1,023 frames lost in a row are bridged exactly.
TEST(BenchSequenceTest, ShortFramesBridgeLossWithinHalfTheWindow) {
  SequenceTracker tracker;
  EXPECT_EQ(tracker.Recover(MakeSequencedFrame(100, false, 0)), 100u);
  EXPECT_EQ(tracker.Recover(MakeSequencedFrame(100 + 1023, false, 0)), 1123u);
  EXPECT_EQ(tracker.Recover(MakeSequencedFrame(5000, false, 1)), 5000u) << "19 bits";
}

// A frame that arrives late is reported with its own (smaller) number, so reordering shows.
TEST(BenchSequenceTest, LateFrameKeepsItsNumber) {
  SequenceTracker tracker;
  (void)tracker.Recover(MakeSequencedFrame(2999, false, 8));
  for (uint32_t seq : {3000u, 3001u, 3005u})
    (void)tracker.Recover(MakeSequencedFrame(seq, false, 0));
  EXPECT_EQ(tracker.Recover(MakeSequencedFrame(3002, false, 0)), 3002u);
  EXPECT_EQ(tracker.Recover(MakeSequencedFrame(3006, false, 0)), 3006u);
}

}  // namespace
}  // namespace canserver
