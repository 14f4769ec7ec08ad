// Direct writes (io/subscriber.h, SocketLoan): while a client's io thread sleeps with nothing
// pending, the CAN thread writes frames to the client's socket itself. What a client relies on is
// unchanged — every frame, in bus order, nothing mixed into its byte stream — across the
// hand-overs between the two writers. These tests drive both paths and the hand-overs between
// them (a quiet trickle, bursts, a client that stops reading) and check the streams; under TSan
// they also check the hand-over's memory ordering.
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::RecvFrame;
using testing::SeqFrame;
using testing::SeqOf;
using testing::TestServer;

// Frames injected in a pattern that makes both writers take turns: single frames with pauses
// (the io thread sleeps: direct), bursts (the ring fills while the io thread writes), repeated.
void InjectTrickleAndBursts(VirtualBus& bus, uint32_t total) {
  uint32_t seq = 0;
  while (seq < total) {
    for (int i = 0; i < 20 && seq < total; ++i) {
      ASSERT_TRUE(bus.Inject(SeqFrame(0x100, seq++)));
      absl::SleepFor(absl::Microseconds(200));
    }
    for (int i = 0; i < 200 && seq < total; ++i) {
      // The virtual bus's own queue is large; a full one would be a test setup error.
      ASSERT_TRUE(bus.Inject(SeqFrame(0x100, seq++)));
    }
  }
}

// Reads until `total` frames of id 0x100 came and checks that they are 0, 1, 2, … with none
// missing or repeated (other ids, a talking client's, are skipped).
void ExpectSequence(RemoteBus& client, uint32_t total, const char* who) {
  for (uint32_t want = 0; want < total;) {
    std::optional<CanFrame> got = RecvFrame(client);
    ASSERT_TRUE(got.has_value()) << who << ": frame " << want << " never came";
    if (got->id != 0x100) continue;
    ASSERT_EQ(SeqOf(*got), want) << who;
    ++want;
  }
}

TEST(DirectWriteTest, BothWritersTakeTurnsAndEveryClientGetsEveryFrameInBusOrder) {
  ServerOptions options;
  options.ring_frames = 1 << 16;  // bursts must not overflow: this test is about order
  TestServer ts(options);
  constexpr uint32_t kFrames = 12'000;
  auto v5 = ts.Connect({}, 0, v5::kProtocolVersion);
  auto v6 = ts.Connect({}, 0, v5::kProtocolVersionFd);
  auto talker = ts.Connect();
  std::atomic<bool> done{false};
  // A client that sends while it receives: its io thread wakes for its bytes and takes its
  // socket back at random moments, also while the CAN thread is writing to it.
  std::thread talk([&] {
    for (uint32_t i = 0; !done.load(); ++i) {
      ASSERT_TRUE(talker->Send(CanFrame::Classic(0x7FF, {1})).ok());
      absl::SleepFor(absl::Microseconds(300));
    }
  });
  std::thread read_v5([&] { ExpectSequence(*v5, kFrames, "v5"); });
  std::thread read_v6([&] { ExpectSequence(*v6, kFrames, "v6"); });
  // The talker's own frames never come back to it, so its stream is the bus's alone.
  std::thread read_talker([&] { ExpectSequence(*talker, kFrames, "talker"); });
  InjectTrickleAndBursts(ts.bus(), kFrames);
  read_v5.join();
  read_v6.join();
  read_talker.join();
  done = true;
  talk.join();

  const ChannelCounters& k = ts.server().channel().counters();
  uint64_t to_clients = 0;
  for (const auto& sub : ts.server().channel().Subscribers()) {
    to_clients += sub->counters.frames_to_client.Get();
  }
  EXPECT_GE(to_clients, 3u * kFrames);  // v5 and v6 also got the talker's frames
  // Both writers were used: the CAN thread for the trickle, the io threads for the bursts.
  EXPECT_GT(k.direct_frames.Get(), 0u);
  EXPECT_LT(k.direct_frames.Get(), to_clients);
  EXPECT_EQ(k.ring_drops.Get(), 0u);
}

// A client that stops reading fills its socket during a direct write: the CAN thread hands the
// socket back with what did not fit, the io thread writes that first and everything after it
// from the ring once the client reads again.
TEST(DirectWriteTest, AClientThatStopsReadingGetsTheRestInOrderFromItsIoThread) {
  ServerOptions options;
  options.ring_frames = 1 << 17;
  TestServer ts(options);
  // A small receive buffer (set before connecting, so the window is small too): the server's
  // socket fills after some 100 KB instead of the megabytes loopback autotuning allows.
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  const int rcvbuf = 4096;
  ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ts.server().port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const timeval give_up{30, 0};  // a frame that never comes fails the test, not the suite
  ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &give_up, sizeof give_up), 0);
  testing::SendAll(fd.get(),
                   testing::Encode({v5::BusRequest{v5::kProtocolVersion, 0}, v5::FilterConfig{}}));
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; }));
  // Small batches (the CAN thread writes directly only batches of up to half its batch size, a
  // quiet bus) while the client reads nothing: direct writes until the socket buffers are full.
  // 2.3 MB of CanMessages: far more than the server's socket buffer (--client-sndbuf, 64 KiB)
  // and its output buffer take, less than the ring holds.
  constexpr uint32_t kFrames = 100'000;
  for (uint32_t seq = 0; seq < kFrames; ++seq) {
    ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, seq)));
    if (seq % 16 == 0) absl::SleepFor(absl::Microseconds(20));
  }
  const ChannelCounters& k = ts.server().channel().counters();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return k.bus_rx.Get() == kFrames; }));
  absl::SleepFor(absl::Milliseconds(50));  // the last batch's fan-out
  const uint64_t direct_while_blocked = k.direct_frames.Get();
  std::cout << direct_while_blocked << " of " << kFrames << " frames written directly\n";
  EXPECT_GT(direct_while_blocked, 0u);
  EXPECT_LT(direct_while_blocked, kFrames) << "the socket never filled; the test proves nothing";

  // Now read: the BusResponse, then every frame once, in order.
  v5::StreamDecoder dec;
  uint32_t want = 0;
  bool response = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (want < kFrames && absl::Now() < deadline) {
    char buf[65536];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    dec.Append(absl::string_view(buf, static_cast<size_t>(n)));
    while (true) {
      auto next = dec.Next();
      ASSERT_TRUE(next.ok()) << next.status() << " after frame " << want;
      if (!next->has_value()) break;
      if (!response) {
        ASSERT_TRUE(std::holds_alternative<v5::BusResponse>(**next));
        response = true;
        continue;
      }
      const auto* msg = std::get_if<v5::CanMessage>(&**next);
      ASSERT_NE(msg, nullptr) << v5::EventName(**next);
      ASSERT_EQ(SeqOf(msg->frame), want);
      ++want;
    }
  }
  EXPECT_EQ(want, kFrames);
  EXPECT_EQ(k.ring_drops.Get(), 0u);
}

TEST(DirectWriteTest, OffMeansEveryFrameGoesThroughTheIoThread) {
  ServerOptions options;
  options.direct_write = false;
  TestServer ts(options);
  auto client = ts.Connect();
  for (uint32_t seq = 0; seq < 200; ++seq) {
    ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, seq)));
    absl::SleepFor(absl::Microseconds(200));
  }
  ExpectSequence(*client, 200, "client");
  EXPECT_EQ(ts.server().channel().counters().direct_frames.Get(), 0u);
}

TEST(DirectWriteTest, OnAQuietBusTheCanThreadWritesItself) {
  TestServer ts;
  auto client = ts.Connect();
  // One frame at a time, each read before the next: the io thread sleeps between them.
  for (uint32_t seq = 0; seq < 200; ++seq) {
    ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, seq)));
    std::optional<CanFrame> got = RecvFrame(*client);
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(SeqOf(*got), seq);
  }
  // Not all 200: the io thread is awake now and then (its 100 ms tick, the first frame).
  EXPECT_GT(ts.server().channel().counters().direct_frames.Get(), 100u);
}

}  // namespace
}  // namespace canserver
