// HttpServer: canserver's HTTP endpoint for operators and scrapers (--http ADDR:PORT):
//   /metrics     Prometheus text exposition (server_status.h)
//   /api/status  the same as JSON, for scripts and the status page
//   /api/traffic?channel=NAME  the status page's traffic view (net/traffic_view.h)
//   /            the status page
// Everything else is 404, other methods 405.
//
// Built on GNU libmicrohttpd (Debian's libmicrohttpd-dev), chosen over cpp-httplib because it was
// made for hostile clients (docs/reliability.md has the measurements): it is event driven, so a
// slow client holds a connection slot, never a worker; it checks --allow at accept; it caps
// connections (kMaxConnections), connections per address (kMaxPerAddress) and the memory of one
// request (kRequestMemory: a request whose headers do not fit gets 431), and closes a connection
// idle for kIdleTimeout. What it lacks, a whole-request deadline, is added here: a request not
// answered within kRequestDeadline of its first byte (a slowloris trickling a header byte a
// second) is cut off.
//
// HTTPS (canserver --tls with --http): the same server certificate as the v5/v6 ports, TLS 1.2+
// (GnuTLS inside libmicrohttpd); with --tls-ca, client certificates are asked for and verified
// against it, and with --tls-client-cert required a request without a valid one gets 403 naming
// the reason. Reload() re-reads the files (SIGHUP): the daemon is restarted on the same listening
// socket, so connections open at that moment are closed (scrapers reconnect).
//
// Thread-safety: Start and the destructor from one thread; Reload from any. One thread of its own
// runs the daemon; `status` is called on it and must be thread-safe (RemoteServer::Status is).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/unique_fd.h"
#include "net/access_list.h"
#include "net/server_status.h"
#include "net/socket_util.h"
#include "net/tls.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace canserver {

class HttpServer {
 public:
  static constexpr unsigned kMaxConnections = 64;
  static constexpr unsigned kMaxPerAddress = 8;
  static constexpr size_t kRequestMemory = 32 << 10;
  static constexpr absl::Duration kIdleTimeout = absl::Seconds(5);
  static constexpr absl::Duration kRequestDeadline = absl::Seconds(5);

  // Binds `address` (port 0: any free port) and starts serving; with `tls`, HTTPS only.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HostPort& address, AccessList allow, std::function<ServerStatus()> status,
      std::optional<TlsServerFiles> tls = std::nullopt);
  // Re-reads the TLS files; the daemon's thread restarts with them if they load. Returns the
  // error of files that do not (the old ones stay). No-op without TLS.
  absl::Status Reload();
  ~HttpServer();

  uint16_t port() const { return port_; }
  // Connections refused at accept (--allow, or a limit above) and requests cut off at the
  // deadline, so far. Thread-safe.
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  uint64_t cut_off() const { return cut_off_.load(std::memory_order_relaxed); }

 private:
  HttpServer() = default;
  void Run();
  // Reads the TLS files into memory (libmicrohttpd takes PEM text).
  absl::Status LoadTls();
  // Starts the daemon on listener_ with the loaded certificates.
  absl::Status StartDaemon();
  // The daemon's thread: cuts off requests older than kRequestDeadline.
  void EnforceDeadline();

  AccessList allow_;
  std::function<ServerStatus()> status_;
  UniqueFd listener_;
  MHD_Daemon* daemon_ = nullptr;
  std::optional<TlsServerFiles> tls_;
  std::string cert_pem_, key_pem_, ca_pem_;  // what the daemon serves; the daemon's thread's
  std::mutex reload_mu_;
  std::optional<std::array<std::string, 3>> reloaded_;  // under reload_mu_: for Run to take
  std::thread thread_;
  std::atomic<bool> stop_{false};
  uint16_t port_ = 0;
  // Connections by socket (the daemon's thread only): since when they are in their current
  // request, or idle after answering one.
  struct Request {
    absl::Time since;
    bool in_request = true;
    bool served_one = false;
    std::string peer;
  };
  std::map<int, Request> requests_;
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> cut_off_{0};

  friend struct HttpCallbacks;  // libmicrohttpd's callbacks (http_server.cc), the daemon's thread
};

}  // namespace canserver
