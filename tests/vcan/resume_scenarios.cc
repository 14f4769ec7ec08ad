// Sessions that survive a broken connection, on a real kernel (#28): the kernel's broadcast
// manager runs a client's periodic job on vcan0; when the client's connection is cut for 2 s the
// job goes on (a raw socket on vcan0 sees no gap), and the client resumes its session.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "net/tcp_proxy.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using testing::RawCan;
using testing::TcpProxy;
using testing::TestServer;
using testing::VcanTest;

// 37. A 20 ms heartbeat through a 2 s cut, seen by a raw socket on vcan0; the frames the bus
// carried meanwhile reach the resumed client; the time from reconnect to the first resumed
// frame.
TEST_F(VcanTest, Scenario37_AHeartbeatOutlivesACutAndTheSessionResumes) {
  ServerOptions options;
  options.resume_grace = absl::Seconds(10);
  auto ts = Serve("vcan0", false, options);
  TcpProxy proxy(ts->server().port());
  RemoteBusOptions o;
  o.channel = proxy.address();
  o.reconnect = absl::Seconds(15);
  auto client = RemoteBus::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->resumable());
  RawCan raw("vcan0");
  ASSERT_TRUE(raw.ok());
  auto job = (*client)->SendPeriodic(CanFrame::Classic(0x321, {0xAA}), absl::Milliseconds(20));
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<int64_t> times;
  auto watch = [&](absl::Duration d) {
    for (const absl::Time end = absl::Now() + d; absl::Now() < end;) {
      std::optional<CanFrame> f = raw.Read(end - absl::Now());
      if (f.has_value() && f->id == 0x321) times.push_back(f->timestamp_ns);
    }
  };
  watch(absl::Milliseconds(300));
  proxy.Cut();
  watch(absl::Milliseconds(300));
  for (uint8_t i = 0; i < 50; ++i) ASSERT_TRUE(raw.Write(CanFrame::Classic(0x400, {i})));
  watch(absl::Milliseconds(1700));
  proxy.Restore();
  const absl::Time back = absl::Now();
  std::vector<uint8_t> gap_frames;
  absl::Duration first = absl::InfiniteDuration();
  while (gap_frames.size() < 50) {
    auto got = (*client)->Recv(absl::Seconds(15));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value()) << "the frames of the gap did not come";
    if ((**got).id != 0x400) continue;
    if (gap_frames.empty()) first = absl::Now() - back;
    gap_frames.push_back((**got).data[0]);
  }
  watch(absl::Milliseconds(300));
  for (size_t i = 0; i < gap_frames.size(); ++i) ASSERT_EQ(gap_frames[i], i);
  const ReconnectStatus status = (*client)->reconnect_status();
  EXPECT_EQ(status.resumed, 1u) << status.last;
  EXPECT_EQ(status.frames_lost, 0u) << status.last;
  ASSERT_GT(times.size(), 80u);
  int64_t widest = 0;
  for (size_t i = 1; i < times.size(); ++i) widest = std::max(widest, times[i] - times[i - 1]);
  std::printf(
      "scenario 37: 20 ms BCM job through a 2 s cut: %zu frames on vcan0, widest gap "
      "%.1f ms; first frame of the gap %.1f ms after the network came back; %s\n",
      times.size(), static_cast<double>(widest) / 1e6, absl::ToDoubleMilliseconds(first),
      status.last.c_str());
  EXPECT_LT(widest, 100'000'000) << "the heartbeat stopped during the cut";
}

}  // namespace
}  // namespace canserver
