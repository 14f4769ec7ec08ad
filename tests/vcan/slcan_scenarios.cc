// A real CAN driver with bit timing: the kernel's slcan (serial-line CAN) on a pseudo-terminal,
// with a small emulated SLCAN adapter on the other end. vcan has no bit timing, so this is where
// BusResponse's real bit rate and --bitrate-policy meet a driver that has one.
//
// The adapter (SlcanAdapter) reads what the driver sends over the pty — "C\r" (close), "S0".."S8"
// + "\r" (bit rate: S5 = 250 kbit/s, S6 = 500 kbit/s), "O\r" (open), "t…"/"T…" frames — and can
// play a frame from the bus by writing "tIIILDD…\r". Kernel 6.0+ passes `ip link set slcan0 type
// can bitrate B` to the adapter as those commands when the interface goes up.
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tty.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using testing::RawCan;
using testing::RunShell;
using testing::TestServer;
using testing::VcanTest;

class SlcanAdapter {
 public:
  // `attach`: attach the slcan line discipline to the pty here (else whoever opens pts() does,
  // as canserver --interface slcan).
  explicit SlcanAdapter(bool attach = true) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) {
      error_ = absl::StrCat("pty: ", std::strerror(errno));
      return;
    }
    pts_ = ::ptsname(master_);
    if (!attach) {
      reader_ = std::thread([this] { Read(); });
      return;
    }
    slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY);
    int ldisc = N_SLCAN;
    if (slave_ < 0 || ::ioctl(slave_, TIOCSETD, &ldisc) != 0) {  // needs slcan.ko
      error_ = absl::StrCat("TIOCSETD N_SLCAN on ", ::ptsname(master_), ": ", std::strerror(errno));
      return;
    }
    char name[IFNAMSIZ] = {};
    if (::ioctl(slave_, SIOCGIFNAME, name) != 0) {
      error_ = absl::StrCat("SIOCGIFNAME: ", std::strerror(errno));
      return;
    }
    ifname_ = name;
    reader_ = std::thread([this] { Read(); });
  }
  ~SlcanAdapter() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (slave_ >= 0) ::close(slave_);  // detaches the line discipline: slcanN goes away
    if (master_ >= 0) ::close(master_);
  }
  // The interface the driver created ("slcan0"), empty if it could not be had.
  const std::string& ifname() const { return ifname_; }
  const std::string& error() const { return error_; }
  // The pty's device ("/dev/pts/3"): the serial port the adapter plays.
  const std::string& pts() const { return pts_; }
  // Every command line the driver sent so far, "\r" stripped.
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // Waits until the driver sent `line`.
  bool WaitFor(const std::string& line, absl::Duration timeout = absl::Seconds(10)) {
    return TestServer::WaitUntil(
        [&] {
          auto l = lines();
          return std::find(l.begin(), l.end(), line) != l.end();
        },
        timeout);
  }
  // The adapter received `text` from the bus ("t1232AABB").
  void FromBus(const std::string& text) {
    const std::string line = text + "\r";
    (void)!::write(master_, line.data(), line.size());
  }

 private:
  void Read() {
    std::string partial;
    while (!stop_) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) continue;
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] != '\r') {
          partial += buf[i];
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(partial);
        partial.clear();
      }
    }
  }

  int master_ = -1;
  int slave_ = -1;
  std::string pts_;
  std::string ifname_;
  std::string error_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> lines_;
};

std::string Sh(const std::string& cmd) {
  auto [out, rc] = RunShell(cmd);
  EXPECT_EQ(rc, 0) << cmd << ": " << out;
  return out;
}

// 19. A driver with bit timing: `ip link set slcan0 type can bitrate 500000` reaches the adapter
// as S6; BusResponse reports 500000 bit/s; a client asking for 250000 is refused under `check`;
// under `apply` the server sets the bus to 250000 (S5 at the adapter) when the client is alone.
TEST_F(VcanTest, Scenario19_SlcanBitTimingAndTheBitratePolicy) {
  SlcanAdapter adapter;
  if (adapter.ifname().empty()) GTEST_SKIP() << "no slcan here: " << adapter.error();
  const std::string dev = adapter.ifname();
  Sh(absl::StrFormat("ip link set %1$s type can bitrate 500000 && ip link set %1$s up", dev));
  ASSERT_TRUE(adapter.WaitFor("S6")) << "the driver never told the adapter 500 kbit/s";
  ASSERT_TRUE(adapter.WaitFor("O"));

  for (BitratePolicy policy : {BitratePolicy::kCheck, BitratePolicy::kApply}) {
    ServerOptions options;
    options.bitrate_policy = policy;
    auto ts = Serve(dev, false, options);
    ASSERT_NE(ts, nullptr);
    auto right = ts->Connect({}, 500000);
    ASSERT_NE(right, nullptr);
    EXPECT_THAT(right->channel_info(), HasSubstr("socketcan channel '" + dev + "', 500000 bit/s"));
    // Frames both ways through the real driver.
    ASSERT_TRUE(right->Send(CanFrame::Classic(0x123, {0xAA, 0xBB})).ok());
    EXPECT_TRUE(adapter.WaitFor("t1232AABB"));
    adapter.FromBus("t3211CC");
    std::optional<CanFrame> got = Recv(*right);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, CanFrame::Classic(0x321, {0xCC}));

    RemoteBusOptions opts;
    opts.channel = ts->address();
    opts.bitrate = 250000;
    auto wrong = RemoteBus::Connect(opts);
    ASSERT_FALSE(wrong.ok()) << "another client is on the bus: no rate change, under any policy";
    EXPECT_THAT(std::string(wrong.status().message()),
                HasSubstr(policy == BitratePolicy::kCheck
                              ? "the client asked for 250000 bit/s, but socketcan channel '" + dev +
                                    "' runs at 500000 bit/s"
                              : "1 other client(s) use it at 500000 bit/s"));
    if (policy == BitratePolicy::kApply) {
      right->Shutdown();
      ASSERT_TRUE(
          TestServer::WaitUntil([&] { return ts->server().channel().subscriber_count() == 0; }));
      auto alone = RemoteBus::Connect(opts);
      ASSERT_TRUE(alone.ok()) << alone.status();
      EXPECT_THAT((*alone)->channel_info(), HasSubstr("250000 bit/s"));
      EXPECT_TRUE(adapter.WaitFor("S5")) << "the server did not set 250 kbit/s at the adapter";
      std::printf("scenario 19: adapter saw: %s\n", absl::StrJoin(adapter.lines(), " ").c_str());
    }
  }
  // --restart-ms goes to the driver through netlink; slcan cannot restart from bus-off (no
  // do_set_mode since kernel 6.1 checks for it), so the answer is a clear refusal, and the
  // interface is up again afterwards.
  auto backend = SocketCanBackend::Open({dev});
  ASSERT_TRUE(backend.ok());
  const absl::Status restart = (*backend)->SetRestartMs(100);
  std::printf("scenario 19: restart-ms on %s: %s\n", dev.c_str(), restart.ToString().c_str());
  if (restart.ok()) {
    EXPECT_THAT(RunShell("ip -details link show " + dev).first, HasSubstr("restart-ms 100"));
  } else {
    EXPECT_THAT(std::string(restart.message()),
                HasSubstr("could not set restart-ms 100 on " + dev));
  }
  EXPECT_THAT(RunShell("ip link show " + dev).first, HasSubstr(",UP"));
}

// 36. canserver --interface slcan attaches the serial adapter itself: the bit rate reaches the
// adapter (S6, then O), frames go both ways, and the netdev it made is gone after canserver.
TEST_F(VcanTest, Scenario36_CanserverAttachesAnSlcanAdapterItself) {
  SlcanAdapter adapter(/*attach=*/false);
  ASSERT_FALSE(adapter.pts().empty()) << adapter.error();
  testing::CanserverProcess server(
      "slcan", {"--interface", "slcan", "--channel", adapter.pts() + "@115200", "--bitrate",
                "500000", "--port", "56901", "--host", "127.0.0.1"});
  ASSERT_TRUE(adapter.WaitFor("S6", absl::Seconds(20))) << server.Log();
  ASSERT_TRUE(adapter.WaitFor("O"));
  RemoteBusOptions opts;
  opts.channel = "127.0.0.1:56901";
  absl::StatusOr<std::unique_ptr<RemoteBus>> bus = absl::UnavailableError("not tried");
  for (int i = 0; i < 100 && !bus.ok(); ++i) {  // the server may still be starting
    bus = RemoteBus::Connect(opts);
    if (!bus.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(bus.ok()) << bus.status() << "\n" << server.Log();
  const std::string log = server.Log();
  const size_t at = log.find(" attached as ");
  ASSERT_NE(at, std::string::npos) << log;
  // The kernel names it (slcanN before 6.0, canN since).
  const std::string netdev = log.substr(at + 13, log.find(' ', at + 13) - at - 13);
  EXPECT_THAT((*bus)->channel_info(),
              HasSubstr("socketcan channel '" + netdev + "', 500000 bit/s"));
  // --list sees the attached adapter's netdev with its bit rate.
  const std::string listed = RunShell(testing::BuildDir() + "/tools/canserver --list").first;
  EXPECT_THAT(listed,
              ::testing::ContainsRegex(netdev + " +- +socketcan " + netdev + " +up +no +500000"))
      << listed;
  ASSERT_TRUE((*bus)->Send(CanFrame::Classic(0x123, {0xAA, 0xBB})).ok());
  EXPECT_TRUE(adapter.WaitFor("t1232AABB"));
  adapter.FromBus("t3211CC");
  std::optional<CanFrame> got = Recv(**bus);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, CanFrame::Classic(0x321, {0xCC}));
  EXPECT_NE(::if_nametoindex(netdev.c_str()), 0u);
  (*bus)->Shutdown();
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  const std::string after = server.Log();
  EXPECT_THAT(after, HasSubstr("detached from " + adapter.pts()));
  // The kernel unregisters it as the line discipline closes (its own work, a moment later).
  EXPECT_TRUE(TestServer::WaitUntil([&] { return ::if_nametoindex(netdev.c_str()) == 0; },
                                    absl::Seconds(5)))
      << netdev << " was left behind\n"
      << after;
  std::printf("scenario 36: canserver attached %s as %s; adapter saw: %s\n", adapter.pts().c_str(),
              netdev.c_str(), absl::StrJoin(adapter.lines(), " ").c_str());
}

}  // namespace
}  // namespace canserver
