// The socketcand front end over real TCP: one listener for every channel, sessions that share the
// bus side with v5 clients (filters, transmit, periodic jobs, slow-client policy), and the beacon.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"
#include "net/socket_util.h"
#include "net/socketcand_bus.h"
#include "net/socketcand_client.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::FrameText;
using ::testing::HasSubstr;
using Client = testing::SocketcandClient;

class SocketcandServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    options.socketcand_port = 0;
    served_ =
        std::make_unique<testing::ServedBuses>(std::vector<std::string>{"can0", "can1"}, options);
    server_ = served_->server.get();
    buses_ = served_->buses;
    ASSERT_NE(server_, nullptr);
  }
  void SetUp() override { Start(); }
  // A client that said hi and opened `channel`.
  std::unique_ptr<Client> Open(const std::string& channel, int rcvbuf = 0) {
    auto c = std::make_unique<Client>(server_->socketcand_port(), rcvbuf);
    EXPECT_EQ(c->Next(), "< hi >");
    c->Send("< open " + channel + " >");
    EXPECT_EQ(c->Next(), "< ok >");
    return c;
  }
  std::unique_ptr<RemoteBus> ConnectV5(size_t channel, std::vector<CanFilter> filters = {}) {
    RemoteBusOptions opts;
    opts.channel = absl::StrCat("127.0.0.1:", server_->port(channel));
    opts.filters = std::move(filters);
    auto bus = RemoteBus::Connect(opts);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? *std::move(bus) : nullptr;
  }
  void WaitSubscribers(size_t channel, size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (server_->channel(channel).subscriber_count() < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  std::unique_ptr<testing::ServedBuses> served_;
  RemoteServer* server_ = nullptr;  // served_'s
  std::vector<std::shared_ptr<VirtualBus>> buses_;
};

TEST_F(SocketcandServerTest, OpenTakesAnyServedChannelByNameElseErrorAndClose) {
  Client c(server_->socketcand_port());
  EXPECT_EQ(c.Next(), "< hi >");
  c.Send("< open can7 >");
  EXPECT_EQ(c.Next(), "< error no channel 'can7' here; this server serves can0, can1 >");
  EXPECT_EQ(c.Next(), "");
  EXPECT_TRUE(c.eof());
  auto on1 = Open("can1");  // the second channel, through the same port
  WaitSubscribers(1, 1);
  EXPECT_EQ(server_->channel(1).subscriber_count(), 1u);
  EXPECT_EQ(server_->channel(0).subscriber_count(), 0u);
}

TEST_F(SocketcandServerTest, RawClientAndV5ClientExchangeFramesBothWays) {
  auto v5 = ConnectV5(0);
  auto sc = Open("can0");
  sc->Send("< rawmode >");
  EXPECT_EQ(sc->Next(), "< ok >");
  WaitSubscribers(0, 2);
  ASSERT_TRUE(v5->Send(CanFrame::Classic(0x123, {0x11, 0x22})).ok());
  ASSERT_TRUE(v5->Send(CanFrame::Classic(0x1ABCDEF0, {0xFF}, true)).ok());
  EXPECT_EQ(FrameText(sc->Next()), "123#1122");
  EXPECT_EQ(FrameText(sc->Next()), "1ABCDEF0#FF");
  sc->Send("< send 321 2 a b >< send 1AAAAAAA 0 >< sendrtr 7 3 >");
  for (const char* want : {"321#0A0B", "1AAAAAAA#", "007#R3"}) {
    auto got = v5->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value()) << want;
    EXPECT_EQ(FormatCansend(**got), want);
  }
  sc->Send("< echo >");
  EXPECT_EQ(sc->Next(), "< echo >");
}

TEST_F(SocketcandServerTest, TheClientLibraryExchangesFramesAndReportsErrors) {
  auto v5 = ConnectV5(0);
  auto wrong = SocketcandBus::Connect({{"127.0.0.1", server_->socketcand_port()}, "nope"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("no channel 'nope'"));
  auto bus = SocketcandBus::Connect({{"127.0.0.1", server_->socketcand_port()}, "can0"});
  ASSERT_TRUE(bus.ok()) << bus.status();
  WaitSubscribers(0, 2);
  CanFrame fd;
  fd.id = 0x1ABCDEF0;
  fd.flags = kCanFlagExtended | kCanFlagFd | kCanFlagBrs;
  fd.len = 16;
  fd.data[15] = 0x5A;
  for (const CanFrame& f : {CanFrame::Classic(0x123, {1, 2}), fd}) {
    ASSERT_TRUE((*bus)->Send(f).ok());
    auto got = v5->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, f);
  }
  ASSERT_TRUE(v5->Send(CanFrame::Classic(0x7FF, {9}, false)).ok());
  auto got = (*bus)->Recv(absl::Seconds(5));
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ(**got, CanFrame::Classic(0x7FF, {9}));
}

// canbench measures socketcand itself with the same library: without canserver's "< errors on >"
// (socketcand would take it for a bus name), and sending batches in one write.
TEST_F(SocketcandServerTest, TheClientLibrarySpeaksPlainSocketcandWhenAsked) {
  auto v5 = ConnectV5(0);
  SocketcandBusOptions options;
  options.server = {"127.0.0.1", server_->socketcand_port()};
  options.channel = "can0";
  options.errors_on = false;
  auto bus = SocketcandBus::Connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  WaitSubscribers(0, 2);
  std::vector<CanFrame> frames;
  for (uint8_t i = 0; i < 100; ++i) frames.push_back(CanFrame::Classic(0x100 + i, {i}));
  ASSERT_TRUE((*bus)->SendMany(frames).ok());
  for (const CanFrame& want : frames) {
    auto got = v5->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, want);
  }
}

TEST_F(SocketcandServerTest, BatchedFramesArriveInBusOrder) {
  auto sc = Open("can0");
  sc->Send("< rawmode >");
  EXPECT_EQ(sc->Next(), "< ok >");
  WaitSubscribers(0, 1);
  // 20,000 frames in batches that fit the client's ring, many elements per read.
  constexpr int kFrames = 20000;
  constexpr int kBatch = 4000;
  for (int first = 0; first < kFrames; first += kBatch) {
    for (int i = first; i < first + kBatch; ++i) {
      ASSERT_TRUE(buses_[0]->Inject(
          CanFrame::Classic(0x100, {static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)})));
    }
    for (int i = first; i < first + kBatch; ++i) {
      const std::string want = absl::StrFormat("100#%02X%02X", (i >> 8) & 0xFF, i & 0xFF);
      const std::string got = FrameText(sc->Next());
      if (got != want) FAIL() << "frame " << i << ": " << got << " != " << want;
    }
  }
}

TEST_F(SocketcandServerTest, EachClientHasItsOwnFilters) {
  // Two socketcand clients (BCM subscriptions) and two v5 clients (python-can filters) on can0.
  auto sa = Open("can0");
  auto sb = Open("can0");
  sa->Send("< subscribe 0 0 100 >");
  sb->Send("< subscribe 0 0 200 >< subscribe 0 0 1ABCDEF0 >");
  auto va = ConnectV5(0, {{0x100, 0x7FF, false}});
  auto vb = ConnectV5(0, {{0x300, 0x7FF, false}});
  WaitSubscribers(0, 4);
  absl::SleepFor(absl::Milliseconds(100));  // the subscriptions reach the CAN thread
  for (uint32_t id : {0x100u, 0x200u, 0x300u}) buses_[0]->Inject(CanFrame::Classic(id, {1}));
  buses_[0]->Inject(CanFrame::Classic(0x1ABCDEF0, {2}, true));
  EXPECT_EQ(FrameText(sa->Next()), "100#01");
  EXPECT_EQ(FrameText(sb->Next()), "200#01");
  EXPECT_EQ(FrameText(sb->Next()), "1ABCDEF0#02");
  EXPECT_EQ(sa->Next(absl::Milliseconds(200)), "");
  EXPECT_EQ(sb->Next(absl::Milliseconds(200)), "");
  auto got = va->Recv(absl::Seconds(5));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, 0x100u);
  got = vb->Recv(absl::Seconds(5));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, 0x300u);
}

TEST_F(SocketcandServerTest, PeriodicJobAddUpdateDeleteAndEndWithTheSession) {
  auto v5 = ConnectV5(0, {{0x123, 0x7FF, false}});
  auto sc = Open("can0");
  WaitSubscribers(0, 2);
  sc->Send("< add 0 20000 123 4 42 42 42 42 >");
  auto next = [&] {
    auto got = v5->Recv(absl::Seconds(2));
    return got.ok() && got->has_value() ? FormatCansend(**got) : std::string("none");
  };
  EXPECT_EQ(next(), "123#42424242");
  EXPECT_EQ(next(), "123#42424242");
  sc->Send("< update 123 3 11 22 33 >");
  std::string seen;
  for (int i = 0; i < 10 && seen != "123#112233"; ++i) seen = next();
  EXPECT_EQ(seen, "123#112233");
  sc->Send("< delete 123 >");
  sc->Send("< echo >");
  EXPECT_EQ(sc->Next(), "< echo >");
  while (v5->Recv(absl::Milliseconds(100)).value_or(std::nullopt).has_value()) {
  }
  EXPECT_FALSE(v5->Recv(absl::Milliseconds(200)).value_or(std::nullopt).has_value());
  // A job still running when the session ends stops with it.
  sc->Send("< add 0 20000 124 1 1 >");
  auto other = ConnectV5(0, {{0x124, 0x7FF, false}});
  auto got = other->Recv(absl::Seconds(2));
  ASSERT_TRUE(got.ok() && got->has_value());
  sc.reset();
  absl::SleepFor(absl::Milliseconds(200));
  while (other->Recv(absl::Milliseconds(50)).value_or(std::nullopt).has_value()) {
  }
  EXPECT_FALSE(other->Recv(absl::Milliseconds(200)).value_or(std::nullopt).has_value());
}

TEST_F(SocketcandServerTest, ControlModeStatisticsCountTheBus) {
  auto sc = Open("can0");
  buses_[0]->Inject(CanFrame::Classic(0x1, {1, 2, 3}));
  sc->Send("< controlmode >");
  EXPECT_EQ(sc->Next(), "< ok >");
  sc->Send("< statistics 100 >");
  const std::string stat = sc->Next(absl::Seconds(2));
  EXPECT_EQ(stat, "< stat 3 1 0 0 >");
}

TEST(SocketcandSlowClientTest, AClientThatStopsReadingIsDroppedForAndOthersGoOn) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.socketcand_port = 0;
  options.output_buffer_bytes = 4096;
  options.slow_client_timeout = absl::ZeroDuration();  // only drop
  auto bus = *VirtualBus::Create("can0");
  auto server = *RemoteServer::Create(options, bus);
  std::thread t([&] { (void)server->ServeForever(); });
  {
    Client stalled(server->socketcand_port(), 4096);
    Client reader(server->socketcand_port());
    for (Client* c : {&stalled, &reader}) {
      EXPECT_EQ(c->Next(), "< hi >");
      c->Send("< open can0 >< rawmode >");
      EXPECT_EQ(c->Next(), "< ok >");
      EXPECT_EQ(c->Next(), "< ok >");
    }
    while (server->channel().subscriber_count() < 2) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(50));
    // More than the stalled client's ring, output buffer and both sockets' buffers hold; paced by
    // the reader (at most 128 frames ahead of it), so any loss of its own would be the server's.
    constexpr int kFrames = 300000;
    std::atomic<int> got{0};
    std::thread producer([&] {
      for (int i = 0; i < kFrames; ++i) {
        while (i - got.load() > 128) absl::SleepFor(absl::Microseconds(20));
        ASSERT_TRUE(bus->Inject(CanFrame::Classic(0x10, {static_cast<uint8_t>(i)})));
      }
    });
    while (got < kFrames && !reader.Next(absl::Seconds(5)).empty()) ++got;
    producer.join();
    EXPECT_EQ(got, kFrames);  // the reader missed nothing
    uint64_t drops = 0;
    for (const auto& s : server->channel().Subscribers())
      drops += s->counters.drops_ring_full.Get();
    EXPECT_GT(drops, 0u);  // the stalled one's losses are counted
  }
  server->Shutdown();
  t.join();
}

TEST(SocketcandBeaconTest, ALoopbackListenerHearsAWellFormedBeaconNamingEveryChannel) {
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(udp.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&a), &len);
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.socketcand_port = 0;
  options.beacon = true;
  options.beacon_to = {HostPort{"127.0.0.1", ntohs(a.sin_port)}};
  std::vector<ServedChannel> channels = {{*VirtualBus::Create("vcan0"), 0},
                                         {*VirtualBus::Create("vcan1"), 0}};
  auto server = RemoteServer::Create(options, std::move(channels));
  ASSERT_TRUE(server.ok()) << server.status();
  std::thread t([&] { (void)(*server)->ServeForever(); });
  const absl::Time start = absl::Now();
  pollfd p{udp.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1) << "no beacon within 3 s";
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  char buf[2048];
  const ssize_t n = ::recv(udp.get(), buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  const std::string text(buf, static_cast<size_t>(n));
  // gtest's regex, not std::regex: GCC 12 warns inside <regex> under ASan (-Werror).
  EXPECT_THAT(text, ::testing::MatchesRegex(
                        "<CANBeacon name=\"[^\"]+\" type=\"SocketCAN\" description=\"canserver "
                        "[0-9.]+\"><URL>can://127\\.0\\.0\\.1:[0-9]+</URL><Bus "
                        "name=\"vcan0\"/><Bus name=\"vcan1\"/></CANBeacon>"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat(":", (*server)->socketcand_port(), "</URL>")));
  (*server)->Shutdown();
  t.join();
}

}  // namespace
}  // namespace canserver
