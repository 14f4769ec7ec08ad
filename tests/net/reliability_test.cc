// Hostile and faulty conditions: who may connect, connection churn without fd or memory growth,
// a thousand sessions at once, clients that reset mid-stream, a client stalled for 10 s.
#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/socket_util.h"
#include "net/tcp_proxy.h"
#include "net/test_server.h"
#include "process_util.h"

namespace canserver {
namespace {

using testing::OpenFds;
using testing::RssBytes;

using testing::Encode;
using ::testing::HasSubstr;
using testing::ReadEventsUntilClosed;
using testing::SendAll;
using testing::SeqFrame;
using testing::SeqOf;
using testing::SetLoopback;
using testing::TestServer;

TEST(ReliabilityTest, OnlyAllowedAddressesAreServed) {
  ServerOptions options;
  options.allow = *AccessList::Parse({"10.0.0.0/8"});
  TestServer ts(options);
  RemoteBusOptions opts;
  opts.channel = ts.address();
  auto refused = RemoteBus::Connect(opts);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("address not allowed"));

  ServerOptions local;
  local.allow = *AccessList::Parse({"127.0.0.0/8"});
  TestServer ok(local);
  EXPECT_NE(ok.Connect(), nullptr);
}

TEST(ReliabilityTest, TenThousandConnectionCyclesLeakNoFdsOrMemory) {
  TestServer ts;
  const std::string hello = Encode({v5::BusRequest{5, 500000}, v5::FilterConfig{}});
  auto cycle = [&](int n) {
    for (int i = 0; i < n; ++i) {
      UniqueFd fd = ts.ConnectRaw();
      SendAll(fd.get(), hello);
      char buf[64];
      ASSERT_GT(::recv(fd.get(), buf, sizeof buf, 0), 0) << "cycle " << i;  // the BusResponse
    }
    // The io threads closed every session, and the CAN thread let go of every subscriber (it
    // applies unsubscribes on its own thread; on a loaded host a few hundred may still wait).
    ASSERT_TRUE(TestServer::WaitUntil([&] {
      return ts.server().session_count() == 0 && ts.server().channel().subscriber_count() == 0;
    }));
  };
  cycle(500);  // warm up allocator caches and thread-local state
  const size_t fds = OpenFds();
  const int64_t rss = RssBytes();
  const int64_t heap = testing::HeapInUseBytes();
  const absl::Time start = absl::Now();
  cycle(10000);
  constexpr int64_t kBound = 512 << 10;  // 100 bytes leaked per cycle would show as 1 MiB
  const int64_t first_growth = testing::HeapInUseBytes() - heap;
  // Memory that is only released late is no leak, and a leak stays: once (#26, +13 MiB with
  // stress-ng beside the suite, not reproduced since) the first reading was over the bound, so a
  // reading over it is taken again for up to 5 s, and both are printed.
  int64_t heap_growth = first_growth;
  if (first_growth >= kBound) {
    (void)TestServer::WaitUntil(
        [&] { return (heap_growth = testing::HeapInUseBytes() - heap) < kBound; },
        absl::Seconds(5));
  }
  std::printf(
      "10000 connect/handshake/close cycles in %s; fds %zu -> %zu; heap in use %+lld KiB (first "
      "reading %+lld KiB), RSS %+lld KiB\n",
      absl::FormatDuration(absl::Now() - start).c_str(), fds, OpenFds(),
      static_cast<long long>(heap_growth / 1024), static_cast<long long>(first_growth / 1024),
      static_cast<long long>((RssBytes() - rss) / 1024));
  EXPECT_EQ(OpenFds(), fds);
  // Live heap, not RSS: on a loaded host sessions close late and pile up, and the allocator keeps
  // the high-water mark (RSS +12.8 MiB once in CI with nothing leaked).
  if (testing::kRssMeaningful) {
    EXPECT_LT(heap_growth, kBound);
  }
}

TEST(ReliabilityTest, AThousandSessionsAtOnce) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_max < 2200) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " < 2200";
  lim.rlim_cur = std::max<rlim_t>(lim.rlim_cur, 2200);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);

  ServerOptions options;
  options.max_clients = 1000;
  options.max_clients_per_address = 0;  // all from 127.0.0.1: only the global limit here
  options.max_clients_per_channel = 0;
  options.max_handshakes = 0;
  options.ring_frames = 1024;
  options.io_threads = 4;
  TestServer ts(options);
  RemoteBusOptions opts;
  opts.channel = ts.address();
  // One connection first: the resolver opens what it keeps open before we count.
  (void)RemoteBus::Connect(opts);
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().session_count() == 0; }));
  const size_t fds = OpenFds();
  std::vector<std::unique_ptr<RemoteBus>> clients;
  for (int i = 0; i < 1000; ++i) {
    auto bus = RemoteBus::Connect(opts);
    ASSERT_TRUE(bus.ok()) << "client " << i << ": " << bus.status();
    clients.push_back(*std::move(bus));
  }
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1000; }));
  // The 1001st is told the server is full.
  auto extra = RemoteBus::Connect(opts);
  ASSERT_FALSE(extra.ok());
  EXPECT_THAT(std::string(extra.status().message()), HasSubstr("server full"));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x42, {7})));
  for (size_t i = 0; i < clients.size(); ++i) {
    auto got = clients[i]->Recv(absl::Seconds(10));
    ASSERT_TRUE(got.ok() && got->has_value()) << "client " << i;
    EXPECT_EQ((*got)->id, 0x42u);
  }
  clients.clear();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().session_count() == 0; }));
  EXPECT_EQ(OpenFds(), fds) << "file descriptors leaked";
}

TEST(ReliabilityTest, ClientsThatResetMidStreamHarmNobody) {
  TestServer ts;
  auto good = ts.Connect();
  for (int round = 0; round < 20; ++round) {
    UniqueFd fd = ts.ConnectRaw();
    // Half a CanMessage after the handshake, then a reset (SO_LINGER 0 sends RST).
    std::string bytes = Encode(
        {v5::BusRequest{5, 500000}, v5::FilterConfig{}, v5::CanMessage{CanFrame::Classic(1, {1})}});
    bytes.resize(bytes.size() - 10);
    SendAll(fd.get(), bytes);
    // Traffic in flight towards the resetting client; 200 a round stays within the good
    // client's ring, which it drains only at the end.
    for (int i = 0; i < 200; ++i) (void)ts.bus().Inject(SeqFrame(0x100, static_cast<uint32_t>(i)));
    const linger hard{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    fd.Reset();
  }
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().session_count() == 1; }));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x7, {})));
  uint32_t frames = 0;
  while (true) {
    auto got = good->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value());
    if ((*got)->id == 0x7) break;
    ++frames;
  }
  EXPECT_EQ(frames, 20u * 200u) << "the well-behaved client lost frames";
}

TEST(ReliabilityTest, AClientStalledForTenSecondsCostsOthersNothing) {
  ServerOptions options;
  options.ring_frames = 4096;
  options.slow_client_timeout = absl::ZeroDuration();  // policy: drop and count, keep the client
  TestServer ts(options);
  auto stalled = ts.Connect();
  std::vector<std::unique_ptr<RemoteBus>> readers;
  for (int i = 0; i < 4; ++i) readers.push_back(ts.Connect());
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> injected{0};
  std::vector<std::atomic<uint32_t>> received(4);
  std::atomic<bool> lost{false};
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      uint32_t expect = 0;
      absl::Time last_frame = absl::Now();
      while (!stop || expect < injected) {
        auto got = readers[r]->Recv(absl::Milliseconds(100));
        if (got.ok() && !got->has_value()) {
          if (absl::Now() - last_frame > absl::Seconds(5)) break;  // counted as lost below
          continue;
        }
        if (!got.ok() || SeqOf(**got) != expect) break;
        last_frame = absl::Now();
        received[r] = ++expect;
      }
      if (expect != injected) lost = true;
    });
  }
  const int64_t rss_before = RssBytes();
  const absl::Time end = absl::Now() + absl::Seconds(10);
  // About 20,000 frames/s, twice a saturated 1 Mbit/s bus, for 10 s.
  while (absl::Now() < end && !lost) {
    for (int i = 0; i < 200; ++i) {
      while (!ts.bus().Inject(SeqFrame(0x200, injected))) absl::SleepFor(absl::Microseconds(100));
      ++injected;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_FALSE(lost) << "a reading client lost or reordered frames";
  const uint64_t drops = ts.server().channel().counters().ring_drops.Get();
  std::printf(
      "stalled 10 s: %u frames sent, each reader got all; stalled client's drops %llu; "
      "RSS %+lld KiB\n",
      injected.load(), static_cast<unsigned long long>(drops),
      static_cast<long long>((RssBytes() - rss_before) / 1024));
  // The stalled client resumes: it gets what the server and the sockets held for it, in order,
  // and every frame it did not get is counted as its drop — nothing is lost silently. The kernel
  // may hold megabytes for it; after a long zero window TCP can take seconds to resume (its
  // persist and retransmit timers back off), so wait for the account to balance, giving up only
  // after 20 s without a frame.
  uint64_t got_frames = 0;
  uint32_t last = 0;
  absl::Duration longest_gap;
  absl::Time last_arrival = absl::Now();
  while (got_frames + drops < injected.load()) {
    auto got = stalled->Recv(absl::Seconds(20));
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) break;
    longest_gap = std::max(longest_gap, absl::Now() - last_arrival);
    last_arrival = absl::Now();
    if (got_frames > 0) {
      ASSERT_GT(SeqOf(**got), last) << "out of order";
    }
    last = SeqOf(**got);
    ++got_frames;
  }
  std::printf(
      "stalled client after resuming: received %llu + dropped %llu = %u sent; longest wait %s\n",
      static_cast<unsigned long long>(got_frames), static_cast<unsigned long long>(drops),
      injected.load(), absl::FormatDuration(longest_gap).c_str());
  EXPECT_EQ(got_frames + drops, injected.load());
  // Nothing more arrives: no frame was delivered twice or invented.
  auto extra = stalled->Recv(absl::Milliseconds(200));
  ASSERT_TRUE(extra.ok()) << extra.status();
  EXPECT_FALSE(extra->has_value());
}

// The server's own TCP sockets on `port` (/proc/net/tcp): how many, in which states, and the
// bytes their send queues hold.
struct PortSockets {
  int listening = 0;
  // Sockets that still hold or owe data: established, FIN_WAIT1 and CLOSING (an orphan
  // retransmitting into a shut window), LAST_ACK… Not FIN_WAIT2 or TIME_WAIT: everything they
  // sent, their FIN included, was acknowledged, they hold no buffer and the kernel ends them
  // (tcp_fin_timeout). A session closed just after its last bytes went out ends in FIN_WAIT2
  // while the client keeps its end open, as here.
  int holding = 0;
  std::string holding_states;  // "01 04 …" (include/net/tcp_states.h), for the failure message
  int64_t tx_queued = 0;       // bytes in the send queues
};
PortSockets SocketsOn(uint16_t port) {
  PortSockets p;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    unsigned local_port = 0, state = 0;
    unsigned long tx = 0, rx = 0;
    char local[64], remote[64];
    if (std::sscanf(line.c_str(), " %*d: %63[0-9A-Fa-f:] %63[0-9A-Fa-f:] %x %lx:%lx", local, remote,
                    &state, &tx, &rx) != 5) {
      continue;
    }
    const char* colon = std::strchr(local, ':');
    if (colon == nullptr || std::sscanf(colon + 1, "%x", &local_port) != 1) continue;
    // The server listens on 127.0.0.1 (0100007F); a port number bound on another address is
    // some other test's.
    if (local_port != port || std::strncmp(local, "0100007F:", 9) != 0) continue;
    p.tx_queued += static_cast<int64_t>(tx);
    if (state == 0x0A) {
      ++p.listening;
    } else if (tx > 0 || (state != 0x05 && state != 0x06)) {  // FIN_WAIT2, TIME_WAIT
      ++p.holding;
      absl::StrAppendFormat(&p.holding_states, " %02X", state);
    }
  }
  return p;
}

// #24: 250 sessions that never read, the bus at 10,000 frames/s, took ~1 GiB of kernel TCP memory
// (send buffers autotuned to 4 MiB each), and slow clients closed by the server left orphaned
// sockets holding 800 MiB for minutes. With --client-sndbuf (64 KiB) each holds at most about
// that, and a client closed for not reading is reset: nothing stays behind.
TEST(ReliabilityTest, StalledSessionsHoldBoundedKernelMemoryAndLeaveNoOrphans) {
  constexpr int kClients = 250;
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max < 1200) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max;
  lim.rlim_cur = std::max<rlim_t>(lim.rlim_cur, 1200);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
  ServerOptions options;
  options.max_clients = 300;
  options.max_clients_per_address = 0;  // all from 127.0.0.1 here
  options.max_clients_per_channel = 0;
  options.max_handshakes = 0;
  options.ring_frames = 1024;
  options.slow_client_timeout = absl::Seconds(2);
  TestServer ts(options);
  const uint16_t port = ts.server().port();
  std::vector<UniqueFd> clients;
  const std::string hello = Encode({v5::BusRequest{v5::kProtocolVersion, 0}, v5::FilterConfig{}});
  for (int i = 0; i < kClients; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int rcvbuf = 4096;  // the client's own buffer stays small: the server's is measured
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    SendAll(fd.get(), hello);
    clients.push_back(std::move(fd));
  }
  ASSERT_TRUE(TestServer::WaitUntil(
      [&] { return ts.server().channel().subscriber_count() == static_cast<size_t>(kClients); }));
  // 10,000 frames/s until --slow-client-timeout has closed every session that does not read.
  int64_t peak = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  for (int tick = 0; ts.server().session_count() > 0 && absl::Now() < give_up; ++tick) {
    for (int i = 0; i < 100; ++i) (void)ts.bus().Inject(SeqFrame(0x100, static_cast<uint32_t>(i)));
    absl::SleepFor(absl::Milliseconds(10));
    if (tick % 10 == 0) peak = std::max(peak, SocketsOn(port).tx_queued);
  }
  std::printf("%d stalled sessions: their send queues peaked at %lld KiB (%lld KiB each)\n",
              kClients, static_cast<long long>(peak / 1024),
              static_cast<long long>(peak / 1024 / kClients));
  EXPECT_GT(peak, 0) << "the queues never filled: the test proves nothing";
  // The kernel doubles --client-sndbuf (128 KiB) and lets one write overshoot it by a segment
  // (up to 64 KiB with GSO): 95 KiB each when run alone, 161 KiB once beside another test in
  // .ci/run. With autotuning it was 2.9 MB each; the bound sits well below that.
  EXPECT_LE(peak, int64_t{kClients} * (192 << 10)) << "more than 192 KiB per stalled session";
  // Closed for not reading, and reset, so nothing lingers holding a send buffer.
  ASSERT_EQ(ts.server().session_count(), 0u);
  ASSERT_TRUE(TestServer::WaitUntil([&] { return SocketsOn(port).holding == 0; }))
      << SocketsOn(port).holding << " sockets of the server's port still hold data (orphans), "
      << "states" << SocketsOn(port).holding_states;
  EXPECT_EQ(SocketsOn(port).listening, 1);
}

// Brings the loopback interface of this network namespace up or down.

// #28: a client that vanishes without a word (cable pulled, host off) was found only when TCP
// gave up, minutes later (an idle one never), while its periodic jobs kept sending. Here the
// network goes silent under both of two servers (loopback down in a namespace of the test's
// own: packets vanish, nobody says goodbye): the one with --keepalive 3s finds its client dead
// within seconds; the one with the kernel's defaults still holds its session then.
TEST(ReliabilityTest, AClientThatVanishesIsFoundDeadWithinTheKeepalive) {
  testing::OwnNetwork network;
  if (!network.ok()) GTEST_SKIP() << network.why();
  ServerOptions with;
  with.keepalive = absl::Seconds(3);
  with.slow_client_timeout = absl::Seconds(3);  // frames flow: unacknowledged data ends it too
  ServerOptions without;
  without.keepalive = absl::ZeroDuration();
  TestServer found(with);
  TestServer kept(without);
  auto a = found.Connect();
  auto b = kept.Connect();
  ASSERT_TRUE(a && b);
  ASSERT_EQ(found.server().session_count(), 1u);
  ASSERT_EQ(kept.server().session_count(), 1u);
  ASSERT_TRUE(SetLoopback(false));
  const absl::Time start = absl::Now();
  // A frame now and then: the server has data for its client too, as on a live bus.
  const bool gone = TestServer::WaitUntil(
      [&] {
        (void)found.bus().Inject(SeqFrame(0x100, 1));
        (void)kept.bus().Inject(SeqFrame(0x100, 1));
        absl::SleepFor(absl::Milliseconds(50));
        return found.server().session_count() == 0;
      },
      absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  std::printf("a vanished client was found dead after %s (--keepalive 3s)\n",
              absl::FormatDuration(took).c_str());
  EXPECT_TRUE(gone) << "the session of a vanished client is still open after 20 s";
  EXPECT_EQ(kept.server().session_count(), 1u)
      << "without keepalive the session was closed as well: the test proves nothing";
  ASSERT_TRUE(SetLoopback(true));
}

// The other way round: our clients (RemoteBus, SocketcandBus, canremote; ConnectTcp) notice a
// server that vanished within kClientKeepalive, 10 s.
TEST(ReliabilityTest, OurClientsProbeForAVanishedServer) {
  TestServer ts;
  absl::StatusOr<UniqueFd> fd =
      ConnectTcp(HostPort{"127.0.0.1", ts.server().port()}, absl::Seconds(5));
  ASSERT_TRUE(fd.ok()) << fd.status();
  auto get = [&](int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    EXPECT_EQ(::getsockopt(fd->get(), level, name, &value, &len), 0);
    return value;
  };
  EXPECT_EQ(get(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPIDLE), 5);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPINTVL), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPCNT), 3);
  // No TCP_USER_TIMEOUT: a server that holds a client back (a busy bus, its tx queue full) keeps
  // the window shut as long as it takes, and that must not end the connection.
  EXPECT_EQ(get(IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
}

}  // namespace
}  // namespace canserver
