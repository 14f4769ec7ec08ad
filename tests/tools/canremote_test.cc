// canremote's commands against an in-process canserver on the virtual bus.
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/tcp_proxy.h"
#include "net/test_server.h"
#include "process_util.h"

namespace canserver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::TestServer;

std::string Canremote() { return testing::BuildDir() + "/tools/canremote"; }
std::pair<std::string, int> Shell(const std::string& cmd) { return testing::RunShell(cmd); }

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// What tshark reads from a capture file: one line per frame, the `fields` (space-separated
// names) tab-separated; its warning about running as root left out. Empty if tshark failed.
std::vector<std::string> TsharkFields(const std::string& file, const std::string& fields) {
  std::string command = absl::StrCat("tshark -r ", file, " -T fields");
  for (absl::string_view f : absl::StrSplit(fields, ' ')) absl::StrAppend(&command, " -e ", f);
  auto [out, rc] = Shell(command + " 2>/dev/null");
  if (rc != 0) {
    ADD_FAILURE() << command << ": exit " << rc << "\n" << out;
    return {};
  }
  std::vector<std::string> lines = Lines(out);
  std::erase_if(lines, [](const std::string& l) { return l.rfind("Running as user", 0) == 0; });
  return lines;
}

TEST(CanremoteTest, SendPutsCansendFramesOnTheBus) {
  TestServer ts;
  auto listener = ts.Connect();
  auto [out, rc] = Shell(
      absl::StrCat(Canremote(), " send -c ", ts.address(), " 123#DEADBEEF 1ABCDEF0#11.22 321#R8"));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(*listener->Recv(absl::Seconds(5)), CanFrame::Classic(0x123, {0xDE, 0xAD, 0xBE, 0xEF}));
  EXPECT_EQ(*listener->Recv(absl::Seconds(5)), CanFrame::Classic(0x1ABCDEF0, {0x11, 0x22}, true));
  std::optional<CanFrame> rtr = *listener->Recv(absl::Seconds(5));
  ASSERT_TRUE(rtr.has_value());
  EXPECT_TRUE(rtr->remote());
  EXPECT_EQ(rtr->len, 8);
}

TEST(CanremoteTest, CanFdInCanUtilsSyntaxBothWays) {
  TestServer ts;
  auto listener = ts.Connect();
  const std::string data64(128, 'E');
  auto [out, rc] = Shell(
      absl::StrCat(Canremote(), " send -c ", ts.address(), " 123##1112233 1ABCDEF0##3", data64));
  ASSERT_EQ(rc, 0) << out;
  std::optional<CanFrame> fd = *listener->Recv(absl::Seconds(5));
  ASSERT_TRUE(fd.has_value());
  EXPECT_EQ(FormatCansend(*fd), "123##1112233");
  fd = *listener->Recv(absl::Seconds(5));
  ASSERT_TRUE(fd.has_value());
  EXPECT_EQ(fd->len, 64);
  EXPECT_EQ(FormatCansend(*fd), "1ABCDEF0##3" + data64);

  // The send command's session must be gone, or the count below would count it, not the dump.
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  std::string dumped;
  std::thread dump([&] {
    dumped =
        Shell(absl::StrCat("timeout 20 ", Canremote(), " dump -L -n 2 -c ", ts.address())).first;
  });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 2; }));
  ts.bus().Inject(*ParseCansend("7FF##2000102030405060708090A0B"));
  ts.bus().Inject(CanFrame::Classic(0x100, {1}));
  dump.join();
  EXPECT_THAT(
      Lines(dumped),
      ElementsAre(MatchesRegex(R"(\([0-9]+\.[0-9]{6}\) test 7FF##2000102030405060708090A0B)"),
                  MatchesRegex(R"(\([0-9]+\.[0-9]{6}\) test 100#01)")));
}

TEST(CanremoteTest, OptionsGoBeforeOrAfterTheCommand) {
  TestServer ts;
  auto listener = ts.Connect();
  auto [out, rc] = Shell(absl::StrCat(Canremote(), " -c ", ts.address(), " send 123#01"));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(*listener->Recv(absl::Seconds(5)), CanFrame::Classic(0x123, {0x01}));
  std::tie(out, rc) = Shell(absl::StrCat(Canremote(), " send 124#02 -c ", ts.address()));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(*listener->Recv(absl::Seconds(5)), CanFrame::Classic(0x124, {0x02}));
  std::tie(out, rc) = Shell(absl::StrCat(Canremote(), " -c ", ts.address()));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("give a command: dump, send, log or lease"));
}

// canremote dump --pcap: Wireshark's own dissectors (tshark, Debian 12's 4.0) read the stream:
// classic, extended, remote and CAN FD frames with their flags, the bus's bit rate, ns times.
TEST(CanremoteTest, DumpPcapIsReadByTshark) {
  if (Shell("command -v tshark").second != 0) GTEST_SKIP() << "no tshark (scripts/install-deps.sh)";
  ServerOptions options;
  TestServer ts(options);
  const std::string file = absl::StrCat(::testing::TempDir(), "/dump-", ::getpid(), ".pcapng");
  std::thread dump([&] {
    (void)Shell(absl::StrCat("timeout 20 ", Canremote(), " dump -c ", ts.address(), " --pcap ",
                             file, " -n 4"));
  });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  CanFrame rtr = CanFrame::Classic(0x7FF, {});
  rtr.flags |= kCanFlagRemote;
  for (const CanFrame& f :
       {CanFrame::Classic(0x123, {0x11, 0x22}), CanFrame::Classic(0x1ABCDEF0, {0xFF}, true), rtr,
        *ParseCansend("321##1AABB")}) {
    ts.bus().Inject(f);
  }
  dump.join();
  const std::vector<std::string> lines =
      TsharkFields(file, "can.id can.len can.flags.xtd can.flags.rtr canfd.flags.brs data.data");
  EXPECT_THAT(lines, ElementsAre("291\t2\t0\t0\t\t1122", "448585456\t1\t1\t0\t\tff",
                                 "2047\t0\t0\t1\t\t", "801\t2\t0\t\t1\taabb"));
}

// --capture-port: Wireshark's own capture tool reads the channel live (dumpcap -i TCP@host:port),
// frames sent by clients included; what a capture client sends never reaches the bus.
TEST(CaptureTest, DumpcapCapturesTheChannel) {
  if (Shell("command -v dumpcap").second != 0)
    GTEST_SKIP() << "no dumpcap (scripts/install-deps.sh)";
  ServerOptions options;
  options.capture_port = 0;
  TestServer ts(options);
  const uint16_t port = ts.server().capture_port();
  ASSERT_NE(port, 0);
  const std::string file = absl::StrCat(::testing::TempDir(), "/capture-", ::getpid(), ".pcapng");
  std::thread capture([&] {
    (void)Shell(absl::StrCat("timeout 20 dumpcap -q -i TCP@127.0.0.1:", port, " -c 3 -w ", file));
  });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  auto sender = ts.Connect();
  ASSERT_TRUE(sender);
  ASSERT_TRUE(sender->Send(CanFrame::Classic(0x123, {0x11, 0x22})).ok());  // a client's frame
  ASSERT_TRUE(TestServer::WaitUntil(
      [&] { return ts.server().channel().counters().bus_tx.Get() == 1; }));  // on the bus first
  ts.bus().Inject(CanFrame::Classic(0x1ABCDEF0, {0xFF}, true));
  ts.bus().Inject(*ParseCansend("321##1AABB"));
  capture.join();
  const std::vector<std::string> lines =
      TsharkFields(file, "can.id can.len can.flags.xtd canfd.flags.brs data.data");
  EXPECT_THAT(lines,
              ElementsAre("291\t2\t0\t\t1122", "448585456\t1\t1\t\tff", "801\t2\t0\t1\taabb"));
  // A monitor: bytes to the capture port are read and ignored.
  UniqueFd raw = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
  const std::string junk = testing::Encode({v5::CanMessage{CanFrame::Classic(0x7, {7})}});
  testing::SendAll(raw.get(), junk + "< send 7 1 07 >");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(ts.server().channel().counters().bus_tx.Get(), 1u) << "only the v5 client's frame";
}

TEST(CanremoteTest, SendReportsBadFramesAndRefusedOnes) {
  TestServer ts;
  auto [out, rc] = Shell(absl::StrCat(Canremote(), " send -c ", ts.address(), " 12#00"));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("canremote: '12#00': the id must be 3 hex digits"));
  ts.bus().SetTxError(ENETDOWN);  // refused at once: waiting cannot fix a downed interface
  std::tie(out, rc) = Shell(absl::StrCat(Canremote(), " send -c ", ts.address(), " 123#00"));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("the bus refused 1 of 1 frames"));
}

TEST(CanremoteTest, DumpPrintsFilteredFramesInLogFormat) {
  TestServer ts;
  std::string out;
  std::thread dump([&] {
    out = Shell(absl::StrCat(Canremote(), " dump -L -n 2 -c ", ts.address(), " 100:700")).first;
  });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  ts.bus().Inject(CanFrame::Classic(0x200, {9}));  // filtered out
  ts.bus().Inject(CanFrame::Classic(0x123, {0xAB}));
  ts.bus().Inject(CanFrame::Classic(0x1ABCD1FF, {}, true));
  dump.join();
  EXPECT_THAT(Lines(out), ElementsAre(MatchesRegex(R"(\([0-9]+\.[0-9]{6}\) test 123#AB)"),
                                      MatchesRegex(R"(\([0-9]+\.[0-9]{6}\) test 1ABCD1FF#)")));
}

TEST(CanremoteTest, DumpHumanFormatWithDeltaTimestamps) {
  TestServer ts;
  std::string out;
  std::thread dump(
      [&] { out = Shell(absl::StrCat(Canremote(), " dump -t d -n 2 -c ", ts.address())).first; });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  ts.bus().Inject(CanFrame::Classic(0x123, {1, 2}));
  ts.bus().Inject(CanFrame::Classic(0x124, {}));
  dump.join();
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 2u) << out;
  // candump's columns (tests/core/text_format_test.cc has every form, and VM scenario 30
  // compares with candump itself).
  EXPECT_EQ(lines[0], " (000.000000)  test  123   [2]  01 02");
  EXPECT_THAT(lines[1], MatchesRegex(R"( \(000\.[0-9]{6}\)  test  124   \[0\] )"));
}

TEST(CanremoteTest, LogWritesAFileThatCanUtilsRead) {
  TestServer ts;
  const std::string file = ::testing::TempDir() + "/canremote-log-test.log";
  std::string err;
  std::thread log([&] {
    err = Shell(absl::StrCat("CAN_CHANNEL=", ts.address(), " ", Canremote(), " log -n 3 -f ", file))
              .first;
  });
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  for (uint8_t i = 0; i < 3; ++i) ts.bus().Inject(CanFrame::Classic(0x300 + i, {i}));
  log.join();
  EXPECT_THAT(err, HasSubstr("logged 3 frames"));
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[2], MatchesRegex(R"(\([0-9]+\.[0-9]{6}\) test 302#02)"));
  // can-utils' log2asc parses it (an independent reader of the candump -L format).
  auto [asc, rc] = Shell(absl::StrCat("log2asc -I ", file, " test"));
  if (rc == 127) GTEST_SKIP() << "log2asc (can-utils) not installed";
  EXPECT_EQ(rc, 0) << asc;
  EXPECT_THAT(asc, HasSubstr("302"));
}

// #28: a dump running for hours rides out a server restart: it says so on stderr, opens a new
// session with its filters, and goes on.
TEST(CanremoteTest, DumpRidesOutAServerRestart) {
  ServerOptions options;
  {
    TestServer probe;  // a free port to restart on
    options.port = probe.server().port();
  }
  auto server = std::make_unique<TestServer>(options);
  const std::string command =
      absl::StrCat(Canremote(), " dump -L -n 2 --reconnect 20 -c ", server->address(), " 100:700");
  std::string out;
  std::thread dump([&] { out = Shell(command).first; });
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return server->server().channel().subscriber_count() == 1; }));
  server->bus().Inject(CanFrame::Classic(0x101, {1}));
  absl::SleepFor(absl::Milliseconds(200));
  server.reset();  // "server shutting down"
  server = std::make_unique<TestServer>(options);
  ASSERT_TRUE(TestServer::WaitUntil(
      [&] { return server->server().channel().subscriber_count() == 1; }, absl::Seconds(20)));
  server->bus().Inject(CanFrame::Classic(0x200, {9}));  // its filter came back: not printed
  server->bus().Inject(CanFrame::Classic(0x102, {2}));
  dump.join();
  EXPECT_THAT(out, HasSubstr("canremote: server shutting down; reconnecting (for up to 20 s)"));
  EXPECT_THAT(out, HasSubstr("a new session after"));
  EXPECT_THAT(out, HasSubstr("test 101#01"));
  EXPECT_THAT(out, HasSubstr("test 102#02"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("200#09")));
}

// #28: a network blip under a running dump: canserver keeps its session (--resume-grace), the
// dump takes it back and prints the frames that arrived meanwhile, in order.
TEST(CanremoteTest, DumpResumesAfterACutWithTheFramesOfTheGap) {
  TestServer server;
  testing::TcpProxy proxy(server.server().port());
  const std::string command =
      absl::StrCat("timeout 30 ", Canremote(), " dump -L -n 3 --reconnect 20 -c ", proxy.address());
  std::string out;
  std::thread dump([&] { out = Shell(command).first; });
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return server.server().channel().subscriber_count() == 1; }));
  absl::SleepFor(absl::Milliseconds(100));  // its ResumeRequest is answered
  server.bus().Inject(CanFrame::Classic(0x101, {1}));
  absl::SleepFor(absl::Milliseconds(200));
  proxy.Cut();
  ASSERT_TRUE(TestServer::WaitUntil([&] {
    for (const auto& s : server.server().channel().Subscribers()) {
      if (s->detached_until_ns.load() != 0) return true;
    }
    return false;
  }));
  server.bus().Inject(CanFrame::Classic(0x102, {2}));
  server.bus().Inject(CanFrame::Classic(0x103, {3}));
  absl::SleepFor(absl::Milliseconds(500));
  proxy.Restore();
  dump.join();
  EXPECT_THAT(out, HasSubstr("reconnecting (for up to 20 s)"));
  EXPECT_THAT(out, HasSubstr("resumed after"));
  EXPECT_THAT(out, HasSubstr("0 lost"));
  EXPECT_THAT(out, HasSubstr("test 101#01"));
  EXPECT_THAT(out, HasSubstr("test 102#02"));
  EXPECT_THAT(out, HasSubstr("test 103#03"));
}

TEST(CanremoteTest, LeaseRunsACommandThatAloneMayTransmit) {
  TestServer ts;
  auto listener = ts.Connect();
  const std::string c = Canremote();
  const std::string a = ts.address();
  // The command's own canremote joins the lease (CANSERVER_LEASE); one without the token is
  // refused, naming the holder. canremote lease exits with the command's status.
  auto [out, rc] = Shell(absl::StrCat("timeout 30 ", c, " lease -c ", a, " 10 -- sh -c '", c,
                                      " send -c ", a, " 123#01 && env -u CANSERVER_LEASE ", c,
                                      " send -c ", a, " 125#03; echo refused=$?; exit 3'"));
  EXPECT_EQ(rc, 3) << out;
  EXPECT_THAT(out, HasSubstr("leased for"));
  EXPECT_THAT(out, HasSubstr("refused=1"));
  EXPECT_THAT(out, MatchesRegex("(.|\n)*test: leased by session [0-9]+ \\(127.0.0.1:[0-9]+\\) "
                                "for (10|9) s more, so this client may not send frames(.|\n)*"));
  // Released when the command ended: anyone may send again.
  auto [out2, rc2] = Shell(absl::StrCat(c, " send -c ", a, " 126#04"));
  EXPECT_EQ(rc2, 0) << out2;
  std::optional<CanFrame> first = *listener->Recv(absl::Seconds(5));
  std::optional<CanFrame> second = *listener->Recv(absl::Seconds(5));
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->id, 0x123u);
  EXPECT_EQ(second->id, 0x126u) << "the refused frame reached the bus";

  auto [held, rc3] =
      Shell(absl::StrCat(c, " lease -c ", a, " 10 -- ", c, " lease -c ", a, " 10 -- true"));
  EXPECT_EQ(rc3, 1) << "a second lease inside the first is refused: " << held;
  EXPECT_THAT(held, HasSubstr("lease refused: leased by session"));
}

TEST(CanremoteTest, ClearErrorsWithoutAServer) {
  auto [out, rc] = Shell(absl::StrCat(Canremote(), " dump -c 127.0.0.1:1"));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("canremote: connect(127.0.0.1:1)"));
  std::tie(out, rc) = Shell(absl::StrCat(Canremote(), " frobnicate -c x"));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("unknown command 'frobnicate'"));
}

}  // namespace
}  // namespace canserver
