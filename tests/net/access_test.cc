// Roles per channel (--access, net/access_rules.h): a monitor only receives, in v5/v6 and in
// socketcand, and is told why in each protocol's own form; a transmit client may not change the
// bit rate; no rules keep the behaviour from before roles.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/virtual_bus.h"
#include "net/access_rules.h"
#include "net/socket_util.h"
#include "net/socketcand_client.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using testing::TestServer;

AccessRules Rules(std::vector<std::string> entries) {
  absl::StatusOr<AccessRules> rules = AccessRules::Parse(entries);
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *std::move(rules) : AccessRules();
}

// A TCP connection from 127.0.0.1, for the rules to look at.
struct Loopback {
  Loopback() {
    listener = *ListenTcp(HostPort{"127.0.0.1", 0}, 1, 0, 0);
    client = *ConnectTcp(HostPort{"127.0.0.1", LocalPort(listener.get())}, absl::Seconds(5));
  }
  UniqueFd listener;
  UniqueFd client;
};

TEST(AccessRulesTest, FirstMatchWinsPerChannelAndNoMatchOnlyReceives) {
  Loopback c;
  const AccessRules rules =
      Rules({"bench=10.0.0.0/8 configure", "local=127.0.0.0/8 transmit on can0",
             "lab=192.168.0.0/16 ::1 transmit"});
  Access a = rules.For(c.client.get(), "can0");
  EXPECT_EQ(a.role, Role::kTransmit);
  EXPECT_EQ(a.rule, "local");
  EXPECT_EQ(a.Describe(), "role transmit, matched rule 'local'");
  Access b = rules.For(c.client.get(), "can1");  // "local" holds on can0 only
  EXPECT_EQ(b.role, Role::kMonitor);
  EXPECT_THAT(rules.ToString(), HasSubstr("anyone else: monitor"));
  const AccessRules any = Rules({"all=* transmit"});
  EXPECT_EQ(any.For(c.client.get(), "can1").role, Role::kTransmit);
  const AccessRules unnamed = Rules({"127.0.0.1 monitor", "* configure"});
  EXPECT_EQ(unnamed.For(c.client.get(), "x").rule, "rule 1");
}

TEST(AccessRulesTest, NoRulesLetEveryClientConfigure) {
  Loopback c;
  const AccessRules none = Rules({});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.For(c.client.get(), "can0").role, Role::kConfigure);
}

TEST(AccessRulesTest, MistakesAreNamed) {
  for (const auto& [entry, says] : std::vector<std::pair<std::string, std::string>>{
           {"lab=10.0.0.0/8", "no role"},
           {"lab=monitor", "no addresses"},
           {"lab=10.0.0.0/33 monitor", "10.0.0.0/33"},
           {"lab=* monitor can0", "only 'on CHANNEL...'"},
           {"lab=* monitor on", "only 'on CHANNEL...'"},
       }) {
    absl::StatusOr<AccessRules> r = AccessRules::Parse({entry});
    ASSERT_FALSE(r.ok()) << entry;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(says)) << entry;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("--access rule '" + entry + "'"));
  }
}

ServerOptions MonitorsOnly() {
  ServerOptions options;
  options.access = Rules({"all=* monitor"});
  options.socketcand_port = 0;
  return options;
}

TEST(AccessTest, AV5MonitorIsToldItOnlyReceivesAndGoesOnReceiving) {
  TestServer ts(MonitorsOnly());
  auto monitor = ts.Connect();
  auto other = ts.Connect();
  ASSERT_TRUE(monitor && other);
  ASSERT_TRUE(monitor->Send(CanFrame::Classic(0x123, {1})).ok());
  absl::StatusOr<std::optional<CanFrame>> told = monitor->Recv(absl::Seconds(5));
  ASSERT_FALSE(told.ok());
  EXPECT_THAT(std::string(told.status().message()),
              HasSubstr("test: this client may only receive (role monitor, matched rule 'all'), "
                        "so it may not send frames; the rig's owner grants role transmit with "
                        "canserver --access"));
  // A periodic job too; the session stays.
  absl::StatusOr<std::unique_ptr<PeriodicTask>> job =
      monitor->SendPeriodic(CanFrame::Classic(0x124, {2}), absl::Milliseconds(10));
  ASSERT_TRUE(job.ok()) << job.status();  // the client library sends it and goes on
  told = monitor->Recv(absl::Seconds(5));
  ASSERT_FALSE(told.ok());
  EXPECT_THAT(std::string(told.status().message()), HasSubstr("may not start periodic jobs"));
  // Nothing reached the bus or the other client; reception goes on.
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x200, {9})));
  for (RemoteBus* c : {monitor.get(), other.get()}) {
    absl::StatusOr<std::optional<CanFrame>> got = c->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
    EXPECT_EQ((*got)->id, 0x200u);
  }
  EXPECT_EQ(ts.server().channel().counters().bus_tx.Get(), 0u);
  // Many refused frames: every one counted, the client told at most once a second.
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(monitor->Send(CanFrame::Classic(0x125, {3})).ok());
  ASSERT_TRUE(TestServer::WaitUntil([&] {
    for (const auto& s : ts.server().channel().Subscribers()) {
      if (s->counters.refused_role.Get() >= 201) return true;
    }
    return false;
  }));
  int told_again = 0;
  while (true) {
    auto got = monitor->Recv(absl::Milliseconds(300));
    if (got.ok() && !got->has_value()) break;
    if (!got.ok()) ++told_again;
  }
  EXPECT_LE(told_again, 1);
}

TEST(AccessTest, ASocketcandMonitorIsRefusedAndKeepsItsSession) {
  TestServer ts(MonitorsOnly());
  testing::SocketcandClient c(ts.server().socketcand_port());
  EXPECT_EQ(c.Next(), "< hi >");
  c.Send("< open test >");
  EXPECT_EQ(c.Next(), "< ok >");
  c.Send("< rawmode >");
  EXPECT_EQ(c.Next(), "< ok >");
  c.Send("< errors on >");
  EXPECT_EQ(c.Next(), "< ok >");
  c.Send("< send 123 1 01 >");
  EXPECT_THAT(c.Next(), HasSubstr("may only receive (role monitor, matched rule 'all')"));
  c.Send("< add 0 100000 124 1 02 >");
  std::string next = c.Next();
  EXPECT_THAT(next, HasSubstr("< error"));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x200, {9})));
  while (next.find("frame 200") == std::string::npos && !next.empty()) next = c.Next();
  EXPECT_THAT(next, HasSubstr("frame 200"));
  EXPECT_EQ(ts.server().channel().counters().bus_tx.Get(), 0u);
}

TEST(AccessTest, ATransmitClientMayNotChangeTheBitRate) {
  ServerOptions options;
  options.bitrate_policy = BitratePolicy::kApply;
  options.access = Rules({"local=127.0.0.1 transmit"});
  auto wire = *VirtualBus::Create("wire", 1024, 250000);
  TestServer ts(options, false, wire);
  RemoteBusOptions opts;
  opts.channel = ts.address();
  opts.bitrate = 500000;
  auto refused = RemoteBus::Connect(opts);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("only a client with role configure may change it (this one: role "
                        "transmit, matched rule 'local'"));
  EXPECT_EQ(wire->timing().bitrate, 250000);
  opts.bitrate = 250000;  // the bus's own rate: fine, and it may send
  auto fine = RemoteBus::Connect(opts);
  ASSERT_TRUE(fine.ok()) << fine.status();
  ASSERT_TRUE((*fine)->Send(CanFrame::Classic(0x1, {1})).ok());
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts.server().channel().counters().bus_tx.Get() == 1; }));
}

}  // namespace
}  // namespace canserver
