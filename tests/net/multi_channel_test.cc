// One server, several channels: each channel on its own port with its own CAN thread, rings and
// counters; io threads shared. Clients see only their own bus.
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"
#include "net/test_server.h"

namespace canserver {
namespace {

class MultiChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    served_ = std::make_unique<testing::ServedBuses>(
        std::vector<std::string>{"bus0", "bus1", "bus2"}, ServerOptions{});
    server_ = served_->server.get();
    buses_ = served_->buses;
    ASSERT_NE(server_, nullptr);
  }

  std::unique_ptr<RemoteBus> Connect(size_t channel) {
    RemoteBusOptions opts;
    opts.channel = absl::StrCat("127.0.0.1:", server_->port(channel));
    auto bus = RemoteBus::Connect(opts);
    EXPECT_TRUE(bus.ok()) << bus.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    ++subscribed_[channel];
    while (server_->channel(channel).subscriber_count() < subscribed_[channel] &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return bus.ok() ? *std::move(bus) : nullptr;
  }

  std::unique_ptr<testing::ServedBuses> served_;
  RemoteServer* server_ = nullptr;  // served_'s
  std::vector<std::shared_ptr<VirtualBus>> buses_;
  size_t subscribed_[3] = {0, 0, 0};
};

TEST_F(MultiChannelTest, EachChannelHasItsOwnPortAndClientsSeeOnlyTheirBus) {
  ASSERT_EQ(server_->channel_count(), 3u);
  EXPECT_NE(server_->port(0), server_->port(1));
  EXPECT_NE(server_->port(1), server_->port(2));
  std::vector<std::unique_ptr<RemoteBus>> a, b;
  for (size_t c = 0; c < 3; ++c) {
    a.push_back(Connect(c));
    b.push_back(Connect(c));
    EXPECT_NE(a[c]->channel_info().find(absl::StrCat("'bus", c, "'")), std::string::npos)
        << a[c]->channel_info();
  }
  // From the bus: only that channel's clients get it.
  for (size_t c = 0; c < 3; ++c) {
    ASSERT_TRUE(buses_[c]->Inject(CanFrame::Classic(0x100 + static_cast<uint32_t>(c), {})));
  }
  for (size_t c = 0; c < 3; ++c) {
    for (auto* client : {a[c].get(), b[c].get()}) {
      auto got = client->Recv(absl::Seconds(5));
      ASSERT_TRUE(got.ok() && got->has_value()) << "channel " << c;
      EXPECT_EQ((*got)->id, 0x100 + c);
      auto more = client->Recv(absl::Milliseconds(200));
      ASSERT_TRUE(more.ok());
      EXPECT_FALSE(more->has_value()) << "channel " << c << " got another bus's frame";
    }
  }
  // From a client: onto that bus only, to the other client of that channel only.
  ASSERT_TRUE(a[1]->Send(CanFrame::Classic(0x211, {1})).ok());
  auto got = b[1]->Recv(absl::Seconds(5));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, 0x211u);
  for (size_t c : {0u, 2u}) {
    auto none = b[c]->Recv(absl::Milliseconds(200));
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value()) << "channel " << c << " leaked channel 1's frame";
  }
  EXPECT_EQ(server_->channel(1).counters().bus_tx.Get(), 1u);
  EXPECT_EQ(server_->channel(0).counters().bus_tx.Get(), 0u);
  EXPECT_EQ(server_->channel(2).counters().bus_tx.Get(), 0u);
  for (size_t c = 0; c < 3; ++c) EXPECT_EQ(server_->channel(c).counters().bus_rx.Get(), 1u);
}

TEST(MultiChannelCreateTest, ATakenPortNamesTheChannel) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  auto probe = RemoteServer::Create(options, *VirtualBus::Create("probe"));
  ASSERT_TRUE(probe.ok());
  const uint16_t taken = (*probe)->port();
  std::vector<ServedChannel> channels = {{*VirtualBus::Create("free"), 0},
                                         {*VirtualBus::Create("clash"), taken}};
  auto second = RemoteServer::Create(options, std::move(channels));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos);
  EXPECT_NE(second.status().message().find("'clash'"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace canserver
