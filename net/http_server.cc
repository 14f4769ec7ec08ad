#include "net/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>

#include "absl/strings/str_format.h"
#include "core/log.h"

namespace canserver {
namespace {

// cpp-httplib gives the peer as text; the access list wants a sockaddr.
bool PeerAllowed(const AccessList& allow, const std::string& peer) {
  if (allow.empty()) return true;
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, peer.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return allow.Allows(reinterpret_cast<const sockaddr*>(&v4));
  }
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET6, peer.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    return allow.Allows(reinterpret_cast<const sockaddr*>(&v6));
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HostPort& address, AccessList allow, std::function<ServerStatus()> status) {
  auto http = std::unique_ptr<HttpServer>(new HttpServer());
  http->server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *http->server_;
  // Two workers are plenty for a page and a scraper; a slow client holds one for at most 2 s.
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_read_timeout(2, 0);
  s.set_write_timeout(2, 0);
  s.set_keep_alive_timeout(5);
  s.set_payload_max_length(1024);
  s.set_pre_routing_handler(
      [allow = std::move(allow)](const httplib::Request& req, httplib::Response& res) {
        if (PeerAllowed(allow, req.remote_addr)) return httplib::Server::HandlerResponse::Unhandled;
        res.status = 403;
        res.set_content("forbidden: not in canserver's --allow list\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      });
  s.Get("/metrics", [status](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetrics(status()), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/api/status", [status](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(RenderStatusJson(status()), "application/json");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(StatusPageHtml(), "text/html; charset=utf-8");
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(
          absl::StrFormat("HTTP %d: canserver serves /, /metrics and /api/status\n", res.status),
          "text/plain");
    }
  });
  const std::string host = address.host.empty() ? "0.0.0.0" : address.host;
  if (address.port == 0) {
    const int port = s.bind_to_any_port(host);
    if (port < 0) return absl::UnavailableError(absl::StrFormat("--http: cannot bind %s", host));
    http->port_ = static_cast<uint16_t>(port);
  } else {
    if (!s.bind_to_port(host, address.port)) {
      return absl::UnavailableError(absl::StrFormat(
          "--http: cannot bind %s (in use, or a privileged port?)", address.ToString()));
    }
    http->port_ = address.port;
  }
  http->thread_ = std::thread([&s] { s.listen_after_bind(); });
  CS_LOG(kInfo, "http: status page, /metrics and /api/status on %s:%d", host, http->port_);
  return http;
}

HttpServer::~HttpServer() {
  // stop() only reaches a server that is listening: wait (briefly) for the thread to get there.
  for (int i = 0; i < 2000 && server_ && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace canserver
