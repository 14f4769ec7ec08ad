// #28: sessions that survive a broken connection. A TCP proxy between client and server cuts
// the connection (resets both ways, refuses new ones meanwhile) or the network goes silent (a
// black hole); the server keeps a session that asked for it for --resume-grace, and RemoteBus
// with `reconnect` takes it back, or opens a new one with the same filters and periodic tasks.
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/server_status.h"
#include "net/tcp_proxy.h"
#include "net/test_server.h"
#include "process_util.h"

namespace canserver {
namespace {

using testing::ConnectFrom;
using testing::Encode;
using ::testing::HasSubstr;
using testing::kSanitized;
using testing::SendAll;
using testing::SeqFrame;
using testing::SeqOf;
using testing::SetLoopback;
using testing::TcpProxy;
using testing::TestServer;

ServerOptions Resumable(absl::Duration grace = absl::Seconds(10)) {
  ServerOptions o;
  o.resume_grace = grace;
  o.max_clients_per_address = 0;
  return o;
}

std::unique_ptr<RemoteBus> ConnectWithReconnect(const std::string& address,
                                                std::vector<CanFilter> filters = {},
                                                absl::Duration reconnect = absl::Seconds(15)) {
  RemoteBusOptions o;
  o.channel = address;
  o.filters = std::move(filters);
  o.reconnect = reconnect;
  auto bus = RemoteBus::Connect(o);
  EXPECT_TRUE(bus.ok()) << bus.status();
  return bus.ok() ? *std::move(bus) : nullptr;
}

// Receives until a frame with id `id` arrives (or `timeout`); the frames before it are appended
// to *before when given.
bool RecvUntil(RemoteBus& bus, uint32_t id, absl::Duration timeout,
               std::vector<CanFrame>* before = nullptr) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    auto got = bus.Recv(absl::Milliseconds(200));
    if (!got.ok()) {
      ADD_FAILURE() << got.status();
      return false;
    }
    if (!got->has_value()) continue;
    if ((*got)->id == id) return true;
    if (before != nullptr) before->push_back(**got);
  }
  return false;
}

// Injects a frame `id` every 200 ms until `bus` receives one (a new session sees only frames
// after it opened); the other frames it received are appended to *before.
bool InjectUntilReceived(VirtualBus& vbus, RemoteBus& bus, uint32_t id, absl::Duration timeout,
                         std::vector<CanFrame>* before = nullptr) {
  for (const absl::Time deadline = absl::Now() + timeout; absl::Now() < deadline;) {
    if (!vbus.Inject(CanFrame::Classic(id, {1}))) return false;
    auto got = bus.Recv(absl::Milliseconds(200));
    if (!got.ok()) {
      ADD_FAILURE() << got.status();
      return false;
    }
    while (got.ok() && got->has_value()) {
      if ((*got)->id == id) return true;
      if (before != nullptr) before->push_back(**got);
      got = bus.Recv(absl::ZeroDuration());
    }
  }
  return false;
}

// Events from a raw connection until `n` arrived or 5 s passed.
std::vector<v5::Event> ReadEvents(int fd, size_t n) {
  v5::StreamDecoder dec;
  std::vector<v5::Event> events;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (events.size() < n && absl::Now() < deadline) {
    auto next = dec.Next();
    if (!next.ok()) break;
    if (next->has_value()) {
      events.push_back(**next);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got <= 0) break;
    dec.Append(absl::string_view(buf, static_cast<size_t>(got)));
  }
  return events;
}

const Subscriber* OnlyDetached(const std::vector<std::shared_ptr<const Subscriber>>& subs) {
  for (const auto& s : subs) {
    if (s->detached_until_ns.load() != 0) return s.get();
  }
  return nullptr;
}

bool WaitDetached(TestServer& ts) {
  return TestServer::WaitUntil(
      [&] { return OnlyDetached(ts.server().channel().Subscribers()) != nullptr; });
}

// Cuts the connection and, once the server knows (frames sent before that are in transit, and
// what of them exceeds --resume-replay is reported lost instead), puts frames [from, to) on the
// bus and waits until the channel has them.
void CutThenInject(TestServer& ts, TcpProxy& proxy, uint32_t from, uint32_t to) {
  proxy.Cut();
  ASSERT_TRUE(WaitDetached(ts));
  for (uint32_t i = from; i < to; ++i) ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, i)));
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts.server().channel().counters().bus_rx.Get() >= to; }));
}

// (1) A test PC's connection drops for 2 s: its 20 ms heartbeat keeps going on the bus, without a
// gap, and the client carries on in the same session.
TEST(ResumeTest, APeriodicJobRunsOnThroughACut) {
  TestServer ts(Resumable());
  TcpProxy proxy(ts.server().port());
  auto client = ConnectWithReconnect(proxy.address());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->resumable());
  auto observer = ts.Connect();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 2; }));
  auto job = client->SendPeriodic(CanFrame::Classic(0x321, {0xAA}), absl::Milliseconds(20));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::SleepFor(absl::Milliseconds(300));
  proxy.Cut();
  absl::SleepFor(absl::Seconds(2));
  proxy.Restore();
  // The client meets the break at its next call, reconnects and resumes.
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x555, {1})));
  ASSERT_TRUE(RecvUntil(*client, 0x555, absl::Seconds(15)));
  const ReconnectStatus status = client->reconnect_status();
  EXPECT_EQ(status.breaks, 1u);
  EXPECT_EQ(status.resumed, 1u) << status.last;
  EXPECT_EQ(status.frames_lost, 0u) << status.last;
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE((*job)->Stop().ok());
  std::vector<CanFrame> seen;
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x556, {1})));
  ASSERT_TRUE(RecvUntil(*observer, 0x556, absl::Seconds(5), &seen));
  std::vector<int64_t> times;
  for (const CanFrame& f : seen) {
    if (f.id == 0x321) times.push_back(f.timestamp_ns);
  }
  ASSERT_GE(times.size(), 100u) << "2.9 s of a 20 ms job";
  int64_t widest = 0;
  for (size_t i = 1; i < times.size(); ++i) widest = std::max(widest, times[i] - times[i - 1]);
  std::printf("20 ms job across a 2 s cut: %zu frames, widest gap %.1f ms; %s\n", times.size(),
              static_cast<double>(widest) / 1e6, status.last.c_str());
  EXPECT_LT(widest, (kSanitized ? 200 : 60) * 1'000'000) << "the heartbeat stopped during the cut";
}

// (2) 5,000 frames on the bus while the connection is cut reach the client after it resumes,
// in order, none reported lost (the ring held them).
TEST(ResumeTest, FramesOfTheCutArriveInOrderAfterResume) {
  TestServer ts(Resumable());
  TcpProxy proxy(ts.server().port());
  auto client = ConnectWithReconnect(proxy.address());
  ASSERT_TRUE(client && client->resumable());
  for (uint32_t i = 0; i < 100; ++i) ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, i)));
  for (uint32_t i = 0; i < 100; ++i) {
    auto f = testing::RecvFrame(*client);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(SeqOf(*f), i);
  }
  CutThenInject(ts, proxy, 100, 5100);
  absl::SleepFor(absl::Milliseconds(500));
  proxy.Restore();
  const absl::Time reconnect_from = absl::Now();
  for (uint32_t i = 100; i < 5100; ++i) {
    auto f = testing::RecvFrame(*client, absl::Seconds(15));
    ASSERT_TRUE(f.has_value()) << "frame " << i;
    ASSERT_EQ(SeqOf(*f), i) << "out of order or lost";
    if (i == 100) {
      std::printf("first resumed frame %.1f ms after the network came back\n",
                  absl::ToDoubleMilliseconds(absl::Now() - reconnect_from));
    }
  }
  const ReconnectStatus status = client->reconnect_status();
  EXPECT_EQ(status.resumed, 1u) << status.last;
  EXPECT_EQ(status.frames_lost, 0u) << status.last;
  std::printf("%s\n", status.last.c_str());
}

// (2b) A ring too small for the cut: what did not fit is reported, exactly.
TEST(ResumeTest, WhatTheRingCouldNotHoldIsReportedExactly) {
  ServerOptions options = Resumable();
  options.ring_frames = 1024;
  TestServer ts(options);
  TcpProxy proxy(ts.server().port());
  auto client = ConnectWithReconnect(proxy.address());
  ASSERT_TRUE(client && client->resumable());
  CutThenInject(ts, proxy, 0, 5000);
  absl::SleepFor(absl::Milliseconds(300));
  proxy.Restore();
  // Everything the session still has, until the line stays quiet (a marker frame would find the
  // ring full too).
  std::vector<CanFrame> got;
  while (true) {
    auto f = client->Recv(got.empty() ? absl::Seconds(15) : absl::Seconds(1));
    ASSERT_TRUE(f.ok()) << f.status();
    if (!f->has_value()) break;
    got.push_back(**f);
  }
  const ReconnectStatus status = client->reconnect_status();
  ASSERT_EQ(status.resumed, 1u) << status.last;
  for (size_t i = 1; i < got.size(); ++i) ASSERT_GT(SeqOf(got[i]), SeqOf(got[i - 1]));
  EXPECT_EQ(got.size() + status.frames_lost, 5000u) << status.last;
  EXPECT_GT(status.frames_lost, 0u);
  std::printf("received %zu, reported lost %llu: %s\n", got.size(),
              static_cast<unsigned long long>(status.frames_lost), status.last.c_str());
}

// Frames on their way when the connection breaks (in the server's output, the sockets, the
// proxy) are sent again from what the session kept (--resume-replay); beyond that the count is
// reported. Either way every frame is accounted for, in order.
TEST(ResumeTest, FramesInTransitAtTheBreakAreSentAgainOrCounted) {
  for (size_t replay : {size_t{4096}, size_t{64}}) {
    ServerOptions options = Resumable();
    options.resume_replay_frames = replay;
    TestServer ts(options);
    TcpProxy proxy(ts.server().port());
    auto client = ConnectWithReconnect(proxy.address());
    ASSERT_TRUE(client && client->resumable());
    std::thread flood([&] {
      for (uint32_t i = 0; i < 5000; ++i) {
        while (!ts.bus().Inject(SeqFrame(0x100, i))) absl::SleepFor(absl::Microseconds(50));
        if (i % 50 == 49) absl::SleepFor(absl::Milliseconds(1));
      }
    });
    absl::SleepFor(absl::Milliseconds(30));
    proxy.Cut();
    flood.join();
    ASSERT_TRUE(WaitDetached(ts));
    proxy.Restore();
    ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x555, {1})));
    std::vector<CanFrame> got;
    ASSERT_TRUE(RecvUntil(*client, 0x555, absl::Seconds(15), &got));
    const ReconnectStatus status = client->reconnect_status();
    ASSERT_EQ(status.resumed, 1u) << status.last;
    for (size_t i = 1; i < got.size(); ++i) ASSERT_GT(SeqOf(got[i]), SeqOf(got[i - 1]));
    EXPECT_EQ(got.size() + status.frames_lost, 5000u) << status.last;
    std::printf("--resume-replay %zu: received %zu, reported lost %llu: %s\n", replay, got.size(),
                static_cast<unsigned long long>(status.frames_lost), status.last.c_str());
  }
}

// (3) A black hole (nothing arrives, nobody says goodbye): the server detaches the session
// within its keepalive bound and keeps it; once the network is back the client resumes it and
// what the bus carried meanwhile arrives.
TEST(ResumeTest, ABlackHoledClientIsDetachedWithinTheKeepaliveAndResumes) {
  testing::OwnNetwork network;
  if (!network.ok()) GTEST_SKIP() << network.why();
  ServerOptions options = Resumable(absl::Seconds(60));
  options.keepalive = absl::Seconds(3);
  options.slow_client_timeout = absl::Seconds(3);
  TestServer ts(options);
  auto client = ConnectWithReconnect(ts.address(), {}, absl::Seconds(60));
  ASSERT_TRUE(client && client->resumable());
  ASSERT_TRUE(SetLoopback(false));
  const absl::Time start = absl::Now();
  uint32_t injected = 0;
  const bool detached = TestServer::WaitUntil(
      [&] {
        (void)ts.bus().Inject(SeqFrame(0x100, injected++));
        absl::SleepFor(absl::Milliseconds(50));
        return OnlyDetached(ts.server().channel().Subscribers()) != nullptr;
      },
      absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  std::printf("black-holed client detached after %s (--keepalive 3s)\n",
              absl::FormatDuration(took).c_str());
  ASSERT_TRUE(detached);
  EXPECT_EQ(ts.server().channel().subscriber_count(), 1u) << "the session must be kept";
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, injected++)));
  ASSERT_TRUE(SetLoopback(true));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x555, {1})));
  std::vector<CanFrame> got;
  // The client's own keepalive (10 s), or its next send, meets the break.
  (void)client->Send(CanFrame::Classic(0x200, {1}));
  ASSERT_TRUE(RecvUntil(*client, 0x555, absl::Seconds(30), &got));
  const ReconnectStatus status = client->reconnect_status();
  EXPECT_EQ(status.resumed, 1u) << status.last;
  for (size_t i = 1; i < got.size(); ++i) ASSERT_EQ(SeqOf(got[i]), SeqOf(got[i - 1]) + 1);
  EXPECT_EQ(got.size() + status.frames_lost, injected) << status.last;
  std::printf("%s\n", status.last.c_str());
}

// (4) The grace runs out: the session's jobs stop; the client's resume is refused and it opens a
// new session with the same filters and periodic tasks.
TEST(ResumeTest, AfterTheGraceTheJobsStopAndTheClientRebuildsItsSession) {
  TestServer ts(Resumable(absl::Milliseconds(500)));
  TcpProxy proxy(ts.server().port());
  auto client = ConnectWithReconnect(proxy.address(), {{0x555, 0x7FF, std::nullopt}});
  ASSERT_TRUE(client && client->resumable());
  auto observer = ts.Connect();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 2; }));
  auto job = client->SendPeriodic(CanFrame::Classic(0x321, {0xAA}), absl::Milliseconds(20));
  ASSERT_TRUE(job.ok());
  absl::SleepFor(absl::Milliseconds(200));
  proxy.Cut();
  ASSERT_TRUE(TestServer::WaitUntil([&] { return ts.server().channel().subscriber_count() == 1; },
                                    absl::Seconds(5)))
      << "the session outlived its grace";
  // The virtual bus loops a job's frames back: they count as received.
  const uint64_t rx_after_end = ts.server().channel().counters().bus_rx.Get();
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(ts.server().channel().counters().bus_rx.Get(), rx_after_end)
      << "the ended session's job still sends";
  proxy.Restore();
  std::vector<CanFrame> before;
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x556, {1})));  // not for its filter
  ASSERT_TRUE(InjectUntilReceived(ts.bus(), *client, 0x555, absl::Seconds(15), &before));
  ASSERT_TRUE(ts.bus().Inject(CanFrame::Classic(0x556, {1})));
  const ReconnectStatus status = client->reconnect_status();
  EXPECT_EQ(status.new_sessions, 1u) << status.last;
  EXPECT_THAT(status.last, HasSubstr("no session to resume"));
  EXPECT_TRUE(client->resumable()) << "the new session is resumable too";
  // The job runs again, in the new session.
  const uint64_t rx = ts.server().channel().counters().bus_rx.Get();
  EXPECT_TRUE(TestServer::WaitUntil(
      [&] { return ts.server().channel().counters().bus_rx.Get() >= rx + 5; }, absl::Seconds(5)))
      << "the periodic task was not restored";
  ASSERT_TRUE(InjectUntilReceived(ts.bus(), *client, 0x555, absl::Seconds(5), &before));
  for (const CanFrame& f : before) EXPECT_NE(f.id, 0x556u) << "the filter was not restored";
}

// (6) Only the client that opened a session may resume it: a token from another address is
// refused, and that connection may still open a session of its own. Unknown tokens and tokens
// on an open session are answered too.
TEST(ResumeTest, AnotherIdentitysTokenIsRefused) {
  TestServer ts(Resumable());
  UniqueFd a = ConnectFrom("127.0.0.1", ts.server().port());
  ASSERT_TRUE(a.valid());
  SendAll(a.get(), Encode({v5::BusRequest{6, 0}, v5::FilterConfig{}, v5::ResumeRequest{"", 0}}));
  std::vector<v5::Event> got = ReadEvents(a.get(), 2);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<v5::ResumeResponse>(got[1]));
  const v5::ResumeResponse kept = std::get<v5::ResumeResponse>(got[1]);
  ASSERT_EQ(kept.status, v5::ResumeStatus::kResumable);
  EXPECT_EQ(kept.grace_ms, 10000u);
  ASSERT_EQ(kept.token.size(), 32u);

  UniqueFd b = ConnectFrom("127.0.0.2", ts.server().port());
  if (!b.valid()) GTEST_SKIP() << "cannot bind 127.0.0.2";
  SendAll(b.get(), Encode({v5::ResumeRequest{kept.token, 0}}));
  got = ReadEvents(b.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  const auto* refused = std::get_if<v5::ResumeResponse>(&got[0]);
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->status, v5::ResumeStatus::kRefused);
  EXPECT_THAT(refused->text, HasSubstr("belongs to 127.0.0.1"));
  EXPECT_THAT(refused->text, HasSubstr("open a new session"));
  // The refused connection opens a session of its own.
  SendAll(b.get(), Encode({v5::BusRequest{6, 0}, v5::FilterConfig{}}));
  got = ReadEvents(b.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<v5::BusResponse>(got[0]));

  UniqueFd c = ConnectFrom("127.0.0.1", ts.server().port());
  SendAll(c.get(), Encode({v5::ResumeRequest{std::string(32, 'f'), 0}}));
  got = ReadEvents(c.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<v5::ResumeResponse>(got[0]));
  EXPECT_THAT(std::get<v5::ResumeResponse>(got[0]).text, HasSubstr("no session to resume"));

  // A token on a connection that has its session is a protocol error.
  SendAll(a.get(), Encode({v5::ResumeRequest{kept.token, 0}}));
  got = ReadEvents(a.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<v5::RemoteException>(got[0]));
  EXPECT_THAT(std::get<v5::RemoteException>(got[0]).text,
              HasSubstr("first event of a new connection"));
}

// The cost of keeping sessions for their clients: 100 detached sessions, each with frames
// waiting in its ring, hold what a session holds plus its replay window; measured, bounded.
TEST(ResumeTest, DetachedSessionsHoldBoundedMemory) {
  ServerOptions options = Resumable(absl::Seconds(60));
  options.max_clients_per_channel = 0;
  TestServer ts(options);
  constexpr int kSessions = 100;
  const int64_t before = testing::RssBytes();
  std::vector<UniqueFd> fds;
  for (int i = 0; i < kSessions; ++i) {
    fds.push_back(ConnectFrom("127.0.0.1", ts.server().port()));
    SendAll(fds.back().get(),
            Encode({v5::BusRequest{6, 0}, v5::FilterConfig{}, v5::ResumeRequest{"", 0}}));
    ASSERT_EQ(ReadEvents(fds.back().get(), 2).size(), 2u);
  }
  const int64_t open = testing::RssBytes();
  for (UniqueFd& fd : fds) {  // a reset each: the sessions are kept
    const linger reset{1, 0};
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    fd.Reset();
  }
  ASSERT_TRUE(TestServer::WaitUntil([&] {
    size_t detached = 0;
    for (const auto& s : ts.server().channel().Subscribers()) detached += s->detached_until_ns != 0;
    return detached == kSessions;
  }));
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(ts.bus().Inject(SeqFrame(0x100, i)));
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts.server().channel().counters().bus_rx.Get() >= 1000; }));
  absl::SleepFor(absl::Milliseconds(200));
  const int64_t detached = testing::RssBytes();
  EXPECT_EQ(ts.server().session_count(), static_cast<size_t>(kSessions));
  std::printf(
      "%d sessions: %.0f KiB each while open (ring, tx queue, output buffer and replay "
      "window as touched), %.0f KiB each detached with 1,000 frames waiting\n",
      kSessions, static_cast<double>(open - before) / 1024 / kSessions,
      static_cast<double>(detached - before) / 1024 / kSessions);
  if (testing::kRssMeaningful) {
    // Ring 8192 x 80 B + replay 4096 x 80 B + tx queue 1024 x 80 B, at most.
    EXPECT_LT(detached - before, int64_t{kSessions} * (1100 << 10));
  }
}

// The status shows a detached session and how long it is kept.
TEST(ResumeTest, TheStatusShowsADetachedSession) {
  TestServer ts(Resumable(absl::Seconds(30)));
  TcpProxy proxy(ts.server().port());
  auto client = ConnectWithReconnect(proxy.address());
  ASSERT_TRUE(client && client->resumable());
  proxy.Cut();
  ASSERT_TRUE(WaitDetached(ts));
  const std::string json = RenderStatusJson(ts.server().Status());
  EXPECT_THAT(json, HasSubstr("detached, resumable for 3"));  // 30 s or 29 s
  proxy.Restore();
}

// (5) A server restart: the session cannot be resumed; the client opens a new one by itself,
// with its periodic task.
TEST(ResumeTest, AClientCarriesOnAcrossAServerRestart) {
  auto first = std::make_unique<TestServer>(Resumable());
  ServerOptions again = Resumable();
  again.port = first->server().port();
  auto client = ConnectWithReconnect(first->address());
  ASSERT_TRUE(client && client->resumable());
  auto job = client->SendPeriodic(CanFrame::Classic(0x321, {0xAA}), absl::Milliseconds(20));
  ASSERT_TRUE(job.ok());
  first.reset();  // "server shutting down"
  TestServer second(again);
  ASSERT_TRUE(InjectUntilReceived(second.bus(), *client, 0x555, absl::Seconds(15)));
  const ReconnectStatus status = client->reconnect_status();
  EXPECT_EQ(status.new_sessions, 1u) << status.last;
  // The virtual bus loops a job's frames back: they count as received.
  const uint64_t rx = second.server().channel().counters().bus_rx.Get();
  EXPECT_TRUE(TestServer::WaitUntil(
      [&] { return second.server().channel().counters().bus_rx.Get() >= rx + 5; },
      absl::Seconds(5)))
      << "the periodic task was not restored on the new server";
}

}  // namespace
}  // namespace canserver
