// CAN FD end to end over loopback TCP on the virtual bus: protocol version 6 clients next to
// version 5 clients, FD periodic jobs, and RemoteBus falling back to version 5 against a server
// that only speaks it.
#include <netinet/in.h>
#include <sys/socket.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using testing::RecvFrame;
using testing::TestServer;

CanFrame Fd(uint32_t id, uint8_t len, uint8_t flags = kCanFlagBrs) {
  CanFrame f;
  f.id = id;
  f.flags = static_cast<uint8_t>(kCanFlagFd | flags);
  f.len = len;
  for (uint8_t i = 0; i < len; ++i) f.data[i] = static_cast<uint8_t>(0xA0 + i);
  return f;
}

TEST(CanFdTest, Version5AndVersion6ClientsSideBySide) {
  TestServer ts;
  auto sender = ts.Connect();  // v6
  auto v6 = ts.Connect();
  auto v5 = ts.Connect({}, 0, v5::kProtocolVersion);
  ASSERT_TRUE(sender && v6 && v5);
  EXPECT_TRUE(sender->fd());
  EXPECT_FALSE(v5->fd());
  // Keep the v5 client's counters alive past the snapshot: the registry holds shared_ptrs.
  auto subs = ts.server().channel().Subscribers();
  ASSERT_EQ(subs.size(), 3u);

  const std::vector<CanFrame> sent = {CanFrame::Classic(0x100, {1}),
                                      Fd(0x101, 64, kCanFlagBrs | kCanFlagEsi),
                                      Fd(0x1ABCDEF0, 12, kCanFlagExtended),
                                      CanFrame::Classic(0x102, {2, 3}),
                                      Fd(0x103, 0, 0),
                                      Fd(0x104, 48),
                                      CanFrame::Classic(0x105, {}, /*ext=*/false)};
  for (const CanFrame& f : sent) ASSERT_TRUE(sender->Send(f).ok());

  for (const CanFrame& f : sent) {
    std::optional<CanFrame> got = RecvFrame(*v6);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, f) << ToString(f);
  }
  size_t classic = 0;
  for (const CanFrame& f : sent) {
    if (f.fd()) continue;
    ++classic;
    std::optional<CanFrame> got = RecvFrame(*v5);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, f);
  }
  EXPECT_FALSE(RecvFrame(*v5, absl::Milliseconds(100)).has_value());
  // The v5 client's session counted each FD frame it could not be given.
  EXPECT_EQ(subs[2]->counters.drops_unsupported.Get(), sent.size() - classic);
  EXPECT_EQ(subs[2]->counters.frames_to_client.Get(), classic);
  EXPECT_EQ(subs[1]->counters.drops_unsupported.Get(), 0u);
  EXPECT_EQ(subs[1]->counters.frames_to_client.Get(), sent.size());
}

TEST(CanFdTest, FiltersApplyToFdFrames) {
  TestServer ts;
  auto sender = ts.Connect();
  auto filtered = ts.Connect({CanFilter{0x200, 0x7FF, false}});
  ASSERT_TRUE(sender && filtered);
  ASSERT_TRUE(sender->Send(Fd(0x100, 16)).ok());
  ASSERT_TRUE(sender->Send(Fd(0x200, 20)).ok());
  std::optional<CanFrame> got = RecvFrame(*filtered);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, Fd(0x200, 20));
  EXPECT_FALSE(RecvFrame(*filtered, absl::Milliseconds(100)).has_value());
}

TEST(CanFdTest, FdFramesFromTheBusReachVersion6Clients) {
  TestServer ts;
  auto v6 = ts.Connect();
  ASSERT_TRUE(v6);
  CanFrame f = Fd(0x7FF, 32, kCanFlagEsi);
  ASSERT_TRUE(ts.bus().Inject(f));
  std::optional<CanFrame> got = RecvFrame(*v6);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, f);
}

TEST(CanFdTest, FdPeriodicJobRunsAtItsPeriod) {
  TestServer ts;
  auto owner = ts.Connect();
  auto watcher = ts.Connect();
  ASSERT_TRUE(owner && watcher);
  auto task = owner->SendPeriodic(Fd(0x321, 64), absl::Milliseconds(20), absl::Milliseconds(200));
  ASSERT_TRUE(task.ok()) << task.status();
  std::vector<CanFrame> got;
  while (auto f = RecvFrame(*watcher, absl::Milliseconds(500))) got.push_back(*f);
  EXPECT_EQ(got.size(), 10u) << "one at t=0 and every 20 ms while t < 200 ms";
  for (const CanFrame& f : got) EXPECT_EQ(f, Fd(0x321, 64));
  if (got.size() >= 2) {
    const double period_ms =
        static_cast<double>(got.back().timestamp_ns - got.front().timestamp_ns) / 1e6 /
        static_cast<double>(got.size() - 1);
    EXPECT_NEAR(period_ms, 20.0, 5.0);
  }
}

TEST(CanFdTest, Version5BusRefusesToSendFd) {
  TestServer ts;
  auto v5 = ts.Connect({}, 0, v5::kProtocolVersion);
  ASSERT_TRUE(v5);
  absl::Status st = v5->Send(Fd(0x1, 12));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("speaks protocol version 5, which cannot carry CAN FD"));
  EXPECT_FALSE(v5->SendPeriodic(Fd(0x1, 12), absl::Milliseconds(10)).ok());
  EXPECT_TRUE(v5->Send(CanFrame::Classic(0x1, {1})).ok()) << "classic frames still go";
}

// A server that speaks protocol version 5 only, as the original Python server does: a BusRequest
// with any other version closes the connection without a word. Version 5 sessions get a
// BusResponse and then every CanMessage they send echoed back.
class V5OnlyServer {
 public:
  V5OnlyServer() {
    listen_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_.get(), 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~V5OnlyServer() {
    ::shutdown(listen_.get(), SHUT_RDWR);
    thread_.join();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int refused_versions() const { return refused_.load(); }

 private:
  void Serve() {
    while (true) {
      UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;
      v5::StreamDecoder dec;
      bool open = false;
      char buf[4096];
      while (true) {
        const ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        dec.Append(absl::string_view(buf, static_cast<size_t>(n)));
        bool close = false;
        while (true) {
          auto ev = dec.Next();
          if (!ev.ok()) {
            close = true;
            break;
          }
          if (!ev->has_value()) break;
          if (auto* req = std::get_if<v5::BusRequest>(&**ev); req && req->version != 5) {
            refused_.fetch_add(1);
            close = true;  // the original's answer to a version mismatch: none
            break;
          }
          std::string out;
          if (std::holds_alternative<v5::FilterConfig>(**ev) && !open) {
            open = true;
            (void)v5::Encode(v5::BusResponse{"virtual channel 'v5only'"}, &out);
          } else if (std::holds_alternative<v5::CanMessage>(**ev)) {
            (void)v5::Encode(**ev, &out);
          }
          if (!out.empty()) ::send(conn.get(), out.data(), out.size(), MSG_NOSIGNAL);
        }
        if (close) break;
      }
    }
  }

  UniqueFd listen_;
  uint16_t port_ = 0;
  std::atomic<int> refused_{0};
  std::thread thread_;
};

TEST(CanFdTest, RemoteBusFallsBackToVersion5AgainstAVersion5OnlyServer) {
  V5OnlyServer server;
  RemoteBusOptions opts;
  opts.channel = server.address();
  auto bus = RemoteBus::Connect(opts);
  ASSERT_TRUE(bus.ok()) << bus.status();
  EXPECT_EQ(server.refused_versions(), 1) << "asked for version 6 first";
  EXPECT_EQ((*bus)->protocol_version(), 5);
  EXPECT_THAT((*bus)->channel_info(), HasSubstr("v5only"));
  ASSERT_TRUE((*bus)->Send(CanFrame::Classic(0x42, {4, 2})).ok());
  std::optional<CanFrame> echoed = RecvFrame(**bus);
  ASSERT_TRUE(echoed.has_value());
  EXPECT_EQ(*echoed, CanFrame::Classic(0x42, {4, 2}));
  EXPECT_FALSE((*bus)->Send(Fd(0x42, 12)).ok());
}

TEST(CanFdTest, ServerRefusesUnknownVersionsAndNamesBoth) {
  TestServer ts;
  RemoteBusOptions opts;
  opts.channel = ts.address();
  opts.protocol_version = 7;
  EXPECT_FALSE(RemoteBus::Connect(opts).ok());
  UniqueFd raw = ts.ConnectRaw();
  std::string hello;
  ASSERT_TRUE(v5::Encode(v5::BusRequest{7, 0}, &hello).ok());
  ASSERT_TRUE(v5::Encode(v5::FilterConfig{}, &hello).ok());
  testing::SendAll(raw.get(), hello);
  std::vector<v5::Event> events = testing::ReadEventsUntilClosed(raw.get());
  ASSERT_EQ(events.size(), 1u);
  auto* ex = std::get_if<v5::RemoteException>(&events[0]);
  ASSERT_NE(ex, nullptr);
  EXPECT_THAT(ex->text, HasSubstr("server speaks versions 5 and 6"));
}

}  // namespace
}  // namespace canserver
