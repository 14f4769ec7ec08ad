// The transmit path on a real kernel: vcan0 shaped with the tbf qdisc to drain like a real bus
// (its bit rate, a 10-frame device queue, ENOBUFS when full), and the plug qdisc for a bus that
// drains nothing. candump (-r 64 MiB) is the oracle of what reached the bus and in which order.
//
// Calibration: the qdisc sees a classic frame as 16 bytes (CAN_MTU); an 8-byte standard frame is
// 111 bits on the wire (no stuffing). tbf at B·128/111 bit/s therefore passes B/111 frames/s,
// the frame rate of a B bit/s CAN bus carrying 8-byte frames.
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using testing::Candump;
using testing::RawCan;
using testing::SeqOf;
using testing::Shell;
using testing::TestServer;
using testing::VcanTest;

constexpr int kBitsPer8ByteFrame = 111;

// Shapes `dev` like a `bitrate` bus behind txqueuelen 10; `bitrate` 0 removes the shaping.
void Shape(const std::string& dev, int bitrate) {
  std::string cmd = absl::StrFormat(
      "tc qdisc del dev %1$s root 2>/dev/null; ip link set %1$s down && "
      "ip link set %1$s txqueuelen 10 && ip link set %1$s up",
      dev);
  if (bitrate > 0) {
    cmd += absl::StrFormat(" && tc qdisc add dev %s root tbf rate %dbit burst 1600 limit 320", dev,
                           int64_t{bitrate} * 128 / kBitsPer8ByteFrame);
  }
  auto [out, rc] = testing::RunShell(cmd);
  ASSERT_EQ(rc, 0) << cmd << ": " << out;
}

class ShapedVcanTest : public VcanTest {
 public:
  using VcanTest::Serve;  // for SendBurst

 protected:
  void TearDown() override { Shape("vcan0", 0); }
};

// 8-byte frame with id 0x100 + sender and the sequence number in data[0..3].
CanFrame Seq8(int sender, uint32_t seq) {
  CanFrame f = testing::SeqFrame(0x100 + static_cast<uint32_t>(sender), seq);
  f.len = 8;
  return f;
}

// A client whose kernel send buffer stays at the kernel's initial 16 KiB (tcp_wmem's default;
// on loopback autotuning grows it to megabytes, a whole burst, and hides the backpressure).
std::unique_ptr<RemoteBus> Sender(TestServer& ts) {
  auto bus = ts.Connect();
  const int sndbuf = 16 << 10;
  EXPECT_EQ(::setsockopt(bus->fileno(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  return bus;
}

struct Dumped {
  std::map<uint32_t, uint32_t> per_id;  // frames seen per id
  bool in_order = true;
  double first_s = 0, last_s = 0;
  size_t lines = 0;
  std::string first_disorder;  // the first line out of order, with the one before it
};

// Parses candump -L lines "(1700000000.123456) vcan0 100#0000000100000000" and checks that each
// id's sequence numbers come in order without gaps. Order is the kernel's timestamp order, not the
// order candump read them: vcan echoes a written frame through netif_rx into the *current CPU's*
// backlog, so with two CPUs candump may receive frames out of the order they entered the device
// queue (seen in the VM: a frame read 60 lines late, carrying its earlier timestamp). The
// timestamp is taken in the writing thread as it enqueues, in bus order; a stable sort keeps
// candump's order for equal microseconds (one thread, one CPU, one backlog: already in order).
Dumped Parse(std::vector<std::string> lines) {
  auto stamp = [](const std::string& l) { return l.substr(0, l.find(')')); };
  std::stable_sort(lines.begin(), lines.end(), [&](const std::string& a, const std::string& b) {
    return stamp(a) < stamp(b);  // same-width "(seconds.micros" strings compare as numbers
  });
  Dumped d;
  for (const std::string& line : lines) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 3 || parts[0].size() < 3) continue;
    double t = 0;
    if (!absl::SimpleAtod(parts[0].substr(1, parts[0].size() - 2), &t)) continue;
    std::vector<std::string> idd = absl::StrSplit(parts[2], '#');
    uint32_t id = 0, seq = 0;
    if (idd.size() != 2 || idd[1].size() < 8 || !absl::SimpleHexAtoi(idd[0], &id) ||
        !absl::SimpleHexAtoi(idd[1].substr(0, 8), &seq)) {
      continue;
    }
    if (d.lines++ == 0) d.first_s = t;
    d.last_s = t;
    uint32_t& next = d.per_id[id];
    if (seq != next && d.in_order) {
      d.in_order = false;
      d.first_disorder = absl::StrFormat("line %d: %s (expected seq %d)", d.lines, line, next);
      for (size_t k = d.lines > 4 ? d.lines - 4 : 0; k < std::min(lines.size(), d.lines + 4); ++k)
        d.first_disorder += "\n  " + lines[k];
      const std::string missing = absl::StrFormat(" %X#%08X", id, next);
      for (size_t k = 0; k < lines.size(); ++k) {
        if (lines[k].find(missing) == std::string::npos) continue;
        d.first_disorder += absl::StrFormat("\n found at line %d:", k);
        for (size_t j = k > 3 ? k - 3 : 0; j < std::min(lines.size(), k + 3); ++j)
          d.first_disorder += "\n  " + lines[j];
      }
    }
    next = seq + 1;
  }
  return d;
}

// One client's burst of `frames` 8-byte frames into vcan0 shaped at `bitrate`, seen by candump:
// how long SendMany took, how many frames were not yet on the bus when it returned, and what
// reached the bus.
struct Burst {
  std::unique_ptr<TestServer> ts;
  std::unique_ptr<RemoteBus> sender;
  double wire_s = 0, sending_s = 0;
  double second_half_s = 0;  // how long the sender took for the burst's second half
  uint64_t ahead = 0;
  Dumped d;
};
Burst SendBurst(int bitrate, uint32_t frames) {
  Burst b;
  Shape("vcan0", bitrate);
  b.ts = ShapedVcanTest::Serve("vcan0");
  b.sender = Sender(*b.ts);
  b.wire_s = static_cast<double>(frames) * kBitsPer8ByteFrame / bitrate;
  Candump dump("vcan0", frames, static_cast<int>(b.wire_s * 4) + 30);
  std::vector<CanFrame> burst;
  for (uint32_t i = 0; i < frames; ++i) burst.push_back(Seq8(0, i));
  const absl::Time start = absl::Now();
  const size_t half = burst.size() / 2;
  EXPECT_TRUE(b.sender->SendMany(absl::MakeConstSpan(burst).first(half)).ok());
  const absl::Time halfway = absl::Now();
  EXPECT_TRUE(b.sender->SendMany(absl::MakeConstSpan(burst).subspan(half)).ok());
  b.sending_s = absl::ToDoubleSeconds(absl::Now() - start);
  b.second_half_s = absl::ToDoubleSeconds(absl::Now() - halfway);
  b.ahead = frames - b.ts->server().channel().counters().bus_tx.Get();
  b.d = Parse(dump.Lines(frames, absl::Seconds(b.wire_s * 4 + 20)));
  return b;
}

// 12. One client bursts 10,000 frames into a bus shaped at 125 kbit/s, 500 kbit/s and 1 Mbit/s:
// all of them reach the bus in order, none is refused, the wire is not left idle for long, and
// the client is held back by TCP rather than answered with TransmitFail: its sending takes the
// bus's time but for what the buffers between it and the bus hold (its own 32 KiB, the server's
// 32 KiB receive buffer, about as much read ahead and the 1,024-frame tx queue: ~5,000 frames
// at most, ~3,000 measured natively), and once those are full, over the burst's second half, it
// sends at the rate the bus takes frames.
TEST_F(ShapedVcanTest, Scenario12_ABurstIntoAShapedBusIsPacedNotRefused) {
  for (int bitrate : {125000, 500000, 1000000}) {
    constexpr uint32_t kFrames = 10000;
    const Burst b = SendBurst(bitrate, kFrames);
    const auto& [ts, sender, wire_s, sending_s, second_half_s, ahead, d] = b;
    const double on_bus_s = d.last_s - d.first_s;
    const double sender_fps = (kFrames - kFrames / 2) / second_half_s;
    const double bus_fps = (kFrames - 1) / on_bus_s;
    std::printf(
        "scenario 12: %d bit/s: %zu of %u frames on the bus over %.2f s (wire %.2f s: %.1f%%), "
        "sender held %.2f s (%.2fx the wire) with %llu frames not yet on the bus; its second "
        "half at %.0f frames/s, the bus's %.0f (%.2fx), %s\n",
        bitrate, d.lines, kFrames, on_bus_s, wire_s, 100 * wire_s / on_bus_s, sending_s,
        sending_s / wire_s, static_cast<unsigned long long>(ahead), sender_fps, bus_fps,
        sender_fps / bus_fps, ts->server().channel().counters().Summary().c_str());
    EXPECT_EQ(d.lines, kFrames) << bitrate;
    EXPECT_TRUE(d.in_order) << bitrate << ": " << d.first_disorder;
    EXPECT_EQ(sender->transmit_failures(), 0u) << bitrate;
    EXPECT_EQ(ts->server().channel().counters().bus_tx_failed.Get(), 0u) << bitrate;
    // The first 100 frames pass at once (tbf's 1600-byte bucket); the rest at the bus rate.
    EXPECT_GE(on_bus_s, wire_s * 0.9) << bitrate;
    // How close the bus came to its wire time depends on the emulated CPU as much as on the
    // server: at 500 kbit/s and 1 Mbit/s a loaded CI host's VM could not even fill the device
    // queue (1 Mbit/s: 3.1 s for 1.1 s of wire, tx_busy 0). So the figure is printed, the
    // retry policy is checked without a clock (CanChannelWireTest), canbench --senders measures
    // the share of the wire, and here the bound only catches gross idling. At 125 kbit/s the
    // VM always outpaces the wire, so the shaping must have made the server wait.
    if (bitrate == 125000) {
      EXPECT_GT(ts->server().channel().counters().tx_busy.Get(), 0u) << "the shaping did not bite";
    }
    const double slack = bitrate >= 500000 ? 4.0 : 1.5;
    EXPECT_LE(on_bus_s, wire_s * slack) << bitrate << ": the bus idled while frames waited";
    EXPECT_LE(ahead, 5000u) << bitrate << ": the client ran ahead by more than the buffers hold";
    EXPECT_GE(sending_s, wire_s * 0.5) << bitrate << ": the sender was not held to the bus rate";
    EXPECT_LE(sender_fps, bus_fps * 1.4) << bitrate << ": the sender outran the bus";
    EXPECT_GE(sender_fps, bus_fps * 0.6) << bitrate << ": the sender was held below the bus rate";
  }
}

// 29. Backpressure reaches the client: a burst far larger than what TCP and the server buffer
// between them (the client's 16 KiB send buffer, the client socket's 16 KiB receive buffer,
// about as much read ahead undecoded, the 1,024-frame tx queue: about 5,000 CanMessages with the
// kernel's doubling) holds the sending client, so when its SendMany returns at most that many
// frames are not yet on the bus. With the kernel's receive-buffer autotuning instead of
// --client-rcvbuf, this kernel took the whole 1.4 MB burst in 0.22 s of 7.4 s on the bus.
TEST_F(ShapedVcanTest, Scenario29_ASendingClientRunsAheadOfTheBusByABoundedAmount) {
  constexpr uint32_t kFrames = 60000;
  const Burst b = SendBurst(1000000, kFrames);
  const auto& [ts, sender, wire_s, sending_s, second_half_s, ahead, d] = b;
  const ChannelCounters& k = ts->server().channel().counters();
  std::printf(
      "scenario 29: sender held %.2f s; %llu of %u frames not yet on the bus then; all on the "
      "bus over %.2f s (wire %.2f s)\n",
      sending_s, static_cast<unsigned long long>(ahead), kFrames, d.last_s - d.first_s, wire_s);
  EXPECT_EQ(d.lines, kFrames);
  EXPECT_TRUE(d.in_order) << d.first_disorder;
  EXPECT_EQ(sender->transmit_failures(), 0u);
  EXPECT_EQ(k.bus_tx_failed.Get(), 0u);
  EXPECT_LE(ahead, 8000u) << "the client ran ahead of the bus by more than the buffers hold";
}

// 13. Four clients flood 20,000 frames each, unshaped and at 1 Mbit/s: every frame on the bus,
// each client's in its own order, none refused.
TEST_F(ShapedVcanTest, Scenario13_FourFloodingClientsLoseNothing) {
  for (int bitrate : {0, 1000000}) {
    Shape("vcan0", bitrate);
    auto ts = Serve("vcan0");
    constexpr int kSenders = 4;
    constexpr uint32_t kFrames = 20000;
    std::vector<std::unique_ptr<RemoteBus>> senders;
    for (int s = 0; s < kSenders; ++s) senders.push_back(Sender(*ts));
    const double wire_s =
        bitrate > 0 ? double{kFrames} * kSenders * kBitsPer8ByteFrame / bitrate : 5;
    Candump dump("vcan0", kFrames * kSenders, static_cast<int>(wire_s * 3) + 60);
    std::vector<std::thread> threads;
    for (int s = 0; s < kSenders; ++s) {
      threads.emplace_back([&, s] {
        std::vector<CanFrame> frames;
        for (uint32_t i = 0; i < kFrames; ++i) frames.push_back(Seq8(s, i));
        ASSERT_TRUE(senders[s]->SendMany(frames).ok());
      });
    }
    for (auto& t : threads) t.join();
    const Dumped d = Parse(dump.Lines(kFrames * kSenders, absl::Seconds(wire_s * 3 + 40)));
    std::printf("scenario 13: %s: %zu of %u frames on the bus in %.2f s; %s\n",
                bitrate > 0 ? "1 Mbit/s" : "unshaped", d.lines, kFrames * kSenders,
                d.last_s - d.first_s, ts->server().channel().counters().Summary().c_str());
    EXPECT_EQ(d.lines, size_t{kFrames} * kSenders);
    EXPECT_TRUE(d.in_order) << d.first_disorder;
    for (int s = 0; s < kSenders; ++s) {
      EXPECT_EQ(d.per_id.at(0x100 + static_cast<uint32_t>(s)), kFrames) << "sender " << s;
      EXPECT_EQ(senders[s]->transmit_failures(), 0u) << "sender " << s;
    }
  }
}

// 14. Fairness: while A bursts 5,000 frames into a 250 kbit/s bus, each of B's frames (one every
// 100 ms) reaches the bus within 50 ms.
TEST_F(ShapedVcanTest, Scenario14_AnOccasionalFrameDoesNotQueueBehindABurst) {
  Shape("vcan0", 250000);
  auto ts = Serve("vcan0");
  auto a = Sender(*ts);
  auto b = ts->Connect();
  RawCan raw("vcan0");  // sees each frame when it enters the device queue
  ASSERT_TRUE(raw.ok());
  std::vector<CanFrame> burst;
  for (uint32_t i = 0; i < 5000; ++i) burst.push_back(Seq8(1, i));  // 2.2 s of wire
  std::thread flood([&] { ASSERT_TRUE(a->SendMany(burst).ok()); });
  absl::SleepFor(absl::Milliseconds(300));
  std::atomic<int64_t> sent_ns[10];
  std::thread occasional([&] {
    for (uint32_t i = 0; i < 10; ++i) {
      sent_ns[i] = absl::ToUnixNanos(absl::Now());
      ASSERT_TRUE(b->Send(Seq8(0, i)).ok());
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  int64_t worst_ns = 0;
  uint32_t seen = 0, a_frames = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (seen < 10 && absl::Now() < deadline) {
    std::optional<CanFrame> f = raw.Read(absl::Seconds(5));
    if (!f) continue;
    if (f->id == 0x101) {
      ++a_frames;
      continue;
    }
    if (f->id != 0x100) continue;
    EXPECT_EQ(SeqOf(*f), seen);
    worst_ns = std::max(worst_ns, f->timestamp_ns - sent_ns[SeqOf(*f) % 10].load());
    ++seen;
  }
  occasional.join();
  flood.join();
  std::printf(
      "scenario 14: B's worst delay to the bus %.1f ms while A's burst was draining "
      "(%u of A's frames meanwhile)\n",
      static_cast<double>(worst_ns) / 1e6, a_frames);
  EXPECT_EQ(seen, 10u);
  EXPECT_LT(a_frames, 5000u) << "A's burst was over before B finished: nothing was proven";
  EXPECT_LE(worst_ns, 50'000'000);
}

// 15. A bus that drains nothing (the plug qdisc holds every frame): frames beyond its queue are
// refused with TransmitFail after --tx-timeout and counted, the server stays healthy, and once
// the bus drains traffic resumes in the same sessions.
TEST_F(ShapedVcanTest, Scenario15_ABusThatDrainsNothingRefusesAfterTheTimeout) {
  Shape("vcan0", 0);
  ASSERT_EQ(testing::RunShell("tc qdisc add dev vcan0 root plug limit 320").second, 0);
  ServerOptions options;
  options.tx_timeout = absl::Milliseconds(500);
  auto ts = Serve("vcan0", false, options);
  auto a = ts->Connect();
  auto b = ts->Connect();
  constexpr uint32_t kFrames = 50;  // the plug holds 320 bytes: 20 frames
  const absl::Time start = absl::Now();
  for (uint32_t i = 0; i < kFrames; ++i) ASSERT_TRUE(a->Send(Seq8(0, i)).ok());
  const auto& c = ts->server().channel().counters();
  while (c.bus_tx.Get() + c.bus_tx_failed.Get() < kFrames &&
         absl::Now() - start < absl::Seconds(10))
    absl::SleepFor(absl::Milliseconds(10));
  const absl::Duration took = absl::Now() - start;
  while (a->transmit_failures() < c.tx_timeout.Get() && absl::Now() - start < absl::Seconds(10))
    ASSERT_TRUE(a->Recv(absl::Milliseconds(10)).ok());
  std::printf("scenario 15: plugged bus: %d accepted, %d refused after %s; %s\n",
              static_cast<int>(c.bus_tx.Get()), static_cast<int>(c.tx_timeout.Get()),
              absl::FormatDuration(took).c_str(), c.Summary().c_str());
  EXPECT_EQ(c.bus_tx.Get(), 20u);
  EXPECT_EQ(c.tx_timeout.Get(), kFrames - 20);
  EXPECT_EQ(a->transmit_failures(), kFrames - 20);
  EXPECT_GE(took, absl::Milliseconds(450));
  // The server is healthy: a new client completes its handshake.
  EXPECT_NE(ts->Connect(), nullptr);
  // The bus drains: the 20 held frames go out, and new frames flow again.
  Candump dump("vcan0", 1, 20);
  ASSERT_EQ(testing::RunShell("tc qdisc change dev vcan0 root plug release_indefinite").second, 0);
  for (uint32_t i = 0; i < 20; ++i) {
    std::optional<CanFrame> f = Recv(*b);
    ASSERT_TRUE(f.has_value()) << "held frame " << i;
    EXPECT_EQ(SeqOf(*f), i);
  }
  ASSERT_TRUE(a->Send(Seq8(0, 1000)).ok());
  std::optional<CanFrame> f = Recv(*b);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(SeqOf(*f), 1000u);
  EXPECT_THAT(dump.Frames(1), ::testing::ElementsAre("100#000003E800000000"));
}

}  // namespace
}  // namespace canserver
