// ChannelLease's rules as pure logic over given times.
#include "core/channel_lease.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

TEST(ChannelLeaseTest, TheHolderAloneMayTransmitUntilItLapses) {
  ChannelLease lease;
  EXPECT_FALSE(lease.active());
  EXPECT_EQ(lease.BlockedFor(2, kT0), std::nullopt);
  ChannelLease::Outcome got = lease.Take(1, "session 1 (a)", absl::Seconds(30), kT0);
  ASSERT_TRUE(got.granted);
  EXPECT_THAT(got.token, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(got.remaining, absl::Seconds(30));
  EXPECT_EQ(lease.BlockedFor(1, kT0), std::nullopt);
  EXPECT_EQ(lease.BlockedFor(2, kT0 + absl::Milliseconds(6500)),
            "leased by session 1 (a) for 24 s more");
  EXPECT_EQ(lease.BlockedFor(2, kT0 + absl::Seconds(30)), std::nullopt) << "lapsed";
  EXPECT_FALSE(lease.active());
}

TEST(ChannelLeaseTest, OnlyTheHolderRenewsAndOthersAreToldWho) {
  ChannelLease lease;
  const std::string token = lease.Take(1, "session 1 (a)", absl::Seconds(10), kT0).token;
  ChannelLease::Outcome renewed =
      lease.Take(1, "session 1 (a)", absl::Seconds(10), kT0 + absl::Seconds(8));
  EXPECT_TRUE(renewed.granted);
  EXPECT_EQ(renewed.token, token) << "a renewal keeps the token its members joined with";
  EXPECT_EQ(lease.Current(kT0 + absl::Seconds(15))->until, kT0 + absl::Seconds(18));
  ChannelLease::Outcome refused = lease.Take(2, "session 2 (b)", absl::Seconds(5), kT0);
  EXPECT_FALSE(refused.granted);
  EXPECT_THAT(refused.text, HasSubstr("leased by session 1 (a)"));
  EXPECT_TRUE(refused.token.empty()) << "the token is the holder's to give";
}

TEST(ChannelLeaseTest, MembersJoinWithTheTokenAndLeaveWithTheHolder) {
  ChannelLease lease;
  const std::string token = lease.Take(1, "h", absl::Seconds(30), kT0).token;
  EXPECT_FALSE(lease.Join(2, std::string(32, '0'), kT0).granted);
  EXPECT_TRUE(lease.Join(3, token, kT0).granted);
  EXPECT_EQ(lease.BlockedFor(3, kT0), std::nullopt);
  EXPECT_NE(lease.BlockedFor(2, kT0), std::nullopt);
  EXPECT_EQ(lease.Current(kT0)->members, 1u);
  EXPECT_FALSE(lease.Release(3)) << "a member leaving does not end the lease";
  EXPECT_NE(lease.BlockedFor(3, kT0), std::nullopt);
  EXPECT_TRUE(lease.Join(3, token, kT0).granted);
  EXPECT_TRUE(lease.Release(1));
  EXPECT_EQ(lease.BlockedFor(2, kT0), std::nullopt);
  EXPECT_FALSE(lease.Join(3, token, kT0).granted) << "the token ended with its lease";
}

TEST(ChannelLeaseTest, OneRequestTakesAtMostAnHour) {
  ChannelLease lease;
  EXPECT_EQ(lease.Take(1, "h", absl::Hours(100), kT0).remaining, ChannelLease::kMaxLength);
}

}  // namespace
}  // namespace canserver
