// A canserver on the virtual bus and loopback TCP, for tests: started in SetUp, shut down in
// TearDown, with helpers for library clients and raw-socket clients.
#pragma once

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/v5_codec.h"
#include "gtest/gtest.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"
#include "net/socket_util.h"

namespace canserver::testing {

// Sanitizer builds run several times slower, so timing bounds that hold natively with margin
// are widened there (never dropped).
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// RSS says nothing about our memory under the sanitizers: TSan's shadow memory and history grow
// with every access, and ASan keeps freed blocks in a quarantine (up to 256 MiB) instead of
// reusing them, so churn shows as growth. The plain build checks RSS; ASan's leak checker covers
// leaks in its own build.
constexpr bool kRssMeaningful = !kSanitized;

// canserver in-process on virtual buses called `names` (channel i on its own free port; the
// socketcand listener too when options ask for one), for tests that span channels. Stopped and
// joined when this goes away; `server` is null if it did not start (the failure is reported).
class ServedBuses {
 public:
  ServedBuses(const std::vector<std::string>& names, ServerOptions options) {
    std::vector<ServedChannel> channels;
    for (const std::string& name : names) {
      buses.push_back(*VirtualBus::Create(name));
      channels.push_back({buses.back(), 0});
    }
    options.host = "127.0.0.1";
    options.port = 0;
    auto created = RemoteServer::Create(options, std::move(channels));
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return;
    server = *std::move(created);
    thread_ = std::thread([this] { EXPECT_TRUE(server->ServeForever().ok()); });
  }
  ~ServedBuses() {
    if (!thread_.joinable()) return;
    server->Shutdown();
    thread_.join();
  }

  std::vector<std::shared_ptr<VirtualBus>> buses;
  std::unique_ptr<RemoteServer> server;

 private:
  std::thread thread_;
};

class TestServer {
 public:
  // On a virtual bus named "test", or on `backend` when given. On a free port, unless `options`
  // names another than the default (a restart on the same port).
  explicit TestServer(ServerOptions options = {}, bool error_frames = false,
                      std::shared_ptr<CanBackend> backend = nullptr) {
    options.host = "127.0.0.1";
    if (options.port == ServerOptions{}.port) options.port = 0;
    if (backend == nullptr) {
      bus_ = *VirtualBus::Create("test", 1 << 20);
      backend = bus_;
    }
    auto server = RemoteServer::Create(options, backend, error_frames);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    thread_ = std::thread([this] { EXPECT_TRUE(server_->ServeForever().ok()); });
  }
  ~TestServer() { Stop(); }

  void Stop() {
    if (!thread_.joinable()) return;
    server_->Shutdown();
    thread_.join();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  RemoteServer& server() { return *server_; }
  VirtualBus& bus() { return *bus_; }  // virtual backend only

  std::unique_ptr<RemoteBus> Connect(std::vector<CanFilter> filters = {}, int32_t bitrate = 0,
                                     uint8_t version = v5::kProtocolVersionFd) {
    RemoteBusOptions opts;
    opts.channel = address();
    opts.filters = std::move(filters);
    opts.bitrate = bitrate;
    opts.protocol_version = version;
    auto bus = RemoteBus::Connect(opts);
    EXPECT_TRUE(bus.ok()) << bus.status();
    if (!bus.ok()) return nullptr;
    WaitUntil([&] { return server_->channel().subscriber_count() >= subscribed_ + 1; });
    ++subscribed_;
    return *std::move(bus);
  }

  // A plain TCP connection that has sent nothing yet.
  UniqueFd ConnectRaw() {
    auto fd = ConnectTcp(HostPort{"127.0.0.1", server_->port()}, absl::Seconds(5));
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? *std::move(fd) : UniqueFd();
  }

  template <typename Pred>
  static bool WaitUntil(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!pred()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }

  // Forget subscribers that went away (for Connect's wait).
  void Forget(size_t n) { subscribed_ -= n; }

 private:
  std::shared_ptr<VirtualBus> bus_;
  std::unique_ptr<RemoteServer> server_;
  std::thread thread_;
  size_t subscribed_ = 0;
};

// The next frame from `bus` within `timeout`; nullopt (and a failure on errors) otherwise.
inline std::optional<CanFrame> RecvFrame(RemoteBus& bus,
                                         absl::Duration timeout = absl::Seconds(5)) {
  auto got = bus.Recv(timeout);
  EXPECT_TRUE(got.ok()) << got.status();
  return got.ok() ? *got : std::nullopt;
}

// A TCP connection from `source` to 127.0.0.1:`port`: another loopback address is another host
// to the server's per-address limits (Linux answers for all of 127.0.0.0/8). Invalid if the
// source cannot be bound.
inline UniqueFd ConnectFrom(const char* source, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &a.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

inline void SendAll(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Reads until EOF (or 10 s) and decodes every event.
inline std::vector<v5::Event> ReadEventsUntilClosed(int fd) {
  v5::StreamDecoder dec;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    dec.Append(absl::string_view(buf, static_cast<size_t>(n)));
  }
  std::vector<v5::Event> events;
  while (true) {
    auto next = dec.Next();
    if (!next.ok() || !next->has_value()) break;
    events.push_back(**next);
  }
  return events;
}

inline std::string Encode(std::initializer_list<v5::Event> events) {
  std::string out;
  for (const v5::Event& e : events) EXPECT_TRUE(v5::Encode(e, &out).ok());
  return out;
}

// A frame whose payload carries a 32-bit sequence number.
inline CanFrame SeqFrame(uint32_t id, uint32_t seq, bool extended = false) {
  return CanFrame::Classic(id,
                           {static_cast<uint8_t>(seq >> 24), static_cast<uint8_t>(seq >> 16),
                            static_cast<uint8_t>(seq >> 8), static_cast<uint8_t>(seq)},
                           extended);
}
inline uint32_t SeqOf(const CanFrame& f) {
  return (uint32_t{f.data[0]} << 24) | (uint32_t{f.data[1]} << 16) | (uint32_t{f.data[2]} << 8) |
         f.data[3];
}

}  // namespace canserver::testing
