#include "net/http_server.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/thread_util.h"

namespace canserver {
namespace {

// With client certificates asked for (--tls-ca): why this request may not be served, or "". A
// certificate that is there must verify against the CA; none at all is refused only under
// --tls-client-cert required. libmicrohttpd asks GnuTLS for the certificate but leaves the
// verdict to the application.
std::string ClientCertificateRefusal(MHD_Connection* c, const std::optional<TlsServerFiles>& tls) {
  if (!tls.has_value() || tls->ca.empty() || tls->client_certs == ClientCerts::kNone) return "";
  const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return "no TLS session";
  auto session = static_cast<gnutls_session_t>(info->tls_session);
  unsigned int count = 0;
  if (gnutls_certificate_get_peers(session, &count) == nullptr || count == 0) {
    return tls->client_certs == ClientCerts::kRequired
               ? "this port requires a client certificate signed by the CA of canserver "
                 "--tls-ca (--tls-client-cert required)"
               : "";
  }
  unsigned int status = 0;
  if (gnutls_certificate_verify_peers2(session, &status) < 0) {
    return "the client certificate could not be verified";
  }
  if (status == 0) return "";
  gnutls_datum_t text{};
  std::string why = "the client certificate is not valid";
  if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
    why = absl::StrCat("the client certificate is not valid: ",
                       std::string(reinterpret_cast<const char*>(text.data), text.size));
    gnutls_free(text.data);
  }
  return why;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::NotFoundError(absl::StrFormat("--http with TLS: cannot read %s '%s'", what, path));
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--http with TLS: %s '%s' is empty or missing", what, path));
  }
  return text;
}

}  // namespace

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
    if (const std::string refused = ClientCertificateRefusal(c, self->tls_); !refused.empty()) {
      return Reply(c, MHD_HTTP_FORBIDDEN, "HTTP 403: " + refused + "\n", "text/plain");
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
    if (path == "/api/traffic") {
      const char* name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "channel");
      const char* only = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "history");
      std::optional<std::string> traffic =
          RenderTrafficJson(self->status_(), name != nullptr ? name : "",
                            only != nullptr && std::string(only) == "only");
      if (!traffic.has_value()) {
        return Reply(c, MHD_HTTP_NOT_FOUND, "HTTP 404: no such channel\n", "text/plain");
      }
      return Reply(c, MHD_HTTP_OK, *traffic, "application/json", true);
    }
    if (path == "/") return Reply(c, MHD_HTTP_OK, StatusPageHtml(), "text/html; charset=utf-8");
    return Reply(c, MHD_HTTP_NOT_FOUND,
                 "HTTP 404: canserver serves /, /metrics, /api/status and /api/traffic\n",
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

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HostPort& address,
                                                              AccessList allow,
                                                              std::function<ServerStatus()> status,
                                                              std::optional<TlsServerFiles> tls) {
  auto http = std::unique_ptr<HttpServer>(new HttpServer());
  http->allow_ = std::move(allow);
  http->status_ = std::move(status);
  http->tls_ = std::move(tls);
  if (http->tls_.has_value()) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      return absl::UnimplementedError(
          "--http with --tls: this libmicrohttpd was built without TLS (GnuTLS)");
    }
    RETURN_IF_ERROR(http->LoadTls());
  }
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
  RETURN_IF_ERROR(http->StartDaemon());
  http->thread_ = std::thread([self = http.get()] { self->Run(); });
  CS_LOG(kInfo, "http: status page, /metrics and /api/status on %s%s",
         HostPort{bind.host, http->port_}.ToString(),
         !http->tls_.has_value()  ? ""
         : http->tls_->ca.empty() ? " (HTTPS)"
         : http->tls_->client_certs == ClientCerts::kRequired
             ? " (HTTPS, client certificate required)"
             : " (HTTPS, client certificates verified where given)");
  return http;
}

absl::Status HttpServer::LoadTls() {
  ASSIGN_OR_RETURN(cert_pem_, ReadPem(tls_->cert, "--tls-cert"));
  ASSIGN_OR_RETURN(key_pem_, ReadPem(tls_->key, "--tls-key"));
  ca_pem_.clear();
  if (!tls_->ca.empty() && tls_->client_certs != ClientCerts::kNone) {
    ASSIGN_OR_RETURN(ca_pem_, ReadPem(tls_->ca, "--tls-ca"));
  }
  return absl::OkStatus();
}

absl::Status HttpServer::StartDaemon() {
  const unsigned idle = static_cast<unsigned>(absl::ToInt64Seconds(kIdleTimeout));
  // TLS options only with TLS (MHD_OPTION_ARRAY ends at the first MHD_OPTION_END).
  MHD_OptionItem tls_options[] = {
      {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(cert_pem_.c_str())},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(key_pem_.c_str())},
      {MHD_OPTION_HTTPS_PRIORITIES, 0,
       const_cast<char*>("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2")},
      {ca_pem_.empty() ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_TRUST, 0,
       const_cast<char*>(ca_pem_.c_str())},
      {MHD_OPTION_END, 0, nullptr},
  };
  MHD_OptionItem no_options[] = {{MHD_OPTION_END, 0, nullptr}};
  const bool tls = tls_.has_value();
  daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0), 0, &HttpCallbacks::Accept, this,
      &HttpCallbacks::Handle, this,
      // First, so that libmicrohttpd's own messages about the options below come here too.
      MHD_OPTION_EXTERNAL_LOGGER, &HttpCallbacks::Log, nullptr,  //
      MHD_OPTION_LISTEN_SOCKET, listener_.get(),                 //
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,              //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxPerAddress, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      kRequestMemory,                       //
      MHD_OPTION_CONNECTION_TIMEOUT, idle,  //
      MHD_OPTION_NOTIFY_CONNECTION, &HttpCallbacks::Notify, this, MHD_OPTION_NOTIFY_COMPLETED,
      &HttpCallbacks::Completed, this, MHD_OPTION_URI_LOG_CALLBACK, &HttpCallbacks::RequestLine,
      this, MHD_OPTION_ARRAY, tls ? tls_options : no_options, MHD_OPTION_END);
  if (daemon_ == nullptr) {
    return absl::InternalError(tls ? "--http: libmicrohttpd did not start with the TLS "
                                     "certificate and key (see the log line above)"
                                   : "--http: libmicrohttpd did not start");
  }
  return absl::OkStatus();
}

absl::Status HttpServer::Reload() {
  if (!tls_.has_value()) return absl::OkStatus();
  std::array<std::string, 3> files;
  ASSIGN_OR_RETURN(files[0], ReadPem(tls_->cert, "--tls-cert"));
  ASSIGN_OR_RETURN(files[1], ReadPem(tls_->key, "--tls-key"));
  if (!tls_->ca.empty() && tls_->client_certs != ClientCerts::kNone) {
    ASSIGN_OR_RETURN(files[2], ReadPem(tls_->ca, "--tls-ca"));
  }
  std::lock_guard lock(reload_mu_);
  reloaded_ = std::move(files);
  return absl::OkStatus();
}

void HttpServer::Run() {
  NameThisThread("http");
  BlockSigpipeInThisThread();  // GnuTLS writes a connection the client reset: EPIPE, not death
  while (!stop_.load(std::memory_order_relaxed)) {
    (void)MHD_run_wait(daemon_, 200);
    EnforceDeadline();
    std::optional<std::array<std::string, 3>> files;
    {
      std::lock_guard lock(reload_mu_);
      files.swap(reloaded_);
    }
    if (!files.has_value()) continue;
    // Restart on the same listening socket with the new files: quiesced, the daemon hands the
    // socket back instead of closing it. Its open connections close with it.
    std::array<std::string, 3> old = {cert_pem_, key_pem_, ca_pem_};
    (void)MHD_quiesce_daemon(daemon_);
    MHD_stop_daemon(daemon_);
    requests_.clear();
    cert_pem_ = (*files)[0];
    key_pem_ = (*files)[1];
    ca_pem_ = (*files)[2];
    if (absl::Status started = StartDaemon(); !started.ok()) {
      CS_LOG(kError, "http: the reloaded certificate did not start (%s); kept the old one",
             started.message());
      cert_pem_ = old[0];
      key_pem_ = old[1];
      ca_pem_ = old[2];
      if (!StartDaemon().ok()) {
        CS_LOG(kError, "http: could not restart; the HTTP port serves nothing until restarted");
        daemon_ = nullptr;
        return;
      }
    }
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
