// CAN FD on a real kernel: vcan0 (MTU 72, CAN FD) with cansend/candump as independent oracles,
// the broadcast manager timing an FD periodic job, and vcan2 set to the classic MTU refusing FD.
#include <cctype>
#include <string>

#include "core/text_format.h"
#include "gmock/gmock.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using testing::Candump;
using ::testing::HasSubstr;
using testing::RawCan;
using testing::Shell;
using testing::TestServer;
using testing::VcanTest;

std::string HexBytes(int n, int first) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, absl::Hex((first + i) & 0xFF, absl::kZeroPad2));
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

CanFrame Fd(uint32_t id, uint8_t len, uint8_t flags) {
  CanFrame f;
  f.id = id;
  f.flags = static_cast<uint8_t>(kCanFlagFd | flags);
  f.len = len;
  for (uint8_t i = 0; i < len; ++i) f.data[i] = i;
  return f;
}

// 21. cansend's FD frames reach a version 6 client exactly; a version 5 client misses them,
// counted.
TEST_F(VcanTest, Scenario21_CansendFdFramesReachVersion6Clients) {
  auto ts = Serve("vcan0");
  auto v6 = ts->Connect();
  auto v5 = ts->Connect({}, 0, v5::kProtocolVersion);
  ASSERT_TRUE(v6 && v5);
  auto subs = ts->server().channel().Subscribers();
  ASSERT_EQ(subs.size(), 2u);
  const std::string brs = "123##1" + HexBytes(64, 0);
  const std::string esi = "1ABCDEF0##2" + HexBytes(12, 0x40);
  const std::string both = "7FF##3" + HexBytes(8, 0x80);
  for (const std::string& f : {brs, esi, both, std::string("100#01")}) {
    ASSERT_EQ(testing::RunShell("cansend vcan0 " + f).second, 0) << f;
  }
  for (const std::string& want : {brs, esi, both, std::string("100#01")}) {
    std::optional<CanFrame> got = Recv(*v6);
    ASSERT_TRUE(got.has_value()) << want;
    EXPECT_EQ(FormatCansend(*got), want);
  }
  std::optional<CanFrame> classic = Recv(*v5);
  ASSERT_TRUE(classic.has_value());
  EXPECT_EQ(FormatCansend(*classic), "100#01");
  EXPECT_FALSE(Recv(*v5, absl::Milliseconds(300)).has_value());
  EXPECT_EQ(subs[1]->counters.drops_unsupported.Get(), 3u);
}

// 22. A version 6 client's FD frames appear in candump -L exactly.
TEST_F(VcanTest, Scenario22_ClientFdFramesAppearInCandumpExactly) {
  auto ts = Serve("vcan0");
  auto client = ts->Connect();
  ASSERT_TRUE(client);
  Candump dump("vcan0", 3);
  const std::vector<CanFrame> sent = {Fd(0x123, 64, kCanFlagBrs),
                                      Fd(0x1ABCDEF0, 20, kCanFlagExtended | kCanFlagEsi),
                                      Fd(0x000, 0, 0)};
  for (const CanFrame& f : sent) ASSERT_TRUE(client->Send(f).ok());
  // The kernel (6.1) adds CANFD_FDF (4) to the flags of every FD frame a raw socket writes, and
  // candump prints it in the flags digit: "123##5…" for BRS. Compare what the lines say.
  const std::vector<std::string> lines = dump.Frames(3);
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < sent.size(); ++i) {
    absl::StatusOr<CanFrame> seen = ParseCansend(lines[i]);
    ASSERT_TRUE(seen.ok()) << lines[i];
    EXPECT_EQ(*seen, sent[i]) << lines[i] << " is not " << ToString(sent[i]);
  }
  EXPECT_EQ(lines[0].substr(0, 6), "123##5");
  EXPECT_EQ(lines[0].substr(6), HexBytes(64, 0));
  EXPECT_EQ(ts->server().channel().counters().bus_tx.Get(), 3u);
}

// 23. An FD periodic job runs in the kernel's broadcast manager at its period.
TEST_F(VcanTest, Scenario23_FdPeriodicJobThroughTheBroadcastManager) {
  auto ts = Serve("vcan0");
  auto client = ts->Connect();
  RawCan raw("vcan0");
  ASSERT_TRUE(client && raw.ok());
  const CanFrame job = Fd(0x321, 64, kCanFlagBrs);
  auto task = client->SendPeriodic(job, absl::Milliseconds(20));
  ASSERT_TRUE(task.ok()) << task.status();
  std::vector<CanFrame> seen;
  const absl::Time end = absl::Now() + absl::Seconds(1);
  while (absl::Now() < end) {
    std::optional<CanFrame> f = raw.Read(end - absl::Now());
    if (f && f->id == 0x321) seen.push_back(*f);
  }
  std::printf("scenario 23: 20 ms FD job sent %zu frames in 1 s\n", seen.size());
  EXPECT_GE(seen.size(), 40u);
  EXPECT_LE(seen.size(), 55u);
  for (const CanFrame& f : seen) EXPECT_EQ(f, job) << ToString(f);
  ASSERT_TRUE((*task)->Stop().ok());
}

// 24. An interface with the classic MTU refuses FD frames with TransmitFail and a counter that
// says why; classic frames still go; an FD periodic job is refused with the reason.
TEST_F(VcanTest, Scenario24_ClassicMtuInterfaceRefusesFd) {
  ASSERT_EQ(testing::RunShell("ip link set vcan2 down && ip link set vcan2 mtu 16 && "
                              "ip link set vcan2 up")
                .second,
            0);
  {
    auto ts = Serve("vcan2");
    auto client = ts->Connect();
    RawCan raw("vcan2");
    ASSERT_TRUE(client && raw.ok());
    ASSERT_TRUE(client->Send(Fd(0x123, 16, kCanFlagBrs)).ok());
    ASSERT_TRUE(client->Send(CanFrame::Classic(0x124, {1})).ok());
    std::optional<CanFrame> seen = raw.Read(absl::Seconds(5));
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(*seen, CanFrame::Classic(0x124, {1})) << "only the classic frame is on the bus";
    ASSERT_TRUE(TestServer::WaitUntil([&] {
      (void)client->Recv(absl::Milliseconds(10));
      return client->transmit_failures() == 1;
    }));
    const ChannelCounters& c = ts->server().channel().counters();
    EXPECT_EQ(c.tx_no_fd.Get(), 1u);
    EXPECT_EQ(c.bus_tx_failed.Get(), 1u);
    EXPECT_EQ(c.tx_bus_error.Get(), 0u);
    auto task = client->SendPeriodic(Fd(0x125, 8, 0), absl::Milliseconds(10));
    ASSERT_TRUE(task.ok());  // sent; the server answers with the reason and ends the session
    absl::StatusOr<std::optional<CanFrame>> answer = client->Recv(absl::Seconds(5));
    ASSERT_FALSE(answer.ok());
    EXPECT_THAT(std::string(answer.status().message()),
                HasSubstr("vcan2 is a classic CAN interface (MTU 16)"));
  }
  (void)Shell("ip link set vcan2 down; ip link set vcan2 mtu 72; ip link set vcan2 up");
}

// 25. FD log lines as canremote log writes them (FormatLogLine) are read back by can-utils'
// canplayer, which puts them on vcan0 for a version 6 client.
TEST_F(VcanTest, Scenario25_CanplayerReplaysFdLogLines) {
  auto ts = Serve("vcan0");
  auto client = ts->Connect();
  ASSERT_TRUE(client);
  const std::vector<CanFrame> frames = {
      Fd(0x123, 64, kCanFlagBrs), Fd(0x1ABCDEF, 12, kCanFlagExtended), CanFrame::Classic(0x7, {7})};
  const std::string file = absl::StrCat("/tmp/fd-", ::getpid(), ".log");
  {
    std::ofstream out(file);
    for (CanFrame f : frames) {
      f.timestamp_ns = 1'700'000'000'000'000'000;
      out << FormatLogLine(f, "vcan0") << '\n';
    }
  }
  auto [out, rc] = testing::RunShell("canplayer -I " + file);
  ASSERT_EQ(rc, 0) << out;
  for (const CanFrame& want : frames) {
    std::optional<CanFrame> got = Recv(*client);
    ASSERT_TRUE(got.has_value()) << ToString(want);
    EXPECT_EQ(*got, want);
  }
}

}  // namespace
}  // namespace canserver
