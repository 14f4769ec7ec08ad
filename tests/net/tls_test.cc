// TLS on the v5/v6 port (net/tls.h) through the C++ client (RemoteBus), with certificates made by
// the openssl command line (tests/tls/make_certs.sh): frames flow both ways and the certificate's
// name decides the role; plain text and untrusted servers are refused, each with a message that
// says why; the CAN thread's direct writes stay on only where the kernel encrypts (kTLS).
#include "net/tls.h"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/access_rules.h"
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
