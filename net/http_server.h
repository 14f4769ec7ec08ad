// HttpServer: canserver's HTTP endpoint for operators and scrapers (--http ADDR:PORT):
//   /metrics     Prometheus text exposition (server_status.h)
//   /api/status  the same as JSON, for scripts and the status page
//   /            the status page
// Everything else is 404; a peer outside --allow gets 403. Built on cpp-httplib (Debian's
// libcpp-httplib-dev): its own small thread pool, so a slow or hostile HTTP client never touches
// the io or CAN threads; headers are capped at 8 KiB, bodies at 1 KiB, and a connection that
// sends nothing for 2 s is closed.
//
// Thread-safety: Start and the destructor from one thread; `status` is called on the pool's
// threads and must be thread-safe (RemoteServer::Status is).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "net/access_list.h"
#include "net/server_status.h"
#include "net/socket_util.h"

namespace httplib {
class Server;
}

namespace canserver {

class HttpServer {
 public:
  // Binds `address` (port 0: any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HostPort& address,
                                                           AccessList allow,
                                                           std::function<ServerStatus()> status);
  ~HttpServer();

  uint16_t port() const { return port_; }

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace canserver
