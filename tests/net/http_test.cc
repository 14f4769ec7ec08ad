// --http: /metrics, /api/status and the status page of a server on the virtual bus, seen by an
// HTTP client as scrapers and browsers see them; bad HTTP input never disturbs CAN traffic.
#include <arpa/inet.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/http_server.h"
#include "net/test_server.h"

namespace canserver {
namespace {

using testing::ConnectFrom;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RecvFrame;
using testing::TestServer;

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override { StartHttp(AccessList()); }
  void StartHttp(AccessList allow) {
    http_.reset();
    RemoteServer* server = &ts_.server();
    auto http = HttpServer::Start(HostPort{"127.0.0.1", 0}, std::move(allow),
                                  [server] { return server->Status(); });
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
  }
  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", http_->port());
    client.set_read_timeout(5, 0);
    return client.Get(path.c_str());
  }

  TestServer ts_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(HttpTest, MetricsCountTrafficPerChannelAndSession) {
  auto a = ts_.Connect();
  auto b = ts_.Connect({}, 0, v5::kProtocolVersion);
  ASSERT_TRUE(a && b);
  for (uint8_t i = 0; i < 5; ++i) ASSERT_TRUE(a->Send(CanFrame::Classic(0x100, {i})).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(RecvFrame(*b).has_value());
  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& m = res->body;
  EXPECT_THAT(m, HasSubstr("canserver_build_info{version=\"" + std::string(kVersion) + "\"} 1"));
  EXPECT_THAT(m, HasSubstr("# TYPE canserver_bus_tx_frames_total counter"));
  EXPECT_THAT(m, HasSubstr("canserver_bus_tx_frames_total{channel=\"test\"} 5"));
  EXPECT_THAT(m, HasSubstr("canserver_clients{channel=\"test\"} 2"));
  // The bus load counts the frames clients sent: five 1-byte standard frames, 55 bits each.
  EXPECT_THAT(m, HasSubstr("canserver_bus_wire_bytes_total{channel=\"test\"} 34.375"));
  EXPECT_THAT(m,
              HasSubstr("canserver_bus_tx_refused_total{channel=\"test\",reason=\"timeout\"} 0"));
  EXPECT_THAT(m, HasSubstr(",protocol=\"v6\"} 5"));  // a's frames_from_client
  EXPECT_THAT(m, HasSubstr("canserver_delivery_latency_seconds_count{channel=\"test\"} 5"));
  EXPECT_THAT(
      m, HasSubstr("canserver_delivery_latency_seconds_bucket{channel=\"test\",le=\"+Inf\"} 5"));
  // Each of a's five frames waited between its decode and the bus write (counted before the
  // fan-out that delivered it to b).
  EXPECT_THAT(m, HasSubstr("# TYPE canserver_tx_wait_seconds histogram"));
  EXPECT_THAT(m, HasSubstr("canserver_tx_wait_seconds_count{channel=\"test\"} 5"));
  EXPECT_THAT(m, HasSubstr("canserver_tx_wait_seconds_bucket{channel=\"test\",le=\"+Inf\"} 5"));
  // A session's series disappear with it.
  b->Shutdown();
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts_.server().channel().Subscribers().size() == 1; }));
  res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, Not(HasSubstr("protocol=\"v5\"")));
  EXPECT_THAT(res->body, HasSubstr("canserver_clients{channel=\"test\"} 1"));
}

// #29: the bus load counts the frames on the wire both ways: received from the bus (other nodes,
// here injected) and written for clients; error frames (the controller's notices) not at all.
TEST_F(HttpTest, BusLoadCountsWireBitsOfReceivedAndClientSentFrames) {
  auto a = ts_.Connect();
  auto b = ts_.Connect();
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(a->Send(CanFrame::Classic(0x100, {1, 2, 3, 4, 5, 6, 7, 8})).ok());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ts_.bus().Inject(CanFrame::Classic(0x1ABCDEF0, {1, 2}, /*extended=*/true)));
  }
  for (int i = 0; i < 14; ++i) ASSERT_TRUE(RecvFrame(*b).has_value());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(RecvFrame(*a).has_value());
  // 10 standard 8-byte frames (47 + 64 bits) and 4 extended 2-byte ones (67 + 16 bits).
  EXPECT_EQ(ts_.server().channel().counters().bus_wire_bits.Get(), 10u * 111 + 4u * 83);
  auto res = Get("/api/status");
  ASSERT_TRUE(res);
  const nlohmann::json st = nlohmann::json::parse(res->body);
  EXPECT_EQ(st["channels"][0]["bus_wire_bits"], 10 * 111 + 4 * 83);
  EXPECT_EQ(st["channels"][0]["bus_off"], 0);
  // The page's latency column comes from the delivery histogram: 14 frames to b (and 4 to a).
  const auto& lat = st["channels"][0]["delivery_latency"];
  EXPECT_EQ(lat["count"], 18);
  EXPECT_EQ(lat["buckets"].size(), DeliveryLatency::kBuckets);
  EXPECT_TRUE(lat["bounds_us"].back().is_null());
  // The transmit wait: a's 10 frames, from their decode to the bus write.
  EXPECT_EQ(st["channels"][0]["tx_wait_latency"]["count"], 10);
}

// #29: the status page's traffic view: a table per id and the newest frames, summed up on the
// server from the moment someone asks; it is no client (the status and metrics leave it out).
TEST_F(HttpTest, TrafficViewSumsUpIdsAndKeepsTheNewestFrames) {
  auto first = Get("/api/traffic?channel=test");  // starts watching
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts_.server().channel().subscriber_count() == 1; }));
  for (uint8_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(ts_.bus().Inject(CanFrame::Classic(0x100, {i})));
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ts_.bus().Inject(CanFrame::Classic(0x1ABCDEF0, {0xAA}, /*extended=*/true)));
  }
  nlohmann::json tv;
  ASSERT_TRUE(TestServer::WaitUntil([&] {
    auto res = Get("/api/traffic?channel=test");
    if (!res || res->status != 200) return false;
    tv = nlohmann::json::parse(res->body);
    return tv["frames"] == 13;
  })) << tv.dump();
  ASSERT_EQ(tv["ids"].size(), 2u);
  EXPECT_EQ(tv["ids"][0]["id"], "100");
  EXPECT_EQ(tv["ids"][0]["count"], 10);
  EXPECT_EQ(tv["ids"][0]["last"], "100#09");
  EXPECT_GT(tv["ids"][0]["period_ms"].get<double>(), 9.0);  // injected 10 ms apart, or more
  EXPECT_EQ(tv["ids"][1]["id"], "1ABCDEF0");
  EXPECT_EQ(tv["ids"][1]["count"], 3);
  ASSERT_EQ(tv["trace"].size(), 13u);
  EXPECT_EQ(tv["trace"][12]["frame"], "1ABCDEF0#AA");
  EXPECT_EQ(tv["not_seen"], 0);
  // No client: not in the status, not in the metrics.
  auto st = Get("/api/status");
  ASSERT_TRUE(st);
  EXPECT_EQ(nlohmann::json::parse(st->body)["channels"][0]["clients"], 0);
  auto m = Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_THAT(m->body, HasSubstr("canserver_clients{channel=\"test\"} 0"));
  auto missing = Get("/api/traffic?channel=nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

// The graph's history is the server's, one point a second, kept without watching any frame.
TEST_F(HttpTest, TheBusLoadHistoryIsKeptWithoutWatchingTheChannel) {
  const absl::Time end = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < end) {
    ASSERT_TRUE(ts_.bus().Inject(CanFrame::Classic(0x100, {1, 2, 3, 4, 5, 6, 7, 8})));
    absl::SleepFor(absl::Milliseconds(10));
  }
  auto res = Get("/api/traffic?history=only&channel=test");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const nlohmann::json h = nlohmann::json::parse(res->body)["history"];
  ASSERT_GE(h.size(), 1u) << res->body;
  EXPECT_GT(h.back()[1].get<double>(), 0) << "no wire bits per second";  // ~100 frames of 111 bits
  EXPECT_EQ(ts_.server().channel().subscriber_count(), 0u) << "the history subscribed the view";
}

TEST_F(HttpTest, StatusJsonNamesChannelsAndClients) {
  auto a = ts_.Connect({CanFilter{0x123, 0x7FF, false}});
  ASSERT_TRUE(a);
  auto res = Get("/api/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const nlohmann::json st = nlohmann::json::parse(res->body);
  ASSERT_EQ(st["channels"].size(), 1u);
  const auto& ch = st["channels"][0];
  EXPECT_EQ(ch["name"], "test");
  EXPECT_EQ(ch["clients"], 1);
  EXPECT_EQ(ch["sessions"][0]["protocol"], "v6");
  EXPECT_EQ(ch["sessions"][0]["filters"], "123:800007FF");
  EXPECT_EQ(ch["sessions"][0]["filters_readable"], "123:7FF standard");
  EXPECT_THAT(ch["sessions"][0]["peer"].get<std::string>(), HasSubstr("127.0.0.1:"));
  EXPECT_EQ(st["version"], kVersion);
}

TEST_F(HttpTest, StatusPageAndErrors) {
  auto res = Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("<title>canserver</title>"));
  EXPECT_THAT(res->body, HasSubstr("/api/status"));
  EXPECT_THAT(res->body, Not(HasSubstr("http://"))) << "no external assets";
  res = Get("/nosuch");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(HttpTest, AccessListAppliesToHttpAtAccept) {
  StartHttp(*AccessList::Parse({"10.0.0.0/8"}));
  auto res = Get("/metrics");
  EXPECT_FALSE(res) << "closed at accept, before a byte of the request is read";
  EXPECT_EQ(http_->refused(), 1u);
  StartHttp(*AccessList::Parse({"127.0.0.1"}));
  res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// Writes `bytes` to a fresh connection and returns what comes back before the server closes it
// (or 5 s pass).
std::string RawHttp(uint16_t port, const std::string& bytes, bool wait_for_close = true) {
  UniqueFd fd = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
  (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string got;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (!wait_for_close) break;
  }
  return got;
}

TEST_F(HttpTest, BadHttpGetsAnErrorOrClosureAndCanTrafficGoesOn) {
  auto a = ts_.Connect();
  auto b = ts_.Connect();
  ASSERT_TRUE(a && b);
  std::atomic<bool> stop{false};
  std::atomic<int> abuses{0};
  const uint16_t port = http_->port();
  std::thread abuser([&] {
    while (!stop) {
      // Oversized header; garbage; a request line that never ends (slow loris).
      RawHttp(port, "GET / HTTP/1.1\r\nX-Big: " + std::string(64 << 10, 'a') + "\r\n\r\n", false);
      RawHttp(port, std::string("\x16\x03\x01\x00\xff garbage\r\n\r\n"), false);
      UniqueFd loris = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
      (void)::send(loris.get(), "GET /met", 8, MSG_NOSIGNAL);
      ++abuses;
    }
  });
  constexpr int kFrames = 20000;
  std::atomic<int> got{0};
  std::thread sender([&] {
    for (int i = 0; i < kFrames; ++i) {
      // At most 2,000 frames ahead of the reader (its ring holds 8,192): on a loaded machine an
      // unpaced burst would overflow the test's own reader, which is not what is tested here.
      while (i - got.load() > 2000) absl::SleepFor(absl::Microseconds(100));
      ASSERT_TRUE(a->Send(CanFrame::Classic(0x200, {static_cast<uint8_t>(i)})).ok());
    }
  });
  while (got < kFrames) {
    auto f = RecvFrame(*b);
    if (!f) break;
    EXPECT_EQ(f->data[0], static_cast<uint8_t>(got.load()));
    ++got;
  }
  sender.join();
  stop = true;
  abuser.join();
  EXPECT_EQ(got.load(), kFrames) << "frames lost while HTTP was abused";
  EXPECT_GT(abuses.load(), 0);
  // The oversized header gets a 4xx (or a closed connection), never a 200.
  const std::string reply =
      RawHttp(port, "GET / HTTP/1.1\r\nX-Big: " + std::string(64 << 10, 'a') + "\r\n\r\n");
  EXPECT_THAT(reply, Not(HasSubstr("200 OK")));
  // A slow-loris connection is closed by the server within its read timeout.
  UniqueFd loris = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
  (void)::send(loris.get(), "GET /met", 8, MSG_NOSIGNAL);
  const absl::Time start = absl::Now();
  char c;
  pollfd p{loris.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  EXPECT_LE(::recv(loris.get(), &c, 1, 0), 0) << "closed, not answered";
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  // And the page still answers.
  auto res = Get("/api/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

int64_t RssKiB() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * ::sysconf(_SC_PAGESIZE) / 1024;
}

// #24: a million small headers (13 MB) took cpp-httplib's RSS from 16 to 148 MB, two parallel
// 4 M-header requests to 891 MB. A request whose headers do not fit kRequestMemory is answered
// 431 (or closed) while it is still being read.
TEST_F(HttpTest, AHeaderFloodGets431AndCostsNoMemory) {
  const uint16_t port = http_->port();
  ASSERT_TRUE(Get("/api/status"));  // everything a request needs is allocated once
  const int64_t before = RssKiB();
  auto flood = [port] {
    UniqueFd fd = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
    std::string chunk = "GET /api/status HTTP/1.1\r\nHost: x\r\n";
    std::string reply;
    for (int i = 0; i < 1'000'000 && reply.empty(); i += 1000) {
      std::string headers;
      for (int k = 0; k < 1000; ++k) absl::StrAppend(&headers, "X-", i + k, ": y\r\n");
      chunk += headers;
      if (::send(fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;  // closed
      chunk.clear();
      char buf[512];
      const ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) reply.assign(buf, static_cast<size_t>(n));
    }
    pollfd p{fd.get(), POLLIN, 0};
    if (reply.empty() && ::poll(&p, 1, 5000) == 1) {
      char buf[512];
      const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n > 0) reply.assign(buf, static_cast<size_t>(n));
    }
    return reply;
  };
  std::string replies[2];
  std::thread second([&] { replies[1] = flood(); });
  replies[0] = flood();
  second.join();
  for (const std::string& r : replies) {
    // 431, or (when the server closed first and the reset took the reply with it) nothing.
    if (!r.empty()) {
      EXPECT_THAT(r, HasSubstr(" 431 ")) << r.substr(0, 200);
    }
  }
  std::printf("two floods of a million headers: replies '%s' / '%s', RSS %+lld KiB\n",
              replies[0].substr(0, 12).c_str(), replies[1].substr(0, 12).c_str(),
              static_cast<long long>(RssKiB() - before));
  if (testing::kRssMeaningful) {
    EXPECT_LE(RssKiB() - before, 1024) << "RSS grew from " << before << " KiB";
  }
  auto res = Get("/api/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// #24: 200 sockets sending one header byte every 1.5 s silenced /api/status for a minute
// (cpp-httplib's two workers each held by one). From another host (127.0.0.2) they take at most
// kMaxPerAddress connections, and those hold no worker: every probe is answered within 1 s.
TEST_F(HttpTest, SlowlorisFromAnotherHostDoesNotSilenceTheStatus) {
  const uint16_t port = http_->port();
  std::vector<UniqueFd> loris;
  for (int i = 0; i < 200; ++i) {
    UniqueFd fd = ConnectFrom("127.0.0.2", port);
    if (!fd.valid()) GTEST_SKIP() << "cannot bind 127.0.0.2 here";
    loris.push_back(std::move(fd));
  }
  int answered = 0;
  absl::Duration slowest;
  const absl::Time end = absl::Now() + absl::Seconds(6);
  for (int round = 0; absl::Now() < end; ++round) {
    for (UniqueFd& fd : loris) {
      (void)::send(fd.get(), round == 0 ? "G" : "E", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    for (int probe = 0; probe < 3; ++probe) {
      const absl::Time start = absl::Now();
      auto res = Get("/api/status");
      ASSERT_TRUE(res) << "probe " << answered << " not answered";
      EXPECT_EQ(res->status, 200);
      EXPECT_LT(absl::Now() - start, absl::Seconds(1));
      slowest = std::max(slowest, absl::Now() - start);
      ++answered;
      absl::SleepFor(absl::Milliseconds(500));
    }
  }
  std::printf("200 slowloris sockets: %d probes answered, the slowest in %s; %llu cut off\n",
              answered, absl::FormatDuration(slowest).c_str(),
              static_cast<unsigned long long>(http_->cut_off()));
  EXPECT_GE(answered, 9);
  EXPECT_GT(http_->cut_off(), 0u) << "the slow requests that were let in were cut off";
}

}  // namespace
}  // namespace canserver
