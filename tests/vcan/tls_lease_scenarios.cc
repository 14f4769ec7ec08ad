// TLS and leases on a real kernel (#27): kernel TLS keeps the CAN thread's direct writes, and a
// lease keeps other clients' frames and broadcast-manager jobs off vcan0.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/server_status.h"
#include "net/tls.h"
#include "process_util.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using testing::RawCan;
using testing::SeqFrame;
using testing::SeqOf;
using testing::TestServer;
using testing::VcanTest;
using testing::Watch;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// 32. Where the kernel has the `tls` upper-layer protocol (the VM loads it), a TLS session's keys
// go to the kernel after the handshake: the session says so, and the CAN thread writes frames
// to an idle client's socket itself (plain send(), encrypted by the kernel) as without TLS.
TEST_F(VcanTest, Scenario32_KernelTlsKeepsTheCanThreadsDirectWrites) {
  if (ReadFile("/proc/sys/net/ipv4/tcp_available_ulp").find("tls") == std::string::npos) {
    if (std::getenv("CANSERVER_IN_VM") != nullptr) FAIL() << "the VM loads the tls module";
    GTEST_SKIP() << "this kernel offers no kernel TLS (modprobe tls)";
  }
  char dir[] = "/tmp/canserver-ktls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string certs = dir;
  auto [out, rc] =
      testing::RunShell(absl::StrCat(CANSERVER_SOURCE_DIR, "/tests/tls/make_certs.sh ", certs));
  ASSERT_EQ(rc, 0) << out;
  ServerOptions options;
  auto tls = TlsServer::Create(
      {certs + "/server.pem", certs + "/server.key", "", ClientCerts::kNone, false});
  ASSERT_TRUE(tls.ok()) << tls.status();
  options.tls = *tls;
  options.direct_write = true;
  auto ts = Serve("vcan0", false, options);
  RemoteBusOptions opts;
  opts.channel = ts->address();
  opts.tls.ca = certs + "/ca.pem";
  auto bus = RemoteBus::Connect(opts);
  ASSERT_TRUE(bus.ok()) << bus.status();
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts->server().channel().subscriber_count() == 1; }));
  const ServerStatus status = ts->server().Status();
  ASSERT_EQ(status.channels.size(), 1u);
  ASSERT_EQ(status.channels[0].sessions.size(), 1u);
  const std::string transport = status.channels[0].sessions[0]->info.transport;
  EXPECT_THAT(transport, HasSubstr("kernel TLS send"));

  RawCan writer("vcan0");
  ASSERT_TRUE(writer.ok());
  constexpr uint32_t kFrames = 1000;
  for (uint32_t i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(writer.Write(SeqFrame(0x100, i)));
    if (i % 50 == 0) absl::SleepFor(absl::Milliseconds(2));  // idle gaps: the direct path's case
  }
  for (uint32_t i = 0; i < kFrames; ++i) {
    std::optional<CanFrame> f = Recv(**bus);
    ASSERT_TRUE(f.has_value()) << "lost after " << i;
    ASSERT_EQ(SeqOf(*f), i) << "order";
  }
  const uint64_t direct = ts->server().channel().counters().direct_frames.Get();
  EXPECT_GT(direct, 0u) << "the CAN thread never wrote the kTLS socket itself";
  std::printf("scenario 32: %s; %u frames in order, %lu written by the CAN thread directly\n",
              transport.c_str(), kFrames, static_cast<unsigned long>(direct));
  (void)testing::RunShell("rm -rf " + certs);
}

// 33. While one client holds the lease, only its frames reach vcan0: another's frame never does
// and its broadcast-manager job stops in the kernel; the job runs again once the lease ends.
TEST_F(VcanTest, Scenario33_ALeaseKeepsOtherClientsOffTheKernelBus) {
  auto ts = Serve("vcan0");
  auto holder = ts->Connect();
  auto other = ts->Connect();
  RawCan raw("vcan0");
  ASSERT_TRUE(raw.ok());
  auto job = other->SendPeriodic(CanFrame::Classic(0x300, {1}), absl::Milliseconds(10));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE(Watch(raw, 0x300, absl::Milliseconds(300)).empty()) << "the BCM job does not run";

  ASSERT_TRUE(holder->Lease(absl::Seconds(30)).ok());
  absl::SleepFor(absl::Milliseconds(300));  // paused within a housekeeping tick
  (void)Watch(raw, 0x300, absl::Milliseconds(50));
  ASSERT_TRUE(other->Send(CanFrame::Classic(0x301, {2})).ok());
  ASSERT_TRUE(holder->Send(CanFrame::Classic(0x302, {3})).ok());
  // What reaches vcan0 meanwhile: the holder's frame, and neither the job's nor the other's.
  std::set<uint32_t> seen;
  for (const absl::Time end = absl::Now() + absl::Milliseconds(500); absl::Now() < end;) {
    if (std::optional<CanFrame> f = raw.Read(end - absl::Now())) seen.insert(f->id);
  }
  EXPECT_TRUE(seen.contains(0x302)) << "the holder's frame did not go out";
  EXPECT_FALSE(seen.contains(0x301)) << "the refused frame went out";
  EXPECT_FALSE(seen.contains(0x300)) << "the job ran on";
  // It receives the bus as before (its own job's last frames, the holder's), then the refusal.
  absl::StatusOr<std::optional<CanFrame>> refused = other->Recv(absl::Seconds(5));
  for (int i = 0; i < 1000 && refused.ok() && refused->has_value(); ++i) {
    refused = other->Recv(absl::Seconds(5));
  }
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("vcan0: leased by session"));

  ASSERT_TRUE(holder->Lease(absl::ZeroDuration()).ok());
  EXPECT_FALSE(Watch(raw, 0x300, absl::Seconds(1)).empty()) << "the job did not resume";
  std::printf("scenario 33: the lease kept session 2 off vcan0; its BCM job paused and resumed\n");
}

}  // namespace
}  // namespace canserver
