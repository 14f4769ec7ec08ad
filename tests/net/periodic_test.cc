// Periodic transmit jobs run by the server (timerfd on the virtual bus). Timing bounds are
// deliberately loose: these machines are shared and noisy.
#include "gtest/gtest.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::TestServer;

// Collects frames with `id` arriving at `bus` during `window`.
std::vector<CanFrame> Collect(RemoteBus& bus, uint32_t id, absl::Duration window) {
  std::vector<CanFrame> out;
  const absl::Time end = absl::Now() + window;
  while (true) {
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    auto got = bus.Recv(left);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || !got->has_value()) break;
    if ((*got)->id == id) out.push_back(**got);
  }
  return out;
}

TEST(PeriodicTest, SendsAtThePeriodUntilStopped) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  auto task = a->SendPeriodic(CanFrame::Classic(0x123, {1}), absl::Milliseconds(20));
  ASSERT_TRUE(task.ok()) << task.status();
  std::vector<CanFrame> got = Collect(*b, 0x123, absl::Milliseconds(1000));
  // 1 s at 20 ms is 50 frames (51 with the first at t=0); allow for a loaded machine.
  EXPECT_GE(got.size(), 35u);
  EXPECT_LE(got.size(), 56u);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_GT(got[i].timestamp_ns, got[i - 1].timestamp_ns);
  ASSERT_TRUE((*task)->Stop().ok());
  absl::SleepFor(absl::Milliseconds(100));
  (void)Collect(*b, 0x123, absl::Milliseconds(50));  // frames already in flight
  EXPECT_TRUE(Collect(*b, 0x123, absl::Milliseconds(200)).empty()) << "still sending after Stop";
}

TEST(PeriodicTest, TheStarterSeesItsJobLikeAnyBusFrame) {
  // As on SocketCAN, where the broadcast manager is a socket of its own, periodic frames reach
  // every client, the one that started the job included.
  TestServer ts;
  auto a = ts.Connect();
  auto task =
      a->SendPeriodic(CanFrame::Classic(0x55, {5}), absl::Milliseconds(10), absl::Milliseconds(50));
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(Collect(*a, 0x55, absl::Milliseconds(400)).size(), 5u);
}

TEST(PeriodicTest, DurationEndsTheJobAfterExactlyItsFrames) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  auto task = a->SendPeriodic(CanFrame::Classic(0x124, {2}), absl::Milliseconds(10),
                              absl::Milliseconds(100));
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(Collect(*b, 0x124, absl::Milliseconds(600)).size(), 10u);
  // Start for the same id restarts an ended job.
  ASSERT_TRUE((*task)->Modify(CanFrame::Classic(0x124, {3})).ok());
  std::vector<CanFrame> again = Collect(*b, 0x124, absl::Milliseconds(600));
  ASSERT_EQ(again.size(), 10u);
  EXPECT_EQ(again[0].data[0], 3);
}

TEST(PeriodicTest, ModifyChangesTheDataOfARunningJob) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  auto task = a->SendPeriodic(CanFrame::Classic(0x125, {1}), absl::Milliseconds(10));
  ASSERT_TRUE(task.ok());
  ASSERT_FALSE(Collect(*b, 0x125, absl::Milliseconds(100)).empty());
  ASSERT_TRUE((*task)->Modify(CanFrame::Classic(0x125, {2})).ok());
  absl::SleepFor(absl::Milliseconds(50));
  (void)Collect(*b, 0x125, absl::Milliseconds(30));
  std::vector<CanFrame> after = Collect(*b, 0x125, absl::Milliseconds(200));
  ASSERT_GE(after.size(), 5u);
  for (const CanFrame& f : after) EXPECT_EQ(f.data[0], 2);
}

TEST(PeriodicTest, SessionEndStopsItsJobs) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  auto t1 = a->SendPeriodic(CanFrame::Classic(0x126, {1}), absl::Milliseconds(10));
  auto t2 = a->SendPeriodic(CanFrame::Classic(0x1ABCDEF, {2}, true), absl::Milliseconds(10));
  ASSERT_TRUE(t1.ok() && t2.ok());
  ASSERT_FALSE(Collect(*b, 0x126, absl::Milliseconds(100)).empty());
  a->Shutdown();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  absl::SleepFor(absl::Milliseconds(50));
  (void)Collect(*b, 0x126, absl::Milliseconds(30));
  auto later = b->Recv(absl::Milliseconds(200));
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(later->has_value()) << "a closed session's jobs still send";
}

TEST(PeriodicTest, TooManyJobsIsARemoteException) {
  ServerOptions options;
  options.max_periodic_jobs = 2;
  TestServer ts(options);
  auto a = ts.Connect();
  for (uint32_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(a->SendPeriodic(CanFrame::Classic(id, {}), absl::Seconds(10)).ok());
  }
  absl::StatusOr<std::optional<CanFrame>> got = std::optional<CanFrame>();
  do {
    got = a->Recv(absl::Seconds(2));
  } while (got.ok() && got->has_value());
  ASSERT_FALSE(got.ok());
  EXPECT_NE(std::string(got.status().message()).find("too many periodic jobs"), std::string::npos)
      << got.status();
}

}  // namespace
}  // namespace canserver
