// The session protocol without sockets: handshake, errors that say what was wrong, actions.
#include "core/v5_protocol.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

class FakeActions : public SessionActions {
 public:
  absl::StatusOr<std::string> OpenBus(absl::string_view channel, int32_t bitrate,
                                      FilterSet filters) override {
    opened_channel = std::string(channel);
    opened_bitrate = bitrate;
    opened_filters = filters.filters();
    if (!open_error.ok()) return open_error;
    return std::string("virtual channel 'test'");
  }
  void SetFilters(FilterSet filters) override { new_filters = filters.filters(); }
  void Transmit(const CanFrame& frame) override { sent.push_back(frame); }
  absl::Status StartPeriodic(const PeriodicRequest& start) override {
    started.push_back(start);
    return absl::OkStatus();
  }
  absl::Status StopPeriodic(uint32_t id) override {
    stopped.push_back(id);
    return absl::OkStatus();
  }

  absl::Status open_error;
  std::string opened_channel = "unset";
  int32_t opened_bitrate = -1;
  std::vector<CanFilter> opened_filters;
  std::vector<CanFilter> new_filters;
  std::vector<CanFrame> sent;
  std::vector<PeriodicRequest> started;
  std::vector<uint32_t> stopped;
};

std::string Bytes(std::initializer_list<v5::Event> events) {
  std::string out;
  for (const v5::Event& e : events) EXPECT_TRUE(v5::Encode(e, &out).ok());
  return out;
}

absl::Status Feed(V5Protocol& s, const std::string& bytes, std::string* reply) {
  return s.OnBytes(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), reply);
}

// The single event in `reply`.
v5::Event OnlyEvent(const std::string& reply) {
  v5::StreamDecoder dec;
  dec.Append(reply);
  auto first = dec.Next();
  EXPECT_TRUE(first.ok() && first->has_value());
  auto second = dec.Next();
  EXPECT_TRUE(second.ok() && !second->has_value()) << "more than one event in the reply";
  return first.ok() && first->has_value() ? **first : v5::Event{};
}

std::string ExceptionText(const std::string& reply) {
  v5::Event e = OnlyEvent(reply);
  auto* ex = std::get_if<v5::RemoteException>(&e);
  return ex ? ex->text : "<not a RemoteException>";
}

TEST(V5ProtocolTest, HandshakeOpensTheBusWithTheClientsSettings) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  const std::vector<CanFilter> filters = {{0x11, 0xFF, std::nullopt}};
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 250000}, v5::FilterConfig{filters}}), &reply).ok());
  EXPECT_TRUE(s.is_open());
  EXPECT_EQ(actions.opened_bitrate, 250000);
  EXPECT_EQ(actions.opened_filters, filters);
  EXPECT_TRUE(OnlyEvent(reply) == v5::Event(v5::BusResponse{"virtual channel 'test'"}));
}

TEST(V5ProtocolTest, HandshakeWrittenByteByByte) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  for (char c : Bytes({v5::BusRequest{5, 500000}, v5::FilterConfig{}})) {
    ASSERT_TRUE(Feed(s, std::string(1, c), &reply).ok());
  }
  EXPECT_TRUE(s.is_open());
  EXPECT_TRUE(std::holds_alternative<v5::BusResponse>(OnlyEvent(reply)));
}

TEST(V5ProtocolTest, WrongVersionIsExplained) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  EXPECT_FALSE(Feed(s, Bytes({v5::BusRequest{4, 500000}}), &reply).ok());
  EXPECT_THAT(ExceptionText(reply),
              HasSubstr("protocol version mismatch: client speaks version 4"));
  EXPECT_EQ(actions.opened_bitrate, -1) << "the bus must not be opened";
}

TEST(V5ProtocolTest, WrongFirstEventIsExplained) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  EXPECT_FALSE(Feed(s, Bytes({v5::FilterConfig{}}), &reply).ok());
  EXPECT_THAT(ExceptionText(reply), HasSubstr("expected BusRequest, got FilterConfig"));
}

TEST(V5ProtocolTest, MissingFilterConfigIsExplained) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  EXPECT_FALSE(
      Feed(s, Bytes({v5::BusRequest{5, 1}, v5::CanMessage{CanFrame::Classic(1, {})}}), &reply)
          .ok());
  EXPECT_THAT(ExceptionText(reply),
              HasSubstr("expected FilterConfig after BusRequest, got CanMessage"));
}

TEST(V5ProtocolTest, BusThatCannotOpenIsExplained) {
  FakeActions actions;
  actions.open_error = absl::UnavailableError("could not open the bus: interface down");
  V5Protocol s(&actions);
  std::string reply;
  EXPECT_FALSE(Feed(s, Bytes({v5::BusRequest{5, 1}, v5::FilterConfig{}}), &reply).ok());
  EXPECT_EQ(ExceptionText(reply), "could not open the bus: interface down");
}

TEST(V5ProtocolTest, GarbageAfterHandshakeNamesTheEventId) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 1}, v5::FilterConfig{}}), &reply).ok());
  reply.clear();
  EXPECT_FALSE(Feed(s, "\x63", &reply).ok());
  EXPECT_THAT(ExceptionText(reply), HasSubstr("protocol error: unknown event id 99"));
  EXPECT_EQ(s.state(), V5Protocol::State::kClosed);
}

TEST(V5ProtocolTest, OpenSessionPassesFramesPeriodicAndFilters) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 1}, v5::FilterConfig{}}), &reply).ok());
  const CanFrame f = CanFrame::Classic(0x123, {1, 2, 3});
  const v5::PeriodicMessageStart start{10, 0, f};
  const std::vector<CanFilter> filters = {{1, 2, true}};
  reply.clear();
  ASSERT_TRUE(Feed(s,
                   Bytes({v5::CanMessage{f}, start, v5::PeriodicMessageStop{0x123},
                          v5::FilterConfig{filters}}),
                   &reply)
                  .ok());
  EXPECT_TRUE(reply.empty());
  ASSERT_EQ(actions.sent.size(), 1u);
  EXPECT_EQ(actions.sent[0], f);
  ASSERT_EQ(actions.started.size(), 1u);
  EXPECT_EQ(actions.started[0].period, absl::Milliseconds(start.period_ms));
  EXPECT_EQ(actions.started[0].duration, absl::Milliseconds(start.duration_ms));
  EXPECT_EQ(actions.started[0].frame, start.frame);
  EXPECT_EQ(actions.stopped, std::vector<uint32_t>{0x123});
  EXPECT_EQ(actions.new_filters, filters);
}

TEST(V5ProtocolTest, ServerEventsFromTheClientAreRejected) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 1}, v5::FilterConfig{}}), &reply).ok());
  reply.clear();
  EXPECT_FALSE(Feed(s, Bytes({v5::BusResponse{"x"}}), &reply).ok());
  EXPECT_THAT(ExceptionText(reply), HasSubstr("unexpected BusResponse from client"));
}

TEST(V5ProtocolTest, ConnectionClosedEndsQuietly) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  absl::Status st = Feed(s, "\xff", &reply);
  EXPECT_TRUE(absl::IsCancelled(st));
  EXPECT_TRUE(reply.empty());
}

TEST(V5ProtocolTest, EofInsideAnEventIsReported) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, std::string("\x01\x05\x00", 3), &reply).ok());
  EXPECT_FALSE(s.OnEof().ok());
}

// The decoder stops at a full queue; the CAN thread may make room before the caller looks. The
// session must still say it held bytes back, or those bytes wait for more that never come (a
// client that had sent everything stalled for good: vcan scenario 13, 1 in ~20 runs).
TEST(V5ProtocolTest, HeldBackStaysTrueWhenTheQueueEmptiesAfterTheStop) {
  class BlockingActions : public FakeActions {
   public:
    bool TransmitBlocked() const override { return blocked; }
    void Transmit(const CanFrame& frame) override {
      FakeActions::Transmit(frame);
      blocked = sent.size() % 2 == 0;  // the queue is full after every second frame
    }
    bool blocked = false;
  };
  BlockingActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 0}, v5::FilterConfig{}}), &reply).ok());
  std::string frames;
  for (uint8_t i = 0; i < 5; ++i) frames += Bytes({v5::CanMessage{CanFrame::Classic(i, {i})}});
  ASSERT_TRUE(Feed(s, frames, &reply).ok());
  EXPECT_EQ(actions.sent.size(), 2u);
  actions.blocked = false;  // the CAN thread drained the queue meanwhile
  EXPECT_TRUE(s.held_back()) << "three frames wait undecoded";
  ASSERT_TRUE(s.Resume(&reply).ok());
  EXPECT_EQ(actions.sent.size(), 4u);
  EXPECT_TRUE(s.held_back());
  actions.blocked = false;
  ASSERT_TRUE(s.Resume(&reply).ok());
  EXPECT_EQ(actions.sent.size(), 5u);
  EXPECT_FALSE(s.held_back());
}

CanFrame FdFrame(uint32_t id, uint8_t len, uint8_t extra_flags = kCanFlagBrs) {
  CanFrame f;
  f.id = id;
  f.flags = kCanFlagFd | extra_flags;
  f.len = len;
  for (uint8_t i = 0; i < len; ++i) f.data[i] = i;
  return f;
}

TEST(V5ProtocolTest, Version6CarriesCanFdFramesAndPeriodicJobs) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{6, 0}, v5::FilterConfig{}}), &reply).ok());
  EXPECT_TRUE(s.fd_enabled());
  EXPECT_EQ(s.version(), 6);
  reply.clear();
  const CanFrame fd = FdFrame(0x123, 64, kCanFlagBrs | kCanFlagEsi);
  const CanFrame classic = CanFrame::Classic(0x7, {1, 2});
  ASSERT_TRUE(Feed(s,
                   Bytes({v5::CanFdMessage{fd}, v5::CanMessage{classic},
                          v5::PeriodicFdMessageStart{20, 0, FdFrame(0x55, 12)}}),
                   &reply)
                  .ok());
  EXPECT_TRUE(reply.empty());
  ASSERT_EQ(actions.sent.size(), 2u);
  EXPECT_EQ(actions.sent[0], fd);
  EXPECT_EQ(actions.sent[1], classic);
  ASSERT_EQ(actions.started.size(), 1u);
  EXPECT_EQ(actions.started[0].period, absl::Milliseconds(20));
  EXPECT_EQ(actions.started[0].frame, FdFrame(0x55, 12));
}

TEST(V5ProtocolTest, Version5ClientSendingCanFdIsAProtocolError) {
  for (const v5::Event& fd_event :
       {v5::Event(v5::CanFdMessage{FdFrame(0x123, 8)}),
        v5::Event(v5::PeriodicFdMessageStart{10, 0, FdFrame(0x123, 8)})}) {
    FakeActions actions;
    V5Protocol s(&actions);
    std::string reply;
    ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{5, 0}, v5::FilterConfig{}}), &reply).ok());
    EXPECT_FALSE(s.fd_enabled());
    reply.clear();
    const absl::Status st = Feed(s, Bytes({fd_event}), &reply);
    EXPECT_FALSE(st.ok());
    EXPECT_THAT(ExceptionText(reply), HasSubstr("protocol error: "));
    EXPECT_THAT(ExceptionText(reply), HasSubstr("CAN FD event of protocol version 6"));
    EXPECT_TRUE(actions.sent.empty() && actions.started.empty());
    EXPECT_EQ(s.state(), V5Protocol::State::kClosed);
  }
}

TEST(V5ProtocolTest, InvalidCanFdInputEndsTheSessionWithAReason) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{6, 0}, v5::FilterConfig{}}), &reply).ok());
  reply.clear();
  // Length 9 is no CAN FD length.
  const std::string bad = absl::HexStringToBytes("0b0000000000000000000001230918");
  EXPECT_FALSE(Feed(s, bad, &reply).ok());
  EXPECT_THAT(ExceptionText(reply), HasSubstr("length 9 is not a CAN FD length"));
}

TEST(V5ProtocolTest, TruncatedCanFdDataIsReportedAtEof) {
  FakeActions actions;
  V5Protocol s(&actions);
  std::string reply;
  ASSERT_TRUE(Feed(s, Bytes({v5::BusRequest{6, 0}, v5::FilterConfig{}}), &reply).ok());
  std::string event = Bytes({v5::CanFdMessage{FdFrame(0x123, 64)}});
  event.resize(event.size() - 1);  // the last data byte never comes
  EXPECT_TRUE(Feed(s, event, &reply).ok());
  EXPECT_TRUE(actions.sent.empty());
  EXPECT_THAT(std::string(s.OnEof().message()), HasSubstr("in the middle of an event"));
}

}  // namespace
}  // namespace canserver
