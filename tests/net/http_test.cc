// --http: /metrics, /api/status and the status page of a server on the virtual bus, seen by an
// HTTP client as scrapers and browsers see them; bad HTTP input never disturbs CAN traffic.
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
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
  EXPECT_THAT(m,
              HasSubstr("canserver_bus_tx_refused_total{channel=\"test\",reason=\"timeout\"} 0"));
  EXPECT_THAT(m, HasSubstr(",protocol=\"v6\"} 5"));  // a's frames_from_client
  EXPECT_THAT(m, HasSubstr("canserver_delivery_latency_seconds_count{channel=\"test\"} 5"));
  EXPECT_THAT(
      m, HasSubstr("canserver_delivery_latency_seconds_bucket{channel=\"test\",le=\"+Inf\"} 5"));
  // A session's series disappear with it.
  b->Shutdown();
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return ts_.server().channel().Subscribers().size() == 1; }));
  res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, Not(HasSubstr("protocol=\"v5\"")));
  EXPECT_THAT(res->body, HasSubstr("canserver_clients{channel=\"test\"} 1"));
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

TEST_F(HttpTest, AccessListAppliesToHttp) {
  StartHttp(*AccessList::Parse({"10.0.0.0/8"}));
  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
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

}  // namespace
}  // namespace canserver
