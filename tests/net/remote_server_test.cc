// canserver's bus semantics and protocol behaviour, seen by clients over loopback TCP.
#include "net/remote_server.h"

#include <dirent.h>
#include <poll.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::Encode;
using ::testing::HasSubstr;
using testing::ReadEventsUntilClosed;
using testing::RecvFrame;
using testing::SendAll;
using testing::TestServer;

TEST(RemoteServerTest, TwoClientsExchangeFramesWithoutEcho) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x123, {0xDE, 0xAD})).ok());
  ASSERT_TRUE(b->Send(CanFrame::Classic(0x1ABCDEF0, {1, 2, 3, 4, 5, 6, 7, 8}, true)).ok());

  std::optional<CanFrame> at_b = RecvFrame(*b);
  ASSERT_TRUE(at_b.has_value());
  EXPECT_EQ(*at_b, CanFrame::Classic(0x123, {0xDE, 0xAD}));
  EXPECT_GT(at_b->timestamp_ns, 0);
  std::optional<CanFrame> at_a = RecvFrame(*a);
  ASSERT_TRUE(at_a.has_value());
  EXPECT_EQ(*at_a, CanFrame::Classic(0x1ABCDEF0, {1, 2, 3, 4, 5, 6, 7, 8}, true));

  // Neither gets its own frame back.
  EXPECT_FALSE(RecvFrame(*a, absl::Milliseconds(100)).has_value());
  EXPECT_FALSE(RecvFrame(*b, absl::Milliseconds(100)).has_value());
}

// top -H, ps -L and perf show which of the server's threads is busy, and canbench reports what
// they used: the CAN thread is "can:" + the channel, io threads "io:N".
TEST(RemoteServerTest, ThreadsAreNamedAndTheirCpuTimeIsCounted) {
  TestServer ts;
  auto client = ts.Connect();
  for (uint32_t i = 0; i < 2000; ++i) ASSERT_TRUE(ts.bus().Inject(testing::SeqFrame(0x10, i)));
  for (uint32_t i = 0; i < 2000; ++i) ASSERT_TRUE(RecvFrame(*client).has_value()) << i;
  // Each thread names itself when it first runs; an io thread with no session yet may not have
  // run on a loaded machine (seen under stress-ng: "io:1" still the process's name).
  std::set<std::string> names;
  auto read_names = [&] {
    names.clear();
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) return false;
    while (const dirent* e = ::readdir(dir)) {
      std::ifstream comm(absl::StrCat("/proc/self/task/", e->d_name, "/comm"));
      std::string name;
      if (std::getline(comm, name)) names.insert(name);
    }
    ::closedir(dir);
    return names.count("can:test") && names.count("io:0") && names.count("io:1");
  };
  (void)TestServer::WaitUntil(read_names);
  EXPECT_THAT(names, ::testing::IsSupersetOf({"can:test", "io:0", "io:1"}));
  EXPECT_GT(ts.server().ThreadCpuTime(), absl::ZeroDuration());
}

// --cpu-affinity 0/0: the CAN thread and the io threads run on CPU 0 only; a CPU the process may
// not use is refused at start, naming it.
TEST(RemoteServerTest, CpuAffinityPinsTheThreads) {
  ServerOptions options;
  options.cpu_affinity = *ParseCpuAffinity("0/0");
  TestServer ts(options);
  auto client = ts.Connect();  // the threads are running
  std::map<std::string, std::string> allowed;
  DIR* dir = ::opendir("/proc/self/task");
  ASSERT_NE(dir, nullptr);
  while (const dirent* e = ::readdir(dir)) {
    std::ifstream comm(absl::StrCat("/proc/self/task/", e->d_name, "/comm"));
    std::ifstream status(absl::StrCat("/proc/self/task/", e->d_name, "/status"));
    std::string name, line;
    if (!std::getline(comm, name)) continue;
    while (std::getline(status, line)) {
      if (absl::StartsWith(line, "Cpus_allowed_list:")) allowed[name] = line.substr(19);
    }
  }
  ::closedir(dir);
  EXPECT_EQ(allowed["can:test"], "0");
  EXPECT_EQ(allowed["io:0"], "0");

  options.cpu_affinity = *ParseCpuAffinity("/1000");
  options.host = "127.0.0.1";
  options.port = 0;
  auto bus = *VirtualBus::Create("other");
  auto refused = RemoteServer::Create(options, bus);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("CPU 1000 is not one"));
}

TEST(RemoteServerTest, RemoteAndEmptyFramesCrossUnchanged) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  CanFrame rtr = CanFrame::Classic(0x7FF, {});
  rtr.flags |= kCanFlagRemote;
  rtr.len = 8;
  ASSERT_TRUE(a->Send(rtr).ok());
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x000, {})).ok());
  EXPECT_EQ(RecvFrame(*b), rtr);
  EXPECT_EQ(RecvFrame(*b), CanFrame::Classic(0x000, {}));
}

TEST(RemoteServerTest, BusFramesReachEveryClientInBusOrder) {
  TestServer ts;
  std::vector<std::unique_ptr<RemoteBus>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(ts.Connect());
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(ts.bus().Inject(testing::SeqFrame(0x10, i)));
  for (auto& c : clients) {
    int64_t last_ts = 0;
    for (uint32_t i = 0; i < 1000; ++i) {
      std::optional<CanFrame> f = RecvFrame(*c);
      ASSERT_TRUE(f.has_value()) << "frame " << i;
      ASSERT_EQ(testing::SeqOf(*f), i);
      EXPECT_GE(f->timestamp_ns, last_ts);
      last_ts = f->timestamp_ns;
    }
  }
}

TEST(RemoteServerTest, FiltersStandardExtendedAndEither) {
  TestServer ts;
  auto std_only = ts.Connect({{0x100, 0x7FF, false}});
  auto ext_only = ts.Connect({{0x100, 0x7FF, true}});
  auto either = ts.Connect({{0x100, 0x7FF, std::nullopt}});
  auto two = ts.Connect({{0x200, 0x7FF, std::nullopt}, {0x300, 0x7FF, std::nullopt}});
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x100, {1})));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x100, {2}, true)));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x200, {3})));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x300, {4}, true)));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x101, {5})));

  auto data_of = [](RemoteBus& bus) {
    std::vector<int> seen;
    while (auto f = RecvFrame(bus, absl::Milliseconds(200))) seen.push_back(f->data[0]);
    return seen;
  };
  EXPECT_EQ(data_of(*std_only), (std::vector<int>{1}));
  EXPECT_EQ(data_of(*ext_only), (std::vector<int>{2}));
  EXPECT_EQ(data_of(*either), (std::vector<int>{1, 2}));
  EXPECT_EQ(data_of(*two), (std::vector<int>{3, 4}));
}

TEST(RemoteServerTest, FiltersCanBeReplacedDuringTheSession) {
  TestServer ts;
  auto c = ts.Connect({{0x100, 0x7FF, std::nullopt}});
  ASSERT_TRUE(c->SetFilters({{0x200, 0x7FF, std::nullopt}}).ok());
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x100, {1})));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x200, {2})));
  std::optional<CanFrame> f = RecvFrame(*c);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, 0x200u);
}

TEST(RemoteServerTest, ChannelInfoNamesTheChannelAndSaysItHasNoBitTiming) {
  TestServer ts;
  auto c = ts.Connect({}, 250000);
  EXPECT_EQ(c->channel_info(), absl::StrCat("virtual channel 'test', no bit timing (asked "
                                            "250000 bit/s) (canserver ",
                                            kVersion, ") on ", ts.address()));
}

TEST(RemoteServerTest, ForcedBitrateIsReportedForABusWithoutBitTiming) {
  ServerOptions options;
  options.forced_bitrate = 1000000;
  TestServer ts(options);
  auto c = ts.Connect({}, 250000);
  EXPECT_THAT(c->channel_info(), HasSubstr("1000000 bit/s (--bitrate)"));
}

// A bus with a bit rate (the virtual wire at 250 kbit/s) under each --bitrate-policy.
std::shared_ptr<VirtualBus> Wire250k() { return *VirtualBus::Create("wire", 1024, 250000); }

absl::StatusOr<std::unique_ptr<RemoteBus>> Open(TestServer& ts, int32_t bitrate) {
  RemoteBusOptions opts;
  opts.channel = ts.address();
  opts.bitrate = bitrate;
  return RemoteBus::Connect(opts);
}

TEST(BitratePolicyTest, CheckRefusesAClientAskingForAnotherRateAndNamesBoth) {
  TestServer ts({}, false, Wire250k());
  auto wrong = Open(ts, 500000);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr("bit rate mismatch: the client asked for 500000 bit/s, but virtual "
                        "channel 'wire' runs at 250000 bit/s"));
  for (int32_t fine : {250000, 0}) {
    auto ok = Open(ts, fine);
    ASSERT_TRUE(ok.ok()) << fine << ": " << ok.status();
    EXPECT_THAT((*ok)->channel_info(), HasSubstr("virtual channel 'wire', 250000 bit/s"));
  }
}

TEST(BitratePolicyTest, IgnoreLetsEveryClientInAndTellsTheRealRate) {
  ServerOptions options;
  options.bitrate_policy = BitratePolicy::kIgnore;
  TestServer ts(options, false, Wire250k());
  auto c = Open(ts, 500000);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT((*c)->channel_info(), HasSubstr("250000 bit/s"));
}

TEST(BitratePolicyTest, ApplySetsTheBusWhenNobodyElseIsOnIt) {
  ServerOptions options;
  options.bitrate_policy = BitratePolicy::kApply;
  auto wire = Wire250k();
  TestServer ts(options, false, wire);
  auto first = Open(ts, 500000);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT((*first)->channel_info(), HasSubstr("500000 bit/s"));
  EXPECT_EQ(wire->timing().bitrate, 500000);
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  auto second = Open(ts, 125000);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("cannot set virtual channel 'wire' to 125000 bit/s: 1 other client(s) "
                        "use it at 500000 bit/s"));
  EXPECT_EQ(wire->timing().bitrate, 500000);
}

// #24: a client set the bus to 10 bit/s, and the rate stayed after it left.
TEST(BitratePolicyTest, ApplyRefusesARateTheControllerCannotRun) {
  ServerOptions options;
  options.bitrate_policy = BitratePolicy::kApply;
  auto wire = Wire250k();
  TestServer ts(options, false, wire);
  auto slow = Open(ts, 10);
  ASSERT_FALSE(slow.ok());
  EXPECT_THAT(std::string(slow.status().message()),
              HasSubstr("10 bit/s is not a rate virtual channel 'wire' can run: 5000 to 1000000 "
                        "bit/s"));
  EXPECT_EQ(wire->timing().bitrate, 250000);
}

TEST(RemoteServerTest, WrongVersionGetsARemoteExceptionAndTheServerGoesOn) {
  TestServer ts;
  UniqueFd raw = ts.ConnectRaw();
  SendAll(raw.get(), Encode({v5::BusRequest{4, 500000}, v5::FilterConfig{}}));
  std::vector<v5::Event> events = ReadEventsUntilClosed(raw.get());
  ASSERT_EQ(events.size(), 1u);
  auto* ex = std::get_if<v5::RemoteException>(&events[0]);
  ASSERT_NE(ex, nullptr);
  EXPECT_THAT(ex->text, HasSubstr("protocol version mismatch"));
  // The server still serves others.
  auto a = ts.Connect();
  auto b = ts.Connect();
  ASSERT_TRUE(a->Send(CanFrame::Classic(1, {})).ok());
  EXPECT_TRUE(RecvFrame(*b).has_value());
}

TEST(RemoteServerTest, GarbageEndsOnlyThatSession) {
  TestServer ts;
  auto good = ts.Connect();
  UniqueFd raw = ts.ConnectRaw();
  SendAll(raw.get(),
          Encode({v5::BusRequest{5, 500000}, v5::FilterConfig{}}) + "\x09\x00\x00\x00\x00");
  std::vector<v5::Event> events = ReadEventsUntilClosed(raw.get());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<v5::BusResponse>(events[0]));
  auto* ex = std::get_if<v5::RemoteException>(&events[1]);
  ASSERT_NE(ex, nullptr);
  EXPECT_THAT(ex->text, HasSubstr("unknown event id 9"));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x42, {})));
  EXPECT_TRUE(RecvFrame(*good).has_value());
}

TEST(RemoteServerTest, HandshakeWrittenByteByByte) {
  TestServer ts;
  UniqueFd raw = ts.ConnectRaw();
  const std::string hello = Encode({v5::BusRequest{5, 500000}, v5::FilterConfig{}});
  for (char c : hello) {
    SendAll(raw.get(), std::string(1, c));
    absl::SleepFor(absl::Milliseconds(2));
  }
  v5::StreamDecoder dec;
  char buf[512];
  pollfd p{raw.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  const ssize_t n = ::recv(raw.get(), buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  dec.Append(absl::string_view(buf, static_cast<size_t>(n)));
  auto ev = dec.Next();
  ASSERT_TRUE(ev.ok() && ev->has_value());
  EXPECT_TRUE(std::holds_alternative<v5::BusResponse>(**ev));
}

TEST(RemoteServerTest, RefusedTransmissionsGiveTransmitFail) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  ts.bus().SetTxError(ENETDOWN);
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x1, {})).ok());
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x2, {})).ok());
  EXPECT_FALSE(RecvFrame(*a, absl::Milliseconds(300)).has_value());
  EXPECT_EQ(a->transmit_failures(), 2u);
  EXPECT_FALSE(RecvFrame(*b, absl::Milliseconds(50)).has_value()) << "nothing reached the bus";
  EXPECT_EQ(ts.server().channel().counters().bus_tx_failed.Get(), 2u);
  ts.bus().SetTxError(0);
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x3, {})).ok());
  std::optional<CanFrame> f = RecvFrame(*b);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, 0x3u);
}

TEST(RemoteServerTest, ErrorFramesOnlyWithTheFlag) {
  CanFrame err;
  err.flags = kCanFlagError | kCanFlagExtended;
  err.id = 0x4;
  err.len = 8;
  {
    TestServer ts;
    auto c = ts.Connect();
    ASSERT_TRUE(ts.bus().Inject(err));
    ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x5, {})));
    std::optional<CanFrame> f = RecvFrame(*c);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->id, 0x5u) << "error frame delivered without --error-frames";
  }
  {
    TestServer ts({}, /*error_frames=*/true);
    auto c = ts.Connect();
    ASSERT_TRUE(ts.bus().Inject(err));
    std::optional<CanFrame> f = RecvFrame(*c);
    ASSERT_TRUE(f.has_value());
    EXPECT_TRUE(f->error());
    EXPECT_EQ(f->id, 0x4u);
  }
}

TEST(RemoteServerTest, ShutdownTellsConnectedClients) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  const absl::Time start = absl::Now();
  ts.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  for (auto* c : {a.get(), b.get()}) {
    auto got = c->Recv(absl::Seconds(2));
    ASSERT_FALSE(got.ok());
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("server shutting down"));
  }
}

TEST(RemoteServerTest, ServerFullIsExplained) {
  ServerOptions options;
  options.max_clients = 2;
  TestServer ts(options);
  auto a = ts.Connect();
  auto b = ts.Connect();
  RemoteBusOptions opts;
  opts.channel = ts.address();
  auto c = RemoteBus::Connect(opts);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("server full"));
}

TEST(RemoteServerTest, SilentClientsAreClosedAfterTheHandshakeTimeout) {
  ServerOptions options;
  options.handshake_timeout = absl::Milliseconds(300);
  TestServer ts(options);
  UniqueFd raw = ts.ConnectRaw();
  std::vector<v5::Event> events = ReadEventsUntilClosed(raw.get());
  ASSERT_EQ(events.size(), 1u);
  auto* ex = std::get_if<v5::RemoteException>(&events[0]);
  ASSERT_NE(ex, nullptr);
  EXPECT_THAT(ex->text, HasSubstr("handshake timeout"));
}

TEST(RemoteServerTest, BindingATakenPortFailsClearly) {
  TestServer ts;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = ts.server().port();
  auto second = RemoteServer::Create(options, *VirtualBus::Create("x"));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("bind(127.0.0.1:"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("Address already in use"));
}

// Recv(0) is how one thread multiplexes several buses (canbench --reader-threads): it takes what
// has arrived and never waits. It once waited 1 ms per empty call, which delayed every other bus
// that thread served.
TEST(RemoteServerTest, ClientRecvWithZeroTimeoutNeverWaits) {
  TestServer ts;
  auto a = ts.Connect();
  auto b = ts.Connect();
  ASSERT_TRUE(a && b);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 200; ++i) EXPECT_FALSE(RecvFrame(*b, absl::ZeroDuration()).has_value());
  // 200 empty polls take well under a millisecond; waiting 1 ms each would take 200 ms.
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));

  ASSERT_TRUE(a->Send(CanFrame::Classic(0x42, {7})).ok());
  pollfd p{b->fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(RecvFrame(*b, absl::ZeroDuration()), CanFrame::Classic(0x42, {7}));
}

TEST(RemoteServerTest, ClientLibraryReportsConnectionErrors) {
  RemoteBusOptions opts;
  opts.channel = "127.0.0.1:1";  // nothing listens on port 1
  auto bus = RemoteBus::Connect(opts);
  ASSERT_FALSE(bus.ok());
  EXPECT_THAT(std::string(bus.status().message()), HasSubstr("connect(127.0.0.1:1)"));
  opts.channel = "127.0.0.1:notaport";
  EXPECT_THAT(std::string(RemoteBus::Connect(opts).status().message()),
              HasSubstr("port 'notaport'"));
}

}  // namespace
}  // namespace canserver
