// The client relay floors canbench measures canserver's client → clients path against
// (--baseline relay2): what they do must be what canserver does minus CAN semantics, or the
// ratios mean nothing. A sender's frames reach every other client, whole and in order, never the
// sender; with one thread and with two.
#include "tools/client_relay_floor.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/remote_bus.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::SeqFrame;
using testing::SeqOf;

class ClientRelayFloorTest : public ::testing::TestWithParam<int> {};

TEST_P(ClientRelayFloorTest, ASendersFramesReachEveryOtherClientInOrder) {
  auto relay = ClientRelayFloor::Start(GetParam());
  ASSERT_TRUE(relay.ok()) << relay.status();
  RemoteBusOptions o;
  o.channel = absl::StrCat("127.0.0.1:", (*relay)->port());
  std::vector<std::unique_ptr<RemoteBus>> clients;
  for (int i = 0; i < 3; ++i) {
    auto bus = RemoteBus::Connect(o);
    ASSERT_TRUE(bus.ok()) << bus.status();
    clients.push_back(*std::move(bus));
  }
  std::vector<CanFrame> frames;
  for (uint32_t i = 0; i < 1000; ++i) frames.push_back(SeqFrame(0x100, i));
  ASSERT_TRUE(clients[0]->SendMany(frames).ok());
  for (int c = 1; c < 3; ++c) {
    for (uint32_t i = 0; i < 1000; ++i) {
      auto got = clients[c]->Recv(absl::Seconds(5));
      ASSERT_TRUE(got.ok() && got->has_value()) << "client " << c << " frame " << i;
      ASSERT_EQ(SeqOf(**got), i);
    }
  }
  auto echo = clients[0]->Recv(absl::Milliseconds(100));
  ASSERT_TRUE(echo.ok());
  EXPECT_FALSE(echo->has_value()) << "the sender got its own frame back";
  EXPECT_GT((*relay)->CpuTime(), absl::ZeroDuration());
}

INSTANTIATE_TEST_SUITE_P(Threads, ClientRelayFloorTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace canserver
