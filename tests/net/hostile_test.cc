// #24, a hostile network: what one host (or a few) did to take the rig away from everyone else,
// each as a test that failed before the limits and passes with them. Loopback only: 127.0.0.2,
// 127.0.0.3 … are other hosts (Linux answers for all of 127.0.0.0/8).
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"
#include "net/socketcand_client.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::ConnectFrom;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::RecvFrame;
using testing::TestServer;

class HostileTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options) {
    options.socketcand_port = 0;
    served_ =
        std::make_unique<testing::ServedBuses>(std::vector<std::string>{"can0", "can1"}, options);
    server_ = served_->server.get();
    ASSERT_NE(server_, nullptr);
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      GTEST_SKIP() << "cannot bind 127.0.0.2 here";
    }
  }
  std::unique_ptr<RemoteBus> V5(size_t channel) {
    RemoteBusOptions opts;
    opts.channel = absl::StrCat("127.0.0.1:", server_->port(channel));
    auto bus = RemoteBus::Connect(opts);
    last_error_ = bus.ok() ? "" : std::string(bus.status().message());
    return bus.ok() ? *std::move(bus) : nullptr;
  }
  // Opens `n` silent connections from `source` to `port`; returns those still open after the
  // server had its say, and collects what the refused ones heard.
  std::vector<UniqueFd> Pile(const char* source, uint16_t port, int n,
                             std::vector<std::string>* refusals) {
    std::vector<UniqueFd> fds;
    for (int i = 0; i < n; ++i) {
      UniqueFd fd = ConnectFrom(source, port);
      if (fd.valid()) fds.push_back(std::move(fd));
    }
    // Until the server has had its say: a refusal is text and a close; the rest stay silent.
    std::vector<std::string> heard(fds.size());
    std::vector<bool> closed(fds.size(), false);
    while (true) {
      std::vector<pollfd> p;
      std::vector<size_t> which;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (closed[i]) continue;
        p.push_back({fds[i].get(), POLLIN, 0});
        which.push_back(i);
      }
      if (p.empty() || ::poll(p.data(), p.size(), 500) <= 0) break;
      for (size_t k = 0; k < p.size(); ++k) {
        if ((p[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        char buf[512];
        const ssize_t got = ::recv(p[k].fd, buf, sizeof buf, 0);
        if (got <= 0) {
          closed[which[k]] = true;
        } else {
          heard[which[k]].append(buf, static_cast<size_t>(got));
        }
      }
    }
    std::vector<UniqueFd> open;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (closed[i]) {
        refusals->push_back(heard[i]);
      } else {
        open.push_back(std::move(fds[i]));
      }
    }
    return open;
  }

  std::unique_ptr<testing::ServedBuses> served_;
  RemoteServer* server_ = nullptr;  // served_'s
  std::string last_error_;
};

// Before: 256 silent socketcand connections from one host took every slot, and a v5 client of
// another channel was refused "server full" 100 times out of 100.
TEST_F(HostileTest, OneHostsPileOfHandshakesLeavesRoomForOthers) {
  Start({});
  if (IsSkipped()) return;
  std::vector<std::string> refusals;
  std::vector<UniqueFd> held =
      Pile("127.0.0.2", server_->socketcand_port(), 100, &refusals);  // the whole quota and more
  EXPECT_EQ(held.size(), 16u);
  ASSERT_EQ(refusals.size(), 84u);
  EXPECT_THAT(refusals[0], HasSubstr("too many connections from 127.0.0.2"));  // before "< hi >"
  for (const char* other : {"127.0.0.3", "127.0.0.4"}) {  // two more hosts, 16 each
    auto more = Pile(other, server_->port(0), 16, &refusals);
    for (auto& fd : more) held.push_back(std::move(fd));
  }
  EXPECT_EQ(server_->admission().handshakes(), 48u);
  // A legitimate client of the other channel gets in and its frames flow.
  auto a = V5(1);
  auto b = V5(1);
  ASSERT_TRUE(a && b) << last_error_;
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x123, {1})).ok());
  auto got = RecvFrame(*b);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, 0x123u);
}

TEST_F(HostileTest, RefusalsNameTheLimitAndTheFlag) {
  ServerOptions options;
  options.max_clients_per_address = 2;
  Start(options);
  if (IsSkipped()) return;
  std::vector<std::string> refusals;
  auto held = Pile("127.0.0.2", server_->socketcand_port(), 3, &refusals);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0],
            "< error too many connections from 127.0.0.2 (2; canserver "
            "--max-clients-per-address) >");
  held.clear();
  // A v5 client hears it as a RemoteException: RemoteBus (and the python plugin) raise with it.
  auto a = V5(0);
  auto b = V5(0);
  auto c = V5(0);
  EXPECT_TRUE(a && b);
  EXPECT_FALSE(c);
  EXPECT_THAT(last_error_, HasSubstr("too many connections from 127.0.0.1"));
  const ServerStatus status = server_->Status();
  bool counted = false;
  for (const auto& [reason, n] : status.refused) counted |= reason == "per_address" && n == 2;
  EXPECT_TRUE(counted);
}

// One channel's crowd cannot lock out another channel's clients.
TEST_F(HostileTest, AFullChannelLeavesTheOtherOpen) {
  ServerOptions options;
  options.max_clients_per_channel = 3;
  Start(options);
  if (IsSkipped()) return;
  std::vector<std::unique_ptr<RemoteBus>> crowd;
  for (int i = 0; i < 3; ++i) crowd.push_back(V5(0));
  for (auto& c : crowd) ASSERT_TRUE(c) << last_error_;
  EXPECT_FALSE(V5(0));
  EXPECT_THAT(last_error_, HasSubstr("this channel is full (3 clients"));
  // socketcand names its channel at open: refused then, and told why.
  testing::SocketcandClient sc(server_->socketcand_port());
  EXPECT_EQ(sc.Next(), "< hi >");
  sc.Send("< open can0 >");
  EXPECT_THAT(sc.Next(), HasSubstr("< error this channel is full"));
  EXPECT_TRUE(V5(1)) << last_error_;
  crowd.pop_back();  // a slot is free again once its session has ended
  EXPECT_TRUE(TestServer::WaitUntil([&] { return V5(0) != nullptr; })) << last_error_;
}

// Before: 64 socketcand jobs of 1 µs ran the virtual bus at 4-10 M frames/s, wedged an io thread,
// and the session outlived its client. Now the floor is 1 ms, the channel's jobs together stay
// within kDefaultPeriodicRate, and the io thread keeps serving.
TEST_F(HostileTest, PeriodicJobsHaveAFloorAndAChannelBudget) {
  Start({});
  if (IsSkipped()) return;
  testing::SocketcandClient sc(server_->socketcand_port());
  EXPECT_EQ(sc.Next(), "< hi >");
  sc.Send("< errors on >< open can0 >");
  EXPECT_EQ(sc.Next(), "< ok >");
  EXPECT_EQ(sc.Next(), "< ok >");
  sc.Send("< add 0 1 123 1 AA >");
  EXPECT_THAT(sc.Next(), HasSubstr("below the shortest allowed, 1ms"));
  int accepted = 0;
  std::string refusal;
  for (int i = 0; i < 64; ++i) {
    sc.Send(absl::StrFormat("< add 0 1000 %X 1 AA >< echo >", 0x200 + i));
    const std::string reply = sc.Next();
    if (reply == "< echo >") {
      ++accepted;
    } else {
      refusal = reply;
      EXPECT_EQ(sc.Next(), "< echo >");
    }
  }
  EXPECT_EQ(accepted, 10) << "10 jobs of 1 ms: 10,000 frames/s, the budget of a bus without bit "
                             "timing";
  EXPECT_THAT(refusal, HasSubstr("more than the 10000 frames/s allowed"));
  EXPECT_THAT(refusal, HasSubstr("--max-periodic-rate"));
  // Another client is served meanwhile.
  auto a = V5(0);
  auto b = V5(0);
  ASSERT_TRUE(a && b) << last_error_;
  ASSERT_TRUE(a->Send(CanFrame::Classic(0x7FF, {9})).ok());
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    auto f = RecvFrame(*b);
    ASSERT_TRUE(f.has_value());
    seen = f->id == 0x7FF;
  }
  EXPECT_TRUE(seen);
  // The jobs' client leaves: its session ends and its budget is free for others.
  const size_t before = server_->channel(0).subscriber_count();
  sc = testing::SocketcandClient(server_->socketcand_port());  // closes the first connection
  EXPECT_TRUE(
      TestServer::WaitUntil([&] { return server_->channel(0).subscriber_count() == before - 1; }));
  EXPECT_TRUE(TestServer::WaitUntil([&] { return server_->channel(0).periodic_load() == 0; }));
}

// A backend whose periodic jobs never come back: the io thread that asks for them is wedged.
class StuckJobsBus : public CanBackend {
 public:
  explicit StuckJobsBus(std::shared_ptr<VirtualBus> bus) : bus_(std::move(bus)) {}
  std::string channel_info() const override { return bus_->channel_info(); }
  std::string name() const override { return bus_->name(); }
  int rx_fd() const override { return bus_->rx_fd(); }
  size_t Receive(CanFrame* out, size_t max, uint64_t* drops) noexcept override {
    return bus_->Receive(out, max, drops);
  }
  size_t Send(const CanFrame* frames, size_t n, int* error) noexcept override {
    return bus_->Send(frames, n, error);
  }
  bool PrepareSleep() noexcept override { return bus_->PrepareSleep(); }
  void WakeDone() noexcept override { bus_->WakeDone(); }
  absl::StatusOr<std::unique_ptr<PeriodicJobs>> CreatePeriodicJobs(EventLoop* loop) override {
    release_.WaitForNotification();
    return bus_->CreatePeriodicJobs(loop);
  }
  absl::Notification release_;

 private:
  std::shared_ptr<VirtualBus> bus_;
};

// Before: systemd's watchdog was pinged whatever the threads did, so a hung server was never
// restarted. StalledThreads() names a thread whose loop stopped; canserver stops pinging then.
TEST(WatchdogTest, AStuckIoThreadIsNamedAndAHealthyServerIsNot) {
  auto stuck = std::make_shared<StuckJobsBus>(*VirtualBus::Create("stuck", 1 << 10));
  ServerOptions options;
  options.io_threads = 1;
  testing::TestServer ts(options, false, stuck);
  RemoteServer& server = ts.server();
  constexpr absl::Duration kQuiet = absl::Milliseconds(1500);
  for (int i = 0; i < 3; ++i) {  // idle, but alive: every loop passes at least once a second
    EXPECT_THAT(server.StalledThreads(kQuiet), IsEmpty());
    absl::SleepFor(absl::Seconds(1));
  }
  std::thread client([&] {
    RemoteBusOptions opts;
    opts.channel = ts.address();
    (void)RemoteBus::Connect(opts);  // its io thread opens the bus and hangs there
  });
  std::vector<std::string> stalled;
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (stalled.empty() && absl::Now() < end) {
    stalled = server.StalledThreads(kQuiet);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(stalled, ::testing::ElementsAre("io:0"));
  stuck->release_.Notify();
  client.join();
  EXPECT_TRUE(TestServer::WaitUntil([&] { return server.StalledThreads(kQuiet).empty(); }));
}

}  // namespace
}  // namespace canserver
