// socketcand's ASCII protocol without sockets: every example element of socketcand's
// doc/protocol.md, both directions, whole and split at every byte; errors that say what was wrong;
// the BCM receive semantics (content change, multiplex, throttle).
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/bcm_receive.h"
#include "core/socketcand_codec.h"
#include "core/socketcand_protocol.h"
#include "core/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FakeActions : public SessionActions {
 public:
  absl::StatusOr<std::string> OpenBus(absl::string_view channel, int32_t,
                                      FilterSet initial) override {
    if (channel != "can0") return absl::NotFoundError("no channel '" + std::string(channel) + "'");
    opened = std::string(channel);
    filters = std::move(initial);
    return std::string("virtual channel 'can0'");
  }
  void SetFilters(FilterSet f) override { filters = std::move(f); }
  void Transmit(const CanFrame& frame) override { sent.push_back(FormatCansend(frame)); }
  bool TransmitBlocked() const override { return blocked; }
  absl::Status StartPeriodic(const PeriodicRequest& r) override {
    jobs.push_back(absl::StrCat(FormatCansend(r.frame), " every ", absl::FormatDuration(r.period)));
    return absl::OkStatus();
  }
  absl::Status StopPeriodic(uint32_t id) override {
    jobs.push_back(absl::StrFormat("stop %X", id));
    return absl::OkStatus();
  }
  BusTraffic Traffic() const override { return {100, 20, 30, 5}; }
  absl::Status OpenIsoTp(const IsoTpConfig& c) override {
    isotp.push_back(absl::StrFormat("%X%s>%X%s flags %X bs %d stmin %X wft %d pad %X/%X ext %X/%X",
                                    c.tx_id, c.tx_extended ? "x" : "", c.rx_id,
                                    c.rx_extended ? "x" : "", c.flags, c.block_size, c.stmin,
                                    c.wftmax, c.txpad, c.rxpad, c.ext_address, c.rx_ext_address));
    return absl::OkStatus();
  }
  absl::Status SendPdu(absl::string_view pdu) override {
    isotp.push_back(absl::StrCat("pdu ", absl::BytesToHexString(pdu)));
    return absl::OkStatus();
  }
  void CloseIsoTp() override { isotp.push_back("close"); }
  void OnClientError(absl::string_view text) override { errors.emplace_back(text); }

  std::string opened;
  FilterSet filters;
  std::vector<std::string> sent;
  std::vector<std::string> jobs;
  std::vector<std::string> isotp;
  std::vector<std::string> errors;  // OnClientError: for the server's log and counters
  bool blocked = false;
};

absl::Status Feed(ServerProtocol& s, absl::string_view text, std::string* reply) {
  return s.OnBytes(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                   reply);
}

// A session that has said hi and opened can0 (BCM mode); with `error_replies`, it asked for the
// reasons of refused commands ("< errors on >"), as canserver's own client does.
struct Opened {
  explicit Opened(bool error_replies = true) {
    std::string reply;
    session.Greet(&reply);
    EXPECT_EQ(reply, "< hi >");
    reply.clear();
    if (error_replies) {
      EXPECT_TRUE(Feed(session, "< errors on >", &reply).ok());
      EXPECT_EQ(reply, "< ok >");
      reply.clear();
    }
    EXPECT_TRUE(Feed(session, "< open can0 >", &reply).ok());
    EXPECT_EQ(reply, "< ok >");
    EXPECT_TRUE(session.TakeSettle()) << "frames may follow: the ok must go alone";
    EXPECT_FALSE(session.TakeSettle());
  }
  std::string Send(absl::string_view text) {
    std::string reply;
    EXPECT_TRUE(Feed(session, text, &reply).ok()) << text;
    return reply;
  }
  // The element the session writes for `frame`, "" when the client does not get it.
  std::string Deliver(CanFrame frame) {
    uint8_t buf[socketcand::kMaxFrameElementLength];
    size_t len = 0;
    if (session.EncodeFrame(frame, buf, &len) != ServerProtocol::Encoded::kWritten) return "";
    return std::string(reinterpret_cast<char*>(buf), len);
  }
  FakeActions actions;
  SocketcandProtocol session{&actions};
};

CanFrame At(CanFrame f, int64_t seconds, int64_t micros) {
  f.timestamp_ns = seconds * 1'000'000'000 + micros * 1000;
  return f;
}

// --- Client → server: every command example of doc/protocol.md -----------------------------

struct CommandCase {
  const char* setup;    // elements sent first (mode switches, an add before update)
  const char* element;  // the document's example
  std::vector<std::string> sent;
  std::vector<std::string> jobs;
  const char* reply;
};

const std::vector<CommandCase>& DocCommands() {
  static const auto* cases = new std::vector<CommandCase>{
      {"", "< add 1 0 123 8 11 22 33 44 55 66 77 88 >", {}, {"123#1122334455667788 every 1s"}, ""},
      {"",
       "< add 0 10 123 8 11 22 33 44 55 66 77 88 >",
       {},
       {"123#1122334455667788 every 10us"},
       ""},
      {"", "< add 0 20000 123 4 42 42 42 42 >", {}, {"123#42424242 every 20ms"}, ""},
      {"< add 0 20000 123 4 42 42 42 42 >",
       "< update 123 3 11 22 33 >",
       {},
       {"123#112233 every 20ms"},
       ""},
      {"", "< delete 123 >", {}, {"stop 123"}, ""},
      {"", "< send 123 0 >", {"123#"}, {}, ""},
      {"", "< send 1AAAAAAA 2 1 F1 >", {"1AAAAAAA#01F1"}, {}, ""},
      {"", "< sendrtr 123 0 >", {"123#R"}, {}, ""},
      {"", "< sendrtr 1AAAAAAA 2 >", {"1AAAAAAA#R2"}, {}, ""},
      {"", "< filter 0 0 123 1 FF >", {}, {}, ""},
      {"", "< filter 0 0 123 8 FF 00 F8 00 00 00 00 00 >", {}, {}, ""},
      {"", "< filter 1 500000 123 8 FF 00 F8 00 00 00 00 00 >", {}, {}, ""},
      {"", "< muxfilter 0 0 123 2 FF 00 00 00 00 00 00 00 33 FF FF FF FF FF FF FF >", {}, {}, ""},
      {"", "< subscribe 0 0 123 >", {}, {}, ""},
      {"< subscribe 0 0 123 >", "< unsubscribe 123 >", {}, {}, ""},
      {"", "< echo >", {}, {}, "< echo >"},
      {"", "< rawmode >", {}, {}, "< ok >"},
      {"< rawmode >", "< bcmmode >", {}, {}, "< ok >"},
      {"", "< controlmode >", {}, {}, "< ok >"},
      {"< controlmode >", "< statistics 1000 >", {}, {}, ""},
  };
  return *cases;
}

TEST(SocketcandSessionTest, EveryCommandExampleOfTheDocument) {
  for (const CommandCase& c : DocCommands()) {
    Opened s;
    s.Send(c.setup);
    s.actions.sent.clear();
    s.actions.jobs.clear();
    EXPECT_EQ(s.Send(c.element), c.reply) << c.element;
    EXPECT_EQ(s.actions.sent, c.sent) << c.element;
    EXPECT_EQ(s.actions.jobs, c.jobs) << c.element;
  }
}

TEST(SocketcandSessionTest, TheDocumentsExamplesSplitAtEveryByte) {
  // One stream with every BCM-mode example, then raw mode's; fed in two pieces at every split.
  std::string stream = "< open can0 >";
  std::vector<std::string> sent, jobs;
  for (const CommandCase& c : DocCommands()) {
    if (absl::string_view(c.setup).empty() &&
        absl::string_view(c.element).find("mode") == absl::string_view::npos &&
        absl::string_view(c.element).find("statistics") == absl::string_view::npos) {
      stream += c.element;
      sent.insert(sent.end(), c.sent.begin(), c.sent.end());
      jobs.insert(jobs.end(), c.jobs.begin(), c.jobs.end());
    }
  }
  for (size_t split = 0; split <= stream.size(); ++split) {
    FakeActions actions;
    SocketcandProtocol session(&actions);
    std::string reply;
    ASSERT_TRUE(Feed(session, absl::string_view(stream).substr(0, split), &reply).ok());
    ASSERT_TRUE(Feed(session, absl::string_view(stream).substr(split), &reply).ok());
    EXPECT_EQ(reply, "< ok >< echo >") << split;
    EXPECT_EQ(actions.sent, sent) << split;
    EXPECT_EQ(actions.jobs, jobs) << split;
  }
}

TEST(SocketcandSessionTest, ControlModeExampleSendsStatistics) {
  FakeActions actions;
  SocketcandProtocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, "< open can0 >< controlmode >< statistics 1000 >", &reply).ok());
  EXPECT_EQ(reply, "< ok >< ok >");
  reply.clear();
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  s.OnTick(t0, &reply);
  EXPECT_EQ(reply, "< stat 100 20 30 5 >");  // RBYTES RPACKETS TBYTES TPACKETS
  reply.clear();
  s.OnTick(t0 + absl::Milliseconds(900), &reply);
  EXPECT_THAT(reply, IsEmpty());
  s.OnTick(t0 + absl::Milliseconds(1000), &reply);
  EXPECT_EQ(reply, "< stat 100 20 30 5 >");
  reply.clear();
  ASSERT_TRUE(Feed(s, "< statistics 0 >", &reply).ok());
  s.OnTick(t0 + absl::Seconds(5), &reply);
  EXPECT_THAT(reply, IsEmpty());
}

TEST(SocketcandSessionTest, OpenNamesAServedChannelOrEnds) {
  FakeActions actions;
  SocketcandProtocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, "< send 123 0 >", &reply).ok());  // before open: an error, not an end
  EXPECT_THAT(reply, HasSubstr("< error no bus open"));
  reply.clear();
  const absl::Status status = Feed(s, "< open can9 >", &reply);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(reply, "< error no channel 'can9' >");
  EXPECT_EQ(s.mode(), SocketcandProtocol::Mode::kClosed);
}

TEST(SocketcandSessionTest, IsoTpExamplesOfTheDocument) {
  Opened s;
  EXPECT_EQ(s.Send("< isotpmode >"), "< ok >");
  EXPECT_THAT(s.Send("< sendpdu 00 >"), HasSubstr("no ISO-TP channel yet"));
  // "Configuration with 1F998877h as source and 1F998876h as destination ... tx padding AAh and
  // rx padding 55h ... Blocksize 4, STmin 0", and the shortest form.
  EXPECT_EQ(s.Send("< isotpconf 1F998877 1F998876 C 4 0 0 AA 55 >"), "");
  EXPECT_EQ(s.Send("< isotpconf 1F998877 1F998876 0 0 0 >"), "");
  EXPECT_EQ(s.Send("< sendpdu 00112233445566778899AABBCCDDEEFF >"), "");
  EXPECT_THAT(s.actions.isotp,
              ElementsAre("1F998877x>1F998876x flags C bs 4 stmin 0 wft 0 pad AA/55 ext 0/0",
                          "1F998877x>1F998876x flags 0 bs 0 stmin 0 wft 0 pad 0/0 ext 0/0",
                          "pdu 00112233445566778899aabbccddeeff"));
  // A flag whose value is missing, an unknown flag, an odd PDU, one too long.
  EXPECT_THAT(s.Send("< isotpconf 123 321 4 0 0 >"), HasSubstr("need 2 values after STMIN"));
  EXPECT_THAT(s.Send("< isotpconf 123 321 400 0 0 >"), HasSubstr("flags '400'"));
  EXPECT_THAT(s.Send("< sendpdu 123 >"), HasSubstr("an even number of digits"));
  EXPECT_THAT(s.Send("< sendpdu " + std::string(2 * 4096, 'A') + " >"),
              HasSubstr("at most 4095 bytes"));
  std::string pdu;
  s.session.AppendPdu(1417687245'814579'000,
                      absl::HexStringToBytes("00112233445566778899AABBCCDDEEFF"), &pdu);
  EXPECT_EQ(pdu, "< pdu 1417687245.814579 00112233445566778899AABBCCDDEEFF >");  // the document's
  s.actions.isotp.clear();
  EXPECT_EQ(s.Send("< rawmode >"), "< ok >");
  EXPECT_THAT(s.actions.isotp, ElementsAre("close"));
}

// --- Server → client: frames, as socketcand writes them ----------------------------------------

// The frame a "< frame ID SECONDS DATA… >" element stands for, read as the document describes it
// (data bytes with or without spaces between them) — what a client makes of either form.
std::string ReadFrameElement(absl::string_view element) {
  std::vector<std::string> w = absl::StrSplit(element, ' ', absl::SkipEmpty());
  if (w.size() < 4 || w[0] != "<" || w[1] != "frame" || w.back() != ">") return "bad";
  std::string data;
  for (size_t i = 4; i + 1 < w.size(); ++i) data += w[i];
  const bool ext = w[2].size() == 8;
  return absl::StrCat(w[2], "#", data, " at ", w[3], ext ? " ext" : "");
}

TEST(SocketcandFormatTest, TheDocumentsFrameExampleInRawAndBcmMode) {
  // "Reception of a CAN frame with CAN ID 0x123, data length 4 and data 0x11, 0x22, 0x33 and
  // 0x44 at time 23.424242": < frame 123 23.424242 11 22 33 44 >
  const CanFrame f = At(CanFrame::Classic(0x123, {0x11, 0x22, 0x33, 0x44}), 23, 424242);
  char buf[socketcand::kMaxFrameElementLength];
  const std::string raw(buf, socketcand::FormatRawFrame(f, buf));
  const std::string bcm(buf, socketcand::FormatBcmFrame(f, buf));
  EXPECT_EQ(raw, "< frame 123 23.424242 11223344 >");      // socketcand's raw state
  EXPECT_EQ(bcm, "< frame 123 23.424242 11 22 33 44  >");  // socketcand's BCM state
  const std::string doc = ReadFrameElement("< frame 123 23.424242 11 22 33 44 >");
  EXPECT_EQ(ReadFrameElement(raw), doc);
  EXPECT_EQ(ReadFrameElement(bcm), doc);
}

TEST(SocketcandFormatTest, RtrErrorFdExtendedAndEmptyFrames) {
  char buf[socketcand::kMaxFrameElementLength];
  auto raw = [&](const CanFrame& f) {
    return std::string(buf, socketcand::FormatRawFrame(f, buf));
  };
  CanFrame rtr = At(CanFrame::Classic(0x123, {}), 23, 424242);
  rtr.flags |= kCanFlagRemote;
  rtr.len = 4;
  EXPECT_EQ(raw(rtr), "< rtr 123 23.424242 4 >");  // the document's RTR example
  // Empty data keeps both spaces, as socketcand writes it (python-can splits on them).
  EXPECT_EQ(raw(At(CanFrame::Classic(0x7, {}), 1, 5)), "< frame 007 1.000005  >");
  EXPECT_EQ(raw(At(CanFrame::Classic(0x1ABCDEF0, {0xAB}, true), 1700000000, 999999)),
            "< frame 1ABCDEF0 1700000000.999999 AB >");
  EXPECT_EQ(raw(At(CanFrame::Classic(0x5, {1}, true), 0, 0)), "< frame 00000005 0.000000 01 >");
  EXPECT_EQ(raw(At(CanFrame::Error(0x004, {0, 4}), 2, 1)),
            "< error 00000004 2.000001 0004000000000000 >");
  CanFrame fd;
  fd.id = 0x123;
  fd.flags = kCanFlagFd | kCanFlagBrs;
  fd.len = 12;
  for (uint8_t i = 0; i < 12; ++i) fd.data[i] = i;
  EXPECT_EQ(raw(At(fd, 3, 0)), "< fdframe 123 05 3.000000 000102030405060708090A0B >");
  CanFrame big = fd;
  big.id = kCanExtIdMax;
  big.flags |= kCanFlagExtended | kCanFlagEsi;
  big.len = 64;
  EXPECT_LE(raw(At(big, INT32_MAX, 999999)).size(), socketcand::kMaxFrameElementLength);
}

TEST(SocketcandFormatTest, ClientsReadBackWhatTheServerWrites) {
  std::vector<CanFrame> frames = {CanFrame::Classic(0x123, {0x11, 0x22}),
                                  CanFrame::Classic(0x7, {}),
                                  CanFrame::Classic(0x1ABCDEF0, {1, 2, 3, 4, 5, 6, 7, 8}, true),
                                  CanFrame::Classic(0x5, {9}, true)};
  CanFrame rtr = CanFrame::Classic(0x321, {});
  rtr.flags |= kCanFlagRemote;
  rtr.len = 3;
  frames.push_back(rtr);
  CanFrame fd = CanFrame::Classic(0x100, {});
  fd.flags |= kCanFlagFd | kCanFlagEsi;
  fd.len = 48;
  fd.data[47] = 0xEE;
  frames.push_back(fd);
  for (CanFrame f : frames) {
    f.timestamp_ns = 1'700'000'000'123'456'000;
    char raw[socketcand::kMaxFrameElementLength];
    char bcm[socketcand::kMaxFrameElementLength];
    for (const std::string& text : {std::string(raw, socketcand::FormatRawFrame(f, raw)),
                                    std::string(bcm, socketcand::FormatBcmFrame(f, bcm))}) {
      const std::string element = text.substr(2, text.size() - 4);  // without "< " and " >"
      absl::StatusOr<CanFrame> back = socketcand::ParseFrameElement(element);
      ASSERT_TRUE(back.ok()) << element << ": " << back.status();
      EXPECT_EQ(*back, f) << element;
      EXPECT_EQ(back->timestamp_ns, f.timestamp_ns) << element;
    }
  }
  EXPECT_FALSE(socketcand::ParseFrameElement("frame 123 x 11").ok());
  EXPECT_FALSE(socketcand::ParseFrameElement("ok").ok());
}

TEST(SocketcandSessionTest, RawModeDeliversEverythingFdOnlyWhenAskedFor) {
  Opened s;
  const CanFrame f = At(CanFrame::Classic(0x321, {0xAA}), 5, 0);
  EXPECT_EQ(s.Deliver(f), "");  // BCM mode, nothing subscribed
  EXPECT_EQ(s.Send("< rawmode >"), "< ok >");
  EXPECT_TRUE(s.actions.filters.empty());  // the channel brings everything
  EXPECT_EQ(s.Deliver(f), "< frame 321 5.000000 AA >");
  CanFrame fd = f;
  fd.flags |= kCanFlagFd;
  uint8_t buf[socketcand::kMaxFrameElementLength];
  size_t len;
  EXPECT_EQ(s.session.EncodeFrame(fd, buf, &len), ServerProtocol::Encoded::kUnsupported);
  EXPECT_EQ(s.Send("< fdframes on >"), "< ok >");
  EXPECT_EQ(s.Deliver(fd), "< fdframe 321 04 5.000000 AA >");
  EXPECT_EQ(s.Send("< fdsend 1AAAAAAA 1 12 0 1 2 3 4 5 6 7 8 9 a b >"), "");
  EXPECT_THAT(s.actions.sent, ElementsAre("1AAAAAAA##1000102030405060708090A0B"));
}

// --- Errors ----------------------------------------------------------------------------------

TEST(SocketcandSessionTest, MistakesAreAnsweredAndTheSessionGoesOn) {
  Opened s;
  EXPECT_EQ(s.Send("< send 123 2 11 >"), "< error send: 2 data bytes announced, 1 given >");
  EXPECT_EQ(s.Send("< send 800 0 >"),
            "");  // beyond 11 bits: extended (python-can 4.1 writes it so)
  EXPECT_EQ(s.actions.sent.back(), "00000800#");
  EXPECT_THAT(s.Send("< send 123 9 1 2 3 4 5 6 7 8 9 >"), HasSubstr("dlc '9'"));
  EXPECT_THAT(s.Send("< send XYZ 0 >"), HasSubstr("CAN id 'XYZ' is not hex"));
  EXPECT_THAT(s.Send("< frobnicate >"), HasSubstr("unknown command 'frobnicate' in BCM mode"));
  EXPECT_THAT(s.Send("< statistics 100 >"), HasSubstr("unknown command 'statistics' in BCM"));
  EXPECT_THAT(s.Send("< update 555 1 1 >"), HasSubstr("no job for id 555"));
  EXPECT_THAT(s.Send("< add 0 0 123 0 >"), HasSubstr("interval of 0"));
  EXPECT_THAT(s.Send("< sendpdu 00 >"), HasSubstr("unknown command 'sendpdu' in BCM mode"));
  EXPECT_THAT(s.Send("hello"), HasSubstr("expected the start of an element, got 'h'"));
  EXPECT_EQ(s.Send("< send 1 < echo >"),
            "< error an element began before the last one ended (its closing bracket is missing) "
            ">< echo >");
  EXPECT_THAT(s.Send(std::string("<\x01>")), HasSubstr("byte 0x01 inside an element"));
  EXPECT_THAT(s.Send("< " + std::string(9000, 'a') + " >"), HasSubstr("longer than 8256"));
  EXPECT_EQ(s.Send("\r\n< echo >\n"), "< echo >");  // line ends between elements are fine
}

// python-can 4.6 parses every "< error … >" as an error frame and its recv() then raises for
// good: without "< errors on >" an open session answers mistakes as socketcand does (nothing)
// and reports them to the server, which logs and counts them.
TEST(SocketcandSessionTest, WithoutErrorsOnMistakesAreReportedToTheServerNotTheClient) {
  Opened s(/*error_replies=*/false);
  EXPECT_EQ(s.Send("< rawmode >"), "< ok >");
  EXPECT_TRUE(s.session.TakeSettle());
  // python-can 4.6 writes an RTR as a length without data, and FD lengths in hex.
  EXPECT_EQ(s.Send("< send 333 4  >< send 123 C 1 2 3 4 5 6 7 8 9 a b c >< frobnicate >"), "");
  EXPECT_THAT(s.actions.errors, ElementsAre(HasSubstr("4 data bytes announced, 0 given"),
                                            HasSubstr("dlc 'C'"), HasSubstr("unknown command")));
  EXPECT_THAT(s.actions.sent, IsEmpty());
  std::string fail;
  s.session.AppendTransmitFail(3, &fail);
  s.session.AppendError("server shutting down", &fail);
  EXPECT_EQ(fail, "") << "nothing a python-can 4.6 client would read as a frame";
  EXPECT_EQ(s.Send("< send 123 1 a >"), "");  // one hex digit, as python-can 4.6 writes 0x0A
  EXPECT_THAT(s.actions.sent, ElementsAre("123#0A"));
  EXPECT_EQ(s.Send("< errors on >"), "< ok >");
  s.session.AppendTransmitFail(1, &fail);
  EXPECT_THAT(fail, HasSubstr("< error transmit failed"));
  EXPECT_FALSE(s.session.TakeSettle()) << "errors on lets no frames flow that did not before";
}

TEST(SocketcandSessionTest, RepeatedGarbageEndsTheSession) {
  Opened s;
  std::string reply;
  absl::Status status;
  for (int i = 0; i < SocketcandProtocol::kMaxErrors && status.ok(); ++i) {
    status = Feed(s.session, "x<", &reply);
    status.Update(Feed(s.session, ">", &reply));
  }
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(reply, HasSubstr("too many malformed elements"));
  EXPECT_EQ(s.session.mode(), SocketcandProtocol::Mode::kClosed);
}

TEST(SocketcandSessionTest, AFullTransmitQueueHoldsTheRestBack) {
  Opened s;
  s.Send("< rawmode >");
  s.actions.blocked = true;
  std::string reply;
  ASSERT_TRUE(Feed(s.session, "< send 1 0 >< send 2 0 >", &reply).ok());
  EXPECT_TRUE(s.session.held_back());
  EXPECT_THAT(s.actions.sent, IsEmpty());
  s.actions.blocked = false;
  ASSERT_TRUE(s.session.Resume(&reply).ok());
  EXPECT_THAT(s.actions.sent, ElementsAre("001#", "002#"));
  EXPECT_FALSE(s.session.held_back());
}

TEST(SocketcandSessionTest, EofInsideAnElementIsReported) {
  Opened s;
  std::string reply;
  ASSERT_TRUE(Feed(s.session, "< send 12", &reply).ok());
  EXPECT_THAT(s.session.OnEof().message(), HasSubstr("middle of an element"));
}

// --- BCM receive semantics --------------------------------------------------------------------

TEST(BcmReceiveTest, SubscribePassesEveryFrameOfItsIdOnly) {
  Opened s;
  s.Send("< subscribe 0 0 123 >");
  ASSERT_EQ(s.actions.filters.filters().size(), 1u);  // only 0x123 comes from the channel
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x123, {1, 2}), 1, 0)), "< frame 123 1.000000 01 02  >");
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x123, {1, 2}), 1, 1)), "< frame 123 1.000001 01 02  >");
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x124, {1}), 1, 2)), "");
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x123, {1}, true), 1, 2)), "");  // extended 0x123
  s.Send("< unsubscribe 123 >");
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x123, {1}), 1, 3)), "");
  EXPECT_FALSE(s.actions.filters.Matches(CanFrame::Classic(0x123, {})));
}

TEST(BcmReceiveTest, FilterPassesChangesUnderTheMask) {
  // "Receive CAN ID 0x123 and check for changes in the first byte"
  BcmReceive rx;
  ASSERT_TRUE(rx.Filter({0x123, false}, absl::ZeroDuration(), {0xFF}).ok());
  EXPECT_TRUE(rx.Accept(CanFrame::Classic(0x123, {1, 1})));   // the first always
  EXPECT_FALSE(rx.Accept(CanFrame::Classic(0x123, {1, 2})));  // byte 1 is not under the mask
  EXPECT_TRUE(rx.Accept(CanFrame::Classic(0x123, {2, 2})));
  EXPECT_FALSE(rx.Accept(CanFrame::Classic(0x123, {2, 9})));
}

TEST(BcmReceiveTest, MuxFilterComparesPerMultiplexValue) {
  // The document's example: mux value in byte 0; for 0x33 the rest of the frame is watched.
  BcmReceive rx;
  ASSERT_TRUE(rx.MuxFilter({0x123, false}, absl::ZeroDuration(),
                           {{0xFF, 0, 0, 0, 0, 0, 0, 0},
                            {0x33, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
                            {0x56, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF}})
                  .ok());
  EXPECT_TRUE(rx.Accept(CanFrame::Classic(0x123, {0x33, 1})));
  EXPECT_FALSE(rx.Accept(CanFrame::Classic(0x123, {0x33, 1})));
  EXPECT_TRUE(rx.Accept(CanFrame::Classic(0x123, {0x56, 1})));      // its own history
  EXPECT_FALSE(rx.Accept(CanFrame::Classic(0x123, {0x56, 1, 7})));  // byte 2 not watched for 0x56
  EXPECT_TRUE(rx.Accept(CanFrame::Classic(0x123, {0x33, 2})));
  EXPECT_FALSE(rx.Accept(CanFrame::Classic(0x123, {0x44, 1})));  // a value nobody asked for
}

TEST(BcmReceiveTest, ThrottleKeepsTheLatestChangeForTheIntervalsEnd) {
  // "As above but throttle receive update rate down to 1.5 seconds"
  BcmReceive rx;
  ASSERT_TRUE(rx.Filter({0x123, false}, absl::Milliseconds(1500), {0xFF}).ok());
  EXPECT_TRUE(rx.Accept(At(CanFrame::Classic(0x123, {1}), 10, 0)));
  EXPECT_FALSE(rx.Accept(At(CanFrame::Classic(0x123, {2}), 10, 100000)));
  EXPECT_FALSE(rx.Accept(At(CanFrame::Classic(0x123, {3}), 10, 200000)));
  std::vector<CanFrame> due;
  rx.TakeDue(At(CanFrame(), 11, 0).timestamp_ns, &due);
  EXPECT_THAT(due, IsEmpty());
  rx.TakeDue(At(CanFrame(), 11, 500000).timestamp_ns, &due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].data[0], 3);  // the latest
  due.clear();
  rx.TakeDue(At(CanFrame(), 20, 0).timestamp_ns, &due);
  EXPECT_THAT(due, IsEmpty());  // nothing new
  EXPECT_TRUE(rx.Accept(At(CanFrame::Classic(0x123, {4}), 20, 0)));
}

TEST(BcmReceiveTest, ThrottledUpdatesLeaveThroughTheSessionsTick) {
  Opened s;
  s.Send("< subscribe 1 0 123 >");
  EXPECT_NE(s.Deliver(At(CanFrame::Classic(0x123, {1}), 100, 0)), "");
  EXPECT_EQ(s.Deliver(At(CanFrame::Classic(0x123, {2}), 100, 500000)), "");
  std::string reply;
  s.session.OnTick(absl::FromUnixSeconds(101), &reply);
  EXPECT_EQ(reply, "< frame 123 100.500000 02  >");
}

}  // namespace
}  // namespace canserver
