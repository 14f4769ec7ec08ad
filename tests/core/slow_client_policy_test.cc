// --slow-client-timeout as a rule over drop counts and times (core/slow_client_policy.h).
#include "core/slow_client_policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

TEST(SlowClientPolicyTest, DropsAtEveryLookForTheTimeoutDisconnect) {
  SlowClientPolicy p(absl::Seconds(2));
  uint64_t drops = 0;
  for (int tick = 0; tick < 20; ++tick) {  // 1.9 s of 100 ms ticks, drops at each
    drops += 50;
    EXPECT_EQ(p.Check(kStart + absl::Milliseconds(100 * tick), drops), "") << tick;
  }
  const std::string why = p.Check(kStart + absl::Seconds(2), drops + 50);
  EXPECT_THAT(why, HasSubstr("client too slow"));
  EXPECT_THAT(why, HasSubstr("for 2s"));
  EXPECT_THAT(why, HasSubstr("(1050 frames dropped)"));
}

TEST(SlowClientPolicyTest, AClientThatCatchesUpStartsOver) {
  SlowClientPolicy p(absl::Seconds(2));
  EXPECT_EQ(p.Check(kStart, 10), "");
  EXPECT_EQ(p.Check(kStart + absl::Milliseconds(1900), 20), "");
  EXPECT_EQ(p.Check(kStart + absl::Seconds(2), 20), "");  // no new drops: caught up
  EXPECT_EQ(p.Check(kStart + absl::Milliseconds(2100), 30), "");
  EXPECT_EQ(p.Check(kStart + absl::Milliseconds(4000), 40), "");  // 1.9 s since it fell behind
  EXPECT_NE(p.Check(kStart + absl::Milliseconds(4100), 50), "");
}

TEST(SlowClientPolicyTest, NoTimeoutNeverDisconnects) {
  SlowClientPolicy p(absl::ZeroDuration());
  for (int s = 0; s < 100; ++s) EXPECT_EQ(p.Check(kStart + absl::Seconds(s), 100 * (s + 1)), "");
}

}  // namespace
}  // namespace canserver
