// The exclusive transmit lease (core/channel_lease.h, docs/security.md "Leases"): what a
// flashing tool relies on while it holds a channel, end to end through canserver.
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/access_rules.h"
#include "net/server_status.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::TestServer;

// The next frame `bus` receives within `timeout`, or nullopt.
std::optional<CanFrame> Next(RemoteBus& bus, absl::Duration timeout = absl::Seconds(5)) {
  absl::StatusOr<std::optional<CanFrame>> got = bus.Recv(timeout);
  if (!got.ok()) {
    ADD_FAILURE() << got.status();
    return std::nullopt;
  }
  return *got;
}

// Frames with `id` that `bus` receives during `window`.
int CountFor(RemoteBus& bus, uint32_t id, absl::Duration window) {
  const absl::Time end = absl::Now() + window;
  int n = 0;
  while (absl::Now() < end) {
    absl::StatusOr<std::optional<CanFrame>> got = bus.Recv(end - absl::Now());
    if (got.ok() && got->has_value() && (*got)->id == id) ++n;
  }
  return n;
}

TEST(LeaseTest, OthersFramesAreRefusedNamingTheHolderUntilItReleases) {
  TestServer ts;
  auto holder = ts.Connect();
  auto other = ts.Connect();
  auto listener = ts.Connect();
  absl::StatusOr<LeaseGrant> lease = holder->Lease(absl::Seconds(30));
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_THAT(lease->token, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_GT(lease->remaining, absl::Seconds(29));

  ASSERT_TRUE(other->Send(CanFrame::Classic(0x200, {1})).ok());
  absl::StatusOr<std::optional<CanFrame>> told = other->Recv(absl::Seconds(5));
  ASSERT_FALSE(told.ok());
  EXPECT_THAT(std::string(told.status().message()),
              MatchesRegex("test: leased by session [0-9]+ \\(127\\.0\\.0\\.1:[0-9]+\\) for "
                           "(30|29) s more, so this client may not send frames until the lease "
                           "ends.*"));
  ASSERT_TRUE(holder->Send(CanFrame::Classic(0x100, {2})).ok());
  std::optional<CanFrame> seen = Next(*listener);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->id, 0x100u) << "the refused frame reached the bus";

  // Another lease is refused, naming the holder; the status shows it.
  absl::StatusOr<LeaseGrant> second = other->Lease(absl::Seconds(5));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("leased by session"));
  const std::string json = RenderStatusJson(ts.server().Status());
  EXPECT_THAT(json, HasSubstr("\"holder\": \"session"));
  EXPECT_THAT(json, HasSubstr("\"refused_lease\": 2"));

  ASSERT_TRUE(holder->Lease(absl::ZeroDuration()).ok());  // released
  ASSERT_TRUE(other->Send(CanFrame::Classic(0x201, {3})).ok());
  seen = Next(*listener);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->id, 0x201u);
  EXPECT_THAT(RenderStatusJson(ts.server().Status()), HasSubstr("\"lease\": null"));
}

TEST(LeaseTest, OthersPeriodicJobsPauseForTheLeaseAndResumeAfter) {
  TestServer ts;
  auto holder = ts.Connect();
  auto other = ts.Connect();
  auto listener = ts.Connect({{0x300, 0x7FF, std::nullopt}});
  auto job = other->SendPeriodic(CanFrame::Classic(0x300, {1}), absl::Milliseconds(10));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_GT(CountFor(*listener, 0x300, absl::Milliseconds(300)), 5);

  ASSERT_TRUE(holder->Lease(absl::Seconds(30)).ok());
  // Paused within a housekeeping tick (100 ms); what was already queued still drains.
  absl::SleepFor(absl::Milliseconds(400));
  (void)CountFor(*listener, 0x300, absl::Milliseconds(50));
  EXPECT_EQ(CountFor(*listener, 0x300, absl::Milliseconds(500)), 0);

  ASSERT_TRUE(holder->Lease(absl::ZeroDuration()).ok());
  EXPECT_GT(CountFor(*listener, 0x300, absl::Seconds(1)), 5) << "the job did not resume";
}

TEST(LeaseTest, TheLeaseEndsWithItsHolderAndWhenItLapses) {
  TestServer ts;
  auto other = ts.Connect();
  auto listener = ts.Connect();
  {
    auto holder = ts.Connect();
    ASSERT_TRUE(holder->Lease(absl::Seconds(30)).ok());
    holder->Shutdown();
  }
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 2; }));
  ASSERT_TRUE(other->Send(CanFrame::Classic(0x210, {})).ok());
  std::optional<CanFrame> seen = Next(*listener);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->id, 0x210u);

  RemoteBusOptions opts;  // not ts.Connect(): it counts sessions, and one has gone
  opts.channel = ts.address();
  absl::StatusOr<std::unique_ptr<RemoteBus>> brief = RemoteBus::Connect(opts);
  ASSERT_TRUE(brief.ok()) << brief.status();
  ASSERT_TRUE((*brief)->Lease(absl::Seconds(1)).ok());
  EXPECT_FALSE(other->Lease(absl::Seconds(1)).ok());
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_TRUE(other->Lease(absl::Seconds(1)).ok()) << "the lapsed lease still held the channel";
}

TEST(LeaseTest, AClientWithTheTokenJoinsTheLeaseAndMayTransmit) {
  TestServer ts;
  auto holder = ts.Connect();
  auto listener = ts.Connect();
  absl::StatusOr<LeaseGrant> lease = holder->Lease(absl::Seconds(30));
  ASSERT_TRUE(lease.ok()) << lease.status();

  RemoteBusOptions opts;
  opts.channel = ts.address();
  opts.lease_token = lease->token;  // what `canremote lease` hands its command
  absl::StatusOr<std::unique_ptr<RemoteBus>> member = RemoteBus::Connect(opts);
  ASSERT_TRUE(member.ok()) << member.status();
  EXPECT_EQ((*member)->lease_note(), "");
  ASSERT_TRUE((*member)->Send(CanFrame::Classic(0x220, {})).ok());
  std::optional<CanFrame> seen = Next(*listener);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->id, 0x220u);

  opts.lease_token = std::string(32, 'a');
  absl::StatusOr<std::unique_ptr<RemoteBus>> stranger = RemoteBus::Connect(opts);
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  EXPECT_THAT((*stranger)->lease_note(), HasSubstr("not that of the lease in force"));
}

TEST(LeaseTest, AMonitorMayNotTakeALease) {
  ServerOptions options;
  absl::StatusOr<AccessRules> rules = AccessRules::Parse({"all=* monitor"});
  ASSERT_TRUE(rules.ok()) << rules.status();
  options.access = *std::move(rules);
  TestServer ts(std::move(options));
  auto monitor = ts.Connect();
  absl::StatusOr<LeaseGrant> lease = monitor->Lease(absl::Seconds(30));
  ASSERT_FALSE(lease.ok());
  EXPECT_THAT(std::string(lease.status().message()), HasSubstr("so it may not take a lease"));
}

}  // namespace
}  // namespace canserver
