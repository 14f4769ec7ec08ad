// The transmit path end to end over TCP on the virtual bus: frames clients send are written, in
// each client's order, never refused while the bus is merely busy; a client faster than the bus
// is slowed by TCP; clients share a slow bus fairly; a bus that takes nothing refuses after
// --tx-timeout and recovers. The emulated wire (--virtual-bitrate) stands in for a real bus's
// bit rate and device queue; tests/vcan does the same against a real kernel.
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::SeqFrame;
using testing::SeqOf;
using testing::TestServer;

std::shared_ptr<VirtualBus> Wire(int bitrate, size_t device_queue = 10) {
  return *VirtualBus::Create("test", 1 << 20, bitrate, device_queue);
}

// `n` 8-byte frames (111 bits on the wire) with id 0x100, numbered 0..n-1.
std::vector<CanFrame> Seq8Frames(uint32_t n) {
  std::vector<CanFrame> frames;
  for (uint32_t i = 0; i < n; ++i) {
    CanFrame f = SeqFrame(0x100, i);
    f.len = 8;
    frames.push_back(f);
  }
  return frames;
}

// Receives until `total` frames arrived (or 60 s without progress) and checks that each sender's
// frames (id 0x100 + sender) came in sequence order. Returns frames per sender.
std::map<uint32_t, uint32_t> ReceiveInOrder(RemoteBus& bus, uint64_t total) {
  std::map<uint32_t, uint32_t> next;
  for (uint64_t i = 0; i < total; ++i) {
    auto got = bus.Recv(absl::Seconds(20));
    EXPECT_TRUE(got.ok() && got->has_value()) << "lost after " << i << " of " << total;
    if (!got.ok() || !got->has_value()) break;
    const CanFrame& f = **got;
    uint32_t& expect = next[f.id];
    EXPECT_EQ(SeqOf(f), expect) << "sender 0x" << std::hex << f.id << " out of order";
    expect = SeqOf(f) + 1;
  }
  return next;
}

void Flood(TestServer& ts, int senders, uint32_t frames_each, const char* what) {
  auto receiver = ts.Connect();
  std::vector<std::unique_ptr<RemoteBus>> clients;
  for (int s = 0; s < senders; ++s) clients.push_back(ts.Connect());
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      std::vector<CanFrame> frames;
      for (uint32_t i = 0; i < frames_each; ++i) frames.push_back(SeqFrame(0x100 + s, i));
      for (size_t at = 0; at < frames.size(); at += 500) {
        const size_t n = std::min<size_t>(500, frames.size() - at);
        ASSERT_TRUE(clients[s]->SendMany(absl::MakeConstSpan(frames.data() + at, n)).ok());
      }
    });
  }
  std::map<uint32_t, uint32_t> got =
      ReceiveInOrder(*receiver, uint64_t{frames_each} * static_cast<uint64_t>(senders));
  for (auto& t : threads) t.join();
  const absl::Duration took = absl::Now() - start;
  for (int s = 0; s < senders; ++s) {
    EXPECT_EQ(got[0x100 + s], frames_each) << "sender " << s;
    EXPECT_EQ(clients[s]->transmit_failures(), 0u);
  }
  EXPECT_EQ(ts.server().channel().counters().bus_tx_failed.Get(), 0u);
  EXPECT_EQ(ts.server().channel().counters().bus_tx.Get(), uint64_t{frames_each} * senders);
  std::printf("%s: %d senders x %u frames, all on the bus in order in %s (%s)\n", what, senders,
              frames_each, absl::FormatDuration(took).c_str(),
              ts.server().channel().counters().Summary().c_str());
}

TEST(TransmitTest, FourClientsFloodingAnUnshapedBusLoseNothing) {
  ServerOptions options;
  options.ring_frames = 1 << 17;  // the one receiving client must not be the bottleneck
  TestServer ts(options);
  Flood(ts, 4, 20000, "unshaped");
}

TEST(TransmitTest, FourClientsFloodingA500kBusLoseNothing) {
  TestServer ts({}, false, Wire(500000));
  Flood(ts, 4, 1000, "500 kbit/s");
}

// One client writes far more than the bus carries at once: every frame is written, paced by the
// wire, and the client's sending is held back by TCP (the server stopped reading it) instead of
// anything being refused.
TEST(TransmitTest, ABurstIntoASlowBusIsPacedNotRefused) {
  ServerOptions options;
  TestServer ts(options, false, Wire(1000000));
  auto receiver = ts.Connect();
  auto sender = ts.Connect();
  constexpr uint32_t kFrames = 20000;  // 111 bits each at 1 Mbit/s: 2.2 s of wire time
  const std::vector<CanFrame> frames = Seq8Frames(kFrames);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(sender->SendMany(frames).ok());
  const absl::Duration sending = absl::Now() - start;
  int64_t first_ts = 0, last_ts = 0;
  for (uint32_t i = 0; i < kFrames; ++i) {
    auto got = receiver->Recv(absl::Seconds(10));
    ASSERT_TRUE(got.ok() && got->has_value()) << "lost after " << i;
    ASSERT_EQ(SeqOf(**got), i);
    if (i == 0) first_ts = (*got)->timestamp_ns;
    last_ts = (*got)->timestamp_ns;
  }
  const absl::Duration wire = absl::Microseconds(int64_t{kFrames} * 111);
  const absl::Duration on_bus = absl::Nanoseconds(last_ts - first_ts);
  std::printf("20000 frames at 1 Mbit/s: sender done after %s, on the bus over %s (wire %s)\n",
              absl::FormatDuration(sending).c_str(), absl::FormatDuration(on_bus).c_str(),
              absl::FormatDuration(wire).c_str());
  EXPECT_EQ(sender->transmit_failures(), 0u);
  EXPECT_GE(on_bus, wire * 0.95) << "frames left faster than the wire carries them";
  // The CAN thread comes back when a quarter of the 10-frame device queue (0.28 ms) has left the
  // wire (CanChannelWireTest checks that hint without a clock); a wake-up later than the whole
  // queue (1.1 ms) idles the wire. Alone on a quiet machine that is 1.0-1.2x; this suite runs
  // serially, but a shared CI host still stretched it to 1.85x once, so the bound here only
  // catches gross idling (the figure is printed; canbench --senders measures it).
  EXPECT_LE(on_bus, wire * (testing::kSanitized ? 3.0 : 2.0))
      << "the wire idled while frames waited";
  const auto& c = ts.server().channel().counters();
  EXPECT_EQ(c.bus_tx_failed.Get(), 0u);
  EXPECT_GT(c.tx_busy.Get(), 0u);
}

// How far a sending client can run ahead of a busy bus is bounded: once the tx queue, the
// server's undecoded input and the socket buffers hold their share, TCP holds the client (a
// flashing tool's "sent" means "nearly on the bus"). Measured here: 4,800-6,600 frames (15,000-
// 20,000 with a 128 KiB --client-rcvbuf and up to 256 KiB read ahead undecoded; 25,000 with the
// kernel's autotuning, which in the VM's kernel let a whole 1.4 MB burst vanish: scenario 29).
TEST(TransmitTest, ASendingClientRunsAheadOfABusyBusByABoundedAmount) {
  TestServer ts({}, false, Wire(5000000));  // 45,000 frames/s: the burst takes 1.3 s
  auto sender = ts.Connect();
  const int sndbuf = 64 << 10;  // as a real network's congestion window would bound it
  ASSERT_EQ(::setsockopt(sender->fileno(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  constexpr uint32_t kFrames = 60000;  // 1.4 MB of CanMessages
  const std::vector<CanFrame> frames = Seq8Frames(kFrames);
  ASSERT_TRUE(sender->SendMany(frames).ok());
  const auto& c = ts.server().channel().counters();
  const uint64_t ahead = kFrames - c.bus_tx.Get();
  std::printf("when SendMany returned, %llu of %u frames were not yet on the bus\n",
              static_cast<unsigned long long>(ahead), kFrames);
  // Client send buffer (2 x 64 KiB) + server receive buffer (2 x 16 KiB) + as much again
  // undecoded + the 1,024-frame tx queue: about 215 KiB, 9,400 CanMessages at most.
  EXPECT_LE(ahead, 10000u);
  ASSERT_TRUE(TestServer::WaitUntil([&] { return c.bus_tx.Get() == kFrames; }));
  EXPECT_EQ(sender->transmit_failures(), 0u);
}

// A 10,000-frame burst (a flash image, a replayed log) from a client whose send buffer stays at
// the kernel's initial 16 KiB: the client is held for most of the bus's time, not answered at
// once with everything still queued. What it may run ahead by is its own buffer and the
// server's (about 3,000 frames here: 0.7x the wire time measured; before the receive buffer was
// set on the listener and reads emptied the socket, 0.04x: the whole burst fit the buffers).
TEST(TransmitTest, ABurstsSenderIsHeldForMostOfTheWireTime) {
  TestServer ts({}, false, Wire(1000000));  // 9,000 frames/s: the burst takes 1.1 s
  auto sender = ts.Connect();
  const int sndbuf = 16 << 10;
  ASSERT_EQ(::setsockopt(sender->fileno(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  constexpr uint32_t kFrames = 10000;
  const std::vector<CanFrame> frames = Seq8Frames(kFrames);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(sender->SendMany(frames).ok());
  const absl::Duration sending = absl::Now() - start;
  const auto& c = ts.server().channel().counters();
  const uint64_t ahead = kFrames - c.bus_tx.Get();
  const absl::Duration wire = absl::Microseconds(int64_t{kFrames} * 111);
  std::printf("10000 frames at 1 Mbit/s: sender held %s of the wire's %s; %llu frames ahead\n",
              absl::FormatDuration(sending).c_str(), absl::FormatDuration(wire).c_str(),
              static_cast<unsigned long long>(ahead));
  EXPECT_LE(ahead, 5000u) << "the client ran ahead of the bus by more than the buffers hold";
  EXPECT_GE(sending, wire * 0.5) << "the sender was not held to the bus rate";
  ASSERT_TRUE(TestServer::WaitUntil([&] { return c.bus_tx.Get() == kFrames; }));
  EXPECT_EQ(sender->transmit_failures(), 0u);
  EXPECT_EQ(c.bus_tx_failed.Get(), 0u);
}

// A client that sends a burst and closes its side at once (python-can's shutdown after send,
// can.player at the end of a log): every frame it sent still reaches the bus, those the server
// held back undecoded included, and then the server ends the session; v5 and socketcand alike.
// (A client that closes with replies unread resets the connection instead, and its own kernel
// discards what it had not sent yet: docs/reliability.md.)
TEST(TransmitTest, ABurstThenCloseStillReachesTheBus) {
  // 1,100 frames arrive in one read with the close right behind them, 76 beyond the 1,024-frame
  // queue; 10,000 (1.1 s of wire time) make the server stop reading on the way.
  for (const auto& [socketcand, kFrames] :
       {std::pair{false, 1100u}, {true, 1100u}, {false, 10000u}, {true, 10000u}}) {
    ServerOptions options;
    options.socketcand_port = 0;
    TestServer ts(options, false, Wire(1000000));
    auto receiver = ts.Connect();
    std::string bytes;
    UniqueFd fd;
    if (socketcand) {
      fd = *ConnectTcp(HostPort{"127.0.0.1", ts.server().socketcand_port()}, absl::Seconds(5));
      bytes = "< open test >< rawmode >";
      for (uint32_t i = 0; i < kFrames; ++i) {
        absl::StrAppendFormat(&bytes, "< send 100 4 %X %X %X %X >", i >> 24, (i >> 16) & 0xFF,
                              (i >> 8) & 0xFF, i & 0xFF);
      }
    } else {
      fd = ts.ConnectRaw();
      bytes = testing::Encode({v5::BusRequest{v5::kProtocolVersion, 0}, v5::FilterConfig{}});
      for (uint32_t i = 0; i < kFrames; ++i) {
        ASSERT_TRUE(v5::Encode(v5::CanMessage{SeqFrame(0x100, i)}, &bytes).ok());
      }
    }
    std::thread writer([&] {
      size_t at = 0;
      while (at < bytes.size()) {
        const ssize_t n = ::send(fd.get(), bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      EXPECT_EQ(at, bytes.size());
      ::shutdown(fd.get(), SHUT_WR);  // done sending, with frames still waiting in the server
      char buf[256];
      while (::recv(fd.get(), buf, sizeof buf, 0) > 0) {  // replies, then the server's close
      }
      fd.Reset();
    });
    for (uint32_t i = 0; i < kFrames; ++i) {
      auto got = receiver->Recv(absl::Seconds(10));
      ASSERT_TRUE(got.ok() && got->has_value())
          << (socketcand ? "socketcand" : "v5") << ": lost after " << i;
      ASSERT_EQ(SeqOf(**got), i);
    }
    writer.join();
    EXPECT_EQ(ts.server().channel().counters().bus_tx_failed.Get(), 0u);
  }
}

// While A bursts into a 250 kbit/s bus, B's occasional frames do not queue behind A's burst.
TEST(TransmitTest, AnotherClientsBurstDoesNotDelayAnOccasionalFrame) {
  TestServer ts({}, false, Wire(250000));
  auto observer = ts.Connect();
  auto a = ts.Connect();
  auto b = ts.Connect();
  std::vector<CanFrame> burst;
  for (uint32_t i = 0; i < 5000; ++i) burst.push_back(SeqFrame(0x200, i));  // 2.2 s of wire
  std::thread flood([&] { ASSERT_TRUE(a->SendMany(burst).ok()); });
  absl::SleepFor(absl::Milliseconds(200));  // A's backlog is in place
  std::atomic<int64_t> sent_at[10];
  std::thread occasional([&] {
    for (uint32_t i = 0; i < 10; ++i) {
      sent_at[i] = absl::ToUnixNanos(absl::Now());
      ASSERT_TRUE(b->Send(SeqFrame(0x100, i)).ok());
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  absl::Duration worst;
  uint32_t seen = 0, a_frames = 0;
  while (seen < 10) {
    auto got = observer->Recv(absl::Seconds(10));
    ASSERT_TRUE(got.ok() && got->has_value()) << "B's frame " << seen << " never came";
    const int64_t now = absl::ToUnixNanos(absl::Now());
    if ((*got)->id != 0x100) {
      ++a_frames;
      continue;
    }
    ASSERT_EQ(SeqOf(**got), seen);
    worst = std::max(worst, absl::Nanoseconds(now - sent_at[seen].load()));
    ++seen;
  }
  occasional.join();
  flood.join();
  std::printf("B's worst delay behind A's burst: %s (A's frames meanwhile: %u)\n",
              absl::FormatDuration(worst).c_str(), a_frames);
  EXPECT_LT(a_frames, 5000u) << "A's burst finished first: the test proves nothing";
  // Queued behind A's backlog (its tx queue alone is 1,024 frames, 0.45 s of this wire, and
  // more waits in TCP) B's frame would wait over half a second; fair, about one frame of A's
  // (0.44 ms) plus the device queue. The bound sits between, wide enough for a loaded machine.
  EXPECT_LE(worst, absl::Milliseconds(250));
}

// TCP carries the backpressure: a client that writes far more than TCP buffers between it and
// the server (hundreds of KiB on loopback) is held back until the bus has carried most of it.
TEST(TransmitTest, ASenderFasterThanTheBusIsSlowedByTcp) {
  TestServer ts({}, false, Wire(10'000'000, 64));  // 10 Mbit/s: 90,000 frames/s
  auto receiver = ts.Connect();
  auto sender = ts.Connect();
  constexpr uint32_t kFrames = 100000;  // 2.3 MB, 79 bits each: 0.79 s of wire time
  std::vector<CanFrame> frames;
  for (uint32_t i = 0; i < kFrames; ++i) frames.push_back(SeqFrame(0x100, i));
  // On loopback (64 KiB MSS) the kernel grows a sender's buffer to megabytes and hides any
  // backpressure; across a real network the congestion window bounds it. A fixed 64 KiB buffer
  // stands in for that.
  const int sndbuf = 64 << 10;
  ASSERT_EQ(::setsockopt(sender->fileno(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  std::atomic<int64_t> sending_ns{0};
  std::thread send([&] {
    const absl::Time start = absl::Now();
    ASSERT_TRUE(sender->SendMany(frames).ok());
    sending_ns = absl::ToInt64Nanoseconds(absl::Now() - start);
  });
  const absl::Time start = absl::Now();
  for (uint32_t i = 0; i < kFrames; ++i) {
    auto got = receiver->Recv(absl::Seconds(10));
    ASSERT_TRUE(got.ok() && got->has_value()) << "lost after " << i;
    ASSERT_EQ(SeqOf(**got), i);
  }
  const absl::Duration on_bus = absl::Now() - start;
  send.join();
  const absl::Duration sending = absl::Nanoseconds(sending_ns.load());
  std::printf("100000 frames at 10 Mbit/s: the sender was held for %s of %s on the bus\n",
              absl::FormatDuration(sending).c_str(), absl::FormatDuration(on_bus).c_str());
  EXPECT_EQ(sender->transmit_failures(), 0u);
  EXPECT_GE(sending, on_bus * 0.3) << "the server read far ahead of the bus";
}

// A bus that takes nothing (bus-off, no node acking): frames are refused after --tx-timeout, the
// server stays healthy, and traffic resumes once the bus drains.
TEST(TransmitTest, ADeadBusRefusesAfterTheTimeoutAndRecovers) {
  ServerOptions options;
  options.tx_timeout = absl::Milliseconds(300);
  TestServer ts(options);
  auto a = ts.Connect();
  auto b = ts.Connect();
  ts.bus().SetTxError(ENOBUFS);
  for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(a->Send(SeqFrame(0x100, i)).ok());
  const absl::Time start = absl::Now();
  while (a->transmit_failures() < 5 && absl::Now() - start < absl::Seconds(5)) {
    ASSERT_TRUE(a->Recv(absl::Milliseconds(10)).ok());
  }
  EXPECT_EQ(a->transmit_failures(), 5u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_EQ(ts.server().channel().counters().tx_timeout.Get(), 5u);
  ts.bus().SetTxError(0);
  ASSERT_TRUE(a->Send(SeqFrame(0x100, 5)).ok());
  auto got = b->Recv(absl::Seconds(5));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(SeqOf(**got), 5u);
}

}  // namespace
}  // namespace canserver
