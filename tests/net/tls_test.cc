// TLS on the v5/v6 port (net/tls.h) through the C++ client (RemoteBus), with certificates made by
// the openssl command line (tests/tls/make_certs.sh): frames flow both ways and the certificate's
// name decides the role; plain text and untrusted servers are refused, each with a message that
// says why; the CAN thread's direct writes stay on only where the kernel encrypts (kTLS).
#include "net/tls.h"

#include <httplib.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/access_rules.h"
#include "net/http_server.h"
#include "net/test_server.h"
#include "process_util.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using testing::TestServer;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir[] = "/tmp/canserver-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    certs_ = new std::string(dir);
    auto [out, rc] =
        testing::RunShell(absl::StrCat(CANSERVER_SOURCE_DIR, "/tests/tls/make_certs.sh ", dir));
    ASSERT_EQ(rc, 0) << out;
  }
  static void TearDownTestSuite() {
    (void)testing::RunShell("rm -rf " + *certs_);
    delete certs_;
  }
  static std::string Cert(const std::string& file) { return *certs_ + "/" + file; }

  static ServerOptions TlsOptions(bool plain_allowed = false) {
    ServerOptions options;
    options.tls = *TlsServer::Create({Cert("server.pem"), Cert("server.key"), Cert("ca.pem"),
                                      ClientCerts::kOptional, plain_allowed});
    options.access = *AccessRules::Parse({"flash=cert:flasher-1 transmit", "all=* monitor"});
    return options;
  }
  static absl::StatusOr<std::unique_ptr<RemoteBus>> Connect(const TestServer& server,
                                                            const std::string& client,
                                                            const std::string& ca = "ca.pem") {
    RemoteBusOptions opts;
    opts.channel = server.address();
    opts.tls.ca = Cert(ca);
    if (!client.empty()) {
      opts.tls.cert = Cert(client + ".pem");
      opts.tls.key = Cert(client + ".key");
    }
    return RemoteBus::Connect(opts);
  }

  static std::string* certs_;
};
std::string* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, FramesFlowAndTheCertificateDecidesTheRole) {
  TestServer server(TlsOptions());
  auto flasher = Connect(server, "flasher");
  ASSERT_TRUE(flasher.ok()) << flasher.status();
  auto logger = Connect(server, "logger");
  ASSERT_TRUE(logger.ok()) << logger.status();
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return server.server().channel().subscriber_count() == 2; }));
  // Many frames, so TLS records carry batches and the reader meets records split across reads.
  std::vector<CanFrame> frames;
  for (uint32_t i = 0; i < 2000; ++i)
    frames.push_back(CanFrame::Classic(0x100 + i % 0x600, {1, 2}));
  ASSERT_TRUE((*flasher)->SendMany(frames).ok());
  for (uint32_t i = 0; i < 2000; ++i) {
    auto got = (*logger)->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value()) << i;
    ASSERT_EQ((*got)->id, 0x100 + i % 0x600) << i;
  }
  // Bus → the TLS clients: the logger's session, reading, the flasher's own frames come back
  // to nobody else; frames from the bus reach both.
  server.bus().Inject(CanFrame::Classic(0x7E8, {0x55}));
  for (auto* bus : {flasher->get(), logger->get()}) {
    auto got = bus->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->id, 0x7E8u);
  }
  ASSERT_TRUE((*logger)->Send(CanFrame::Classic(0x123, {})).ok());
  auto refused = (*logger)->Recv(absl::Seconds(5));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("role monitor, matched rule 'all'"));
}

TEST_F(TlsTest, PlainTextOnATlsOnlyPortIsToldTheFix) {
  TestServer server(TlsOptions());
  RemoteBusOptions opts;
  opts.channel = server.address();
  auto bus = RemoteBus::Connect(opts);
  ASSERT_FALSE(bus.ok());
  EXPECT_THAT(bus.status().message(), HasSubstr("accepts TLS connections only (--tls required)"));
  EXPECT_EQ(server.server().Status().refused.back().first, "tls");
  EXPECT_EQ(server.server().Status().refused.back().second, 1u);
}

TEST_F(TlsTest, OptionalTlsServesPlainAndTlsClientsOnOnePort) {
  TestServer server(TlsOptions(/*plain_allowed=*/true));
  RemoteBusOptions plain;
  plain.channel = server.address();
  auto a = RemoteBus::Connect(plain);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = Connect(server, "flasher");
  ASSERT_TRUE(b.ok()) << b.status();
}

TEST_F(TlsTest, AServerNotSignedByTheGivenCaIsRefusedBeforeAnythingIsSent) {
  TestServer server(TlsOptions());
  auto bus = Connect(server, "flasher", "other-ca.pem");
  ASSERT_FALSE(bus.ok());
  EXPECT_THAT(bus.status().message(), HasSubstr("TLS handshake failed: certificate verify failed"));
  EXPECT_EQ(server.server().channel().subscriber_count(), 0u);
}

TEST_F(TlsTest, AClientCertificateFromAnotherCaIsRefusedWithTheServersReason) {
  TestServer server(TlsOptions());
  auto bus = Connect(server, "stranger");
  ASSERT_FALSE(bus.ok());
  EXPECT_THAT(bus.status().message(), HasSubstr("unknown ca"));
}

TEST_F(TlsTest, WritingToAServerThatWentAwayIsAnErrorNotSigpipe) {
  // OpenSSL writes with write(): without SigpipeGuard the write after the server's reset raised
  // SIGPIPE, which kills a program that keeps the default (canremote; this test binary).
  ASSERT_EQ(std::signal(SIGPIPE, SIG_DFL), SIG_DFL);
  auto server = std::make_unique<TestServer>(TlsOptions());
  auto bus = Connect(*server, "logger");
  ASSERT_TRUE(bus.ok()) << bus.status();
  server.reset();
  absl::Status sent;
  for (int i = 0; i < 200 && sent.ok(); ++i) {
    sent = (*bus)->Send(CanFrame::Classic(0x123, {1}));
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_FALSE(sent.ok());
}

TEST_F(TlsTest, TheHttpPortServesHttpsAndChecksClientCertificates) {
  // cpp-httplib's SSLClient writes with SSL_write(), which raises SIGPIPE when a connection ends
  // under it (the reload below); the server side has it blocked (HttpServer's thread).
  struct IgnoreSigpipe {
    IgnoreSigpipe() { old = std::signal(SIGPIPE, SIG_IGN); }
    ~IgnoreSigpipe() { std::signal(SIGPIPE, old); }
    void (*old)(int);
  } ignore;
  TestServer server;
  RemoteServer* s = &server.server();
  auto http = HttpServer::Start(
      HostPort{"127.0.0.1", 0}, AccessList(), [s] { return s->Status(); },
      TlsServerFiles{Cert("server.pem"), Cert("server.key"), Cert("ca.pem"), ClientCerts::kRequired,
                     false});
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  const auto get = [&](const std::string& client, const std::string& path) {
    auto c = client.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", port)
                            : std::make_unique<httplib::SSLClient>(
                                  "127.0.0.1", port, Cert(client + ".pem"), Cert(client + ".key"));
    c->set_ca_cert_path(Cert("ca.pem").c_str());
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(5, 0);
    return c->Get(path.c_str());
  };
  httplib::Result ok = get("logger", "/metrics");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 200);
  EXPECT_THAT(ok->body, HasSubstr("canserver_"));

  httplib::Result bare = get("", "/api/status");
  ASSERT_TRUE(bare) << httplib::to_string(bare.error());
  EXPECT_EQ(bare->status, 403);
  EXPECT_THAT(bare->body, HasSubstr("requires a client certificate signed by the CA of canserver "
                                    "--tls-ca"));
  httplib::Result stranger = get("stranger", "/");
  ASSERT_TRUE(stranger) << httplib::to_string(stranger.error());
  EXPECT_EQ(stranger->status, 403);
  EXPECT_THAT(stranger->body, HasSubstr("the client certificate is not valid"));

  httplib::Client plain("127.0.0.1", port);  // plain HTTP on the HTTPS port: no page
  plain.set_read_timeout(2, 0);
  httplib::Result p = plain.Get("/");
  EXPECT_FALSE(p && p->status == 200);

  // SIGHUP's reload restarts the daemon on the same port with the files read again.
  ASSERT_TRUE((*http)->Reload().ok());
  ASSERT_TRUE(TestServer::WaitUntil([&] {
    httplib::Result again = get("logger", "/metrics");
    return again && again->status == 200;
  }));
}

TEST_F(TlsTest, DirectWritesStayOnlyWhereTheKernelEncrypts) {
  // Here (no `tls` upper-layer protocol in this kernel) every write is SSL_write on the io thread:
  // frames still arrive, in order, with the direct path asked for.
  ServerOptions options = TlsOptions();
  options.direct_write = true;
  TestServer server(std::move(options));
  auto bus = Connect(server, "logger");
  ASSERT_TRUE(bus.ok()) << bus.status();
  ASSERT_TRUE(
      TestServer::WaitUntil([&] { return server.server().channel().subscriber_count() == 1; }));
  for (uint32_t i = 0; i < 300; ++i) {
    server.bus().Inject(CanFrame::Classic(i, {}));
    if (i % 50 == 0) absl::SleepFor(absl::Milliseconds(2));  // idle gaps: the direct path's case
  }
  for (uint32_t i = 0; i < 300; ++i) {
    auto got = (*bus)->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value()) << i;
    ASSERT_EQ((*got)->id, i);
  }
  std::ifstream ulp("/proc/sys/net/ipv4/tcp_available_ulp");
  const std::string ulps((std::istreambuf_iterator<char>(ulp)), std::istreambuf_iterator<char>());
  if (ulps.find("tls") == std::string::npos) {
    // SSL_write belongs to the io thread: the CAN thread never wrote this client's socket.
    EXPECT_EQ(server.server().channel().counters().direct_frames.Get(), 0u);
  }
}

}  // namespace
}  // namespace canserver
