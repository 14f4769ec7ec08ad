#include "net/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "io/thread_util.h"

namespace canserver {

struct HttpCallbacks {
  static MHD_Result Accept(void* cls, const sockaddr* addr, socklen_t) {
    auto* self = static_cast<HttpServer*>(cls);
    if (self->allow_.empty() || self->allow_.Allows(addr)) return MHD_YES;
    self->refused_.fetch_add(1, std::memory_order_relaxed);
    char text[64] = "?";
    if (addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text,
                  sizeof text);
    } else if (addr->sa_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text,
                  sizeof text);
    }
    CS_LOG_LIMITED(kWarning, "http: refused %s: not in --allow %s", text, self->allow_.ToString());
    return MHD_NO;
  }

  static MHD_Result Reply(MHD_Connection* c, unsigned status, const std::string& body,
                          const char* type, bool no_store = false) {
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                      MHD_RESPMEM_MUST_COPY);
    if (r == nullptr) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (no_store) MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    const MHD_Result queued = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return queued;
  }

  static MHD_Result Handle(void* cls, MHD_Connection* c, const char* url, const char* method,
                           const char*, const char*, size_t* upload_size, void** request) {
    auto* self = static_cast<HttpServer*>(cls);
    static int kStarted;
    if (*request == nullptr) {  // headers complete; a body, if any, comes next
      *request = &kStarted;
      return MHD_YES;
    }
    if (*upload_size != 0) {  // nothing here takes a body: read and forget it
      *upload_size = 0;
      return MHD_YES;
    }
    const std::string path(url);
    if (std::string(method) != MHD_HTTP_METHOD_GET && std::string(method) != MHD_HTTP_METHOD_HEAD) {
      return Reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                   "HTTP 405: canserver's pages are read with GET\n", "text/plain");
    }
    if (path == "/metrics") {
      return Reply(c, MHD_HTTP_OK, RenderMetrics(self->status_()),
                   "text/plain; version=0.0.4; charset=utf-8");
    }
    if (path == "/api/status") {
      return Reply(c, MHD_HTTP_OK, RenderStatusJson(self->status_()), "application/json", true);
    }
    if (path == "/") return Reply(c, MHD_HTTP_OK, StatusPageHtml(), "text/html; charset=utf-8");
    return Reply(c, MHD_HTTP_NOT_FOUND, "HTTP 404: canserver serves /, /metrics and /api/status\n",
                 "text/plain");
  }

  static void Notify(void* cls, MHD_Connection* c, void**, MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<HttpServer*>(cls);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == nullptr) return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      self->requests_[info->connect_fd] = {absl::Now(), true, false, PeerName(info->connect_fd)};
    } else {
      self->requests_.erase(info->connect_fd);  // before the daemon closes the socket
    }
  }

  // A request line arrived (a keep-alive connection's next request begins).
  static void* RequestLine(void* cls, const char*, MHD_Connection* c) {
    Mark(cls, c, /*in_request=*/true);
    return nullptr;  // the access handler's per-request pointer starts out null
  }

  // A request was answered: the connection waits for its next one.
  static void Completed(void* cls, MHD_Connection* c, void**, MHD_RequestTerminationCode) {
    Mark(cls, c, /*in_request=*/false);
  }

  static void Mark(void* cls, MHD_Connection* c, bool in_request) {
    auto* self = static_cast<HttpServer*>(cls);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == nullptr) return;
    auto it = self->requests_.find(info->connect_fd);
    if (it == self->requests_.end()) return;
    it->second.since = absl::Now();
    it->second.served_one |= it->second.in_request && !in_request;
    it->second.in_request = in_request;
  }

  static void Log(void*, const char* format, va_list args) {
    char text[256];
    std::vsnprintf(text, sizeof text, format, args);
    std::string line(text);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    CS_LOG_LIMITED(kWarning, "http: %s", line);
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HostPort& address, AccessList allow, std::function<ServerStatus()> status) {
  auto http = std::unique_ptr<HttpServer>(new HttpServer());
  http->allow_ = std::move(allow);
  http->status_ = std::move(status);
  HostPort bind = address;
  if (bind.host.empty()) bind.host = "0.0.0.0";
  absl::StatusOr<UniqueFd> listener = ListenTcp(bind, 64);
  if (!listener.ok()) {
    return absl::Status(
        listener.status().code(),
        absl::StrCat("--http: ", listener.status().message(), " (in use, or a privileged port?)"));
  }
  http->port_ = LocalPort(listener->get());
  http->listener_ = *std::move(listener);
  const unsigned idle = static_cast<unsigned>(absl::ToInt64Seconds(kIdleTimeout));
  http->daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, &HttpCallbacks::Accept, http.get(),
      &HttpCallbacks::Handle, http.get(), MHD_OPTION_LISTEN_SOCKET, http->listener_.get(),  //
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,                                         //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxPerAddress, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      kRequestMemory,                       //
      MHD_OPTION_CONNECTION_TIMEOUT, idle,  //
      MHD_OPTION_NOTIFY_CONNECTION, &HttpCallbacks::Notify, http.get(), MHD_OPTION_NOTIFY_COMPLETED,
      &HttpCallbacks::Completed, http.get(), MHD_OPTION_URI_LOG_CALLBACK,
      &HttpCallbacks::RequestLine, http.get(), MHD_OPTION_EXTERNAL_LOGGER, &HttpCallbacks::Log,
      nullptr,  //
      MHD_OPTION_END);
  if (http->daemon_ == nullptr) return absl::InternalError("--http: libmicrohttpd did not start");
  http->thread_ = std::thread([self = http.get()] { self->Run(); });
  CS_LOG(kInfo, "http: status page, /metrics and /api/status on %s",
         HostPort{bind.host, http->port_}.ToString());
  return http;
}

void HttpServer::Run() {
  NameThisThread("http");
  while (!stop_.load(std::memory_order_relaxed)) {
    (void)MHD_run_wait(daemon_, 200);
    EnforceDeadline();
  }
}

void HttpServer::EnforceDeadline() {
  const absl::Time now = absl::Now();
  for (auto it = requests_.begin(); it != requests_.end();) {
    const Request& r = it->second;
    if (now - r.since < kRequestDeadline) {
      ++it;
      continue;
    }
    // The daemon sees the connection fail and closes it in its next run. A keep-alive connection
    // idle between requests goes quietly; one inside a request (or that never finished its
    // first) was too slow: counted and logged.
    if (r.in_request || !r.served_one) {
      cut_off_.fetch_add(1, std::memory_order_relaxed);
      CS_LOG_LIMITED(kWarning, "http: cut off %s: its request was not complete after %s", r.peer,
                     absl::FormatDuration(kRequestDeadline));
    }
    ::shutdown(it->first, SHUT_RDWR);
    it = requests_.erase(it);
  }
}

HttpServer::~HttpServer() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

}  // namespace canserver
