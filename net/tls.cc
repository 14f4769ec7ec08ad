#include "net/tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace canserver {
namespace {

thread_local bool sigpipe_blocked_for_good = false;  // BlockSigpipeInThisThread() ran here

// OpenSSL writes with write(), not send(MSG_NOSIGNAL): a peer that reset the connection would
// raise SIGPIPE, whose default kills the process. While this lives, the thread has SIGPIPE
// blocked, and one that a write raised is taken back before the mask is restored; EPIPE is then
// what the caller sees. Nothing to do in a thread that blocks it for good (the server's io
// threads).
class SigpipeGuard {
 public:
  SigpipeGuard() {
    if (sigpipe_blocked_for_good) return;
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    active_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!active_) return;
    sigset_t pending;
    if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{};
      (void)sigtimedwait(&pipe_, nullptr, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
  bool active_ = false;
};

// OpenSSL's queued errors as one line, emptying the queue ("" when it was empty).
std::string DrainErrors() {
  std::vector<std::string> parts;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    // "error:0A000086:SSL routines::certificate verify failed" → the reason after the last ':'.
    const char* reason = std::strrchr(text, ':');
    parts.emplace_back(reason != nullptr && reason[1] != '\0' ? reason + 1 : text);
  }
  return absl::StrJoin(parts, "; ");
}

absl::Status OpenSslError(absl::string_view what) {
  const std::string why = DrainErrors();
  return absl::InvalidArgumentError(
      absl::StrCat(what, why.empty() ? "" : ": ", why.empty() ? "" : why));
}

// Options both sides share: TLS 1.2 at least, kTLS where the kernel has it, writes that may be
// partial from a buffer that moves (the output buffer compacts), no renegotiation, and a peer
// that closes without close_notify read as an end (python's ssl does so).
void CommonOptions(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx,
                      SSL_OP_ENABLE_KTLS | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

std::vector<std::string> PeerNames(SSL* ssl) {
  std::vector<std::string> names;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return names;
  char cn[256];
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
    names.emplace_back(cn);
  }
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      const ASN1_IA5STRING* text = nullptr;
      if (name->type == GEN_DNS) text = name->d.dNSName;
      if (name->type == GEN_EMAIL) text = name->d.rfc822Name;
      if (name->type == GEN_URI) text = name->d.uniformResourceIdentifier;
      if (text == nullptr) continue;
      std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                        static_cast<size_t>(ASN1_STRING_length(text)));
      if (std::find(names.begin(), names.end(), value) == names.end()) names.push_back(value);
    }
    GENERAL_NAMES_free(sans);
  }
  return names;
}

}  // namespace

TlsStream::TlsStream(SSL* ssl, int fd) : ssl_(ssl) { SSL_set_fd(ssl_, fd); }

TlsStream::~TlsStream() { SSL_free(ssl_); }

TlsStream::Step TlsStream::Handshake(std::string* error) {
  ERR_clear_error();
  const SigpipeGuard guard;
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    kernel_send_ = BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0;
    kernel_receive_ = BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0;
    peer_names_ = PeerNames(ssl_);
    return Step::kDone;
  }
  const int code = SSL_get_error(ssl_, rc);
  if (code == SSL_ERROR_WANT_READ) return Step::kWantRead;
  if (code == SSL_ERROR_WANT_WRITE) return Step::kWantWrite;
  broken_ = true;
  std::string why = DrainErrors();
  if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK) {
    why = absl::StrCat(why.empty() ? "" : why + ": ", X509_verify_cert_error_string(verify));
  }
  if (why.empty()) {
    why = code == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                  : "the peer closed the connection";
  }
  *error = absl::StrCat("TLS handshake failed: ", why);
  last_error_ = *error;
  return Step::kFailed;
}

ssize_t TlsStream::Read(void* buf, size_t len) {
  ERR_clear_error();
  const int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
  return n > 0 ? n : Failed(n, /*reading=*/true);
}

ssize_t TlsStream::Write(const void* data, size_t len) {
  if (len == 0) return 0;
  ERR_clear_error();
  const SigpipeGuard guard;
  const int n = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
  return n > 0 ? n : Failed(n, /*reading=*/false);
}

ssize_t TlsStream::Failed(int n, bool reading) {
  const int error = SSL_get_error(ssl_, n);
  if (error == SSL_ERROR_ZERO_RETURN && reading) return 0;  // close_notify
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  broken_ = true;
  if (error == SSL_ERROR_SYSCALL) {  // the socket's own error, or an EOF without close_notify
    if (errno != 0) return -1;
    if (reading) return 0;
    errno = EPIPE;
    return -1;
  }
  last_error_ = DrainErrors();
  errno = EPROTO;
  return -1;
}

bool TlsStream::pending() const { return SSL_pending(ssl_) > 0; }

void TlsStream::Shutdown() {
  if (broken_ || !SSL_is_init_finished(ssl_)) return;
  ERR_clear_error();
  const SigpipeGuard guard;
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string TlsStream::Describe() const {
  std::string kernel = kernel_send_ && kernel_receive_ ? "kernel TLS send+receive"
                       : kernel_send_                  ? "kernel TLS send, userspace receive"
                       : kernel_receive_               ? "userspace send, kernel TLS receive"
                                                       : "userspace TLS (no kernel TLS)";
  std::string cert = peer_names_.empty() ? "no client certificate"
                                         : absl::StrFormat("client certificate '%s'",
                                                           absl::StrJoin(peer_names_, "', '"));
  return absl::StrFormat("%s %s, %s, %s", SSL_get_version(ssl_), SSL_get_cipher_name(ssl_), kernel,
                         cert);
}

absl::StatusOr<std::shared_ptr<TlsServer>> TlsServer::Create(TlsServerFiles files) {
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("TLS needs --tls-cert and --tls-key (PEM files)");
  }
  if (files.ca.empty() && files.client_certs == ClientCerts::kRequired) {
    return absl::InvalidArgumentError(
        "--tls-client-cert required needs --tls-ca: the CA that signs client certificates");
  }
  absl::StatusOr<std::shared_ptr<SSL_CTX>> ctx = Load(files);
  if (!ctx.ok()) return ctx.status();
  std::shared_ptr<TlsServer> server(new TlsServer(std::move(files)));
  server->ctx_ = *std::move(ctx);
  return server;
}

TlsServer::~TlsServer() = default;

absl::StatusOr<std::shared_ptr<SSL_CTX>> TlsServer::Load(const TlsServerFiles& files) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx == nullptr) return OpenSslError("SSL_CTX_new");
  CommonOptions(ctx.get());
  // No session tickets: resumption is not worth a secret to rotate, and with kTLS nothing but
  // application data should follow the handshake.
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1) {
    return OpenSslError(absl::StrFormat("--tls-cert %s", files.cert));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return OpenSslError(absl::StrFormat("--tls-key %s", files.key));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return OpenSslError(
        absl::StrFormat("--tls-key %s does not match --tls-cert %s", files.key, files.cert));
  }
  if (!files.ca.empty() && files.client_certs != ClientCerts::kNone) {
    if (SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr) != 1) {
      return OpenSslError(absl::StrFormat("--tls-ca %s", files.ca));
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str())) {
      SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    // The chain is checked for the client purpose (extendedKeyUsage clientAuth when present).
    SSL_CTX_set_verify(
        ctx.get(),
        SSL_VERIFY_PEER |
            (files.client_certs == ClientCerts::kRequired ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  }
  ERR_clear_error();
  return ctx;
}

absl::Status TlsServer::Reload() {
  absl::StatusOr<std::shared_ptr<SSL_CTX>> ctx = Load(files_);
  if (!ctx.ok()) return ctx.status();
  std::lock_guard<std::mutex> lock(mu_);
  ctx_ = *std::move(ctx);
  return absl::OkStatus();
}

std::unique_ptr<TlsStream> TlsServer::NewStream(int fd) {
  std::shared_ptr<SSL_CTX> ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ctx = ctx_;
  }
  SSL* ssl = SSL_new(ctx.get());  // holds its own reference to the context
  if (ssl == nullptr) return nullptr;
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsStream>(ssl, fd);
}

std::string TlsServer::Describe() const {
  std::string clients;
  if (files_.ca.empty() || files_.client_certs == ClientCerts::kNone) {
    clients = "no client certificates";
  } else {
    clients = absl::StrFormat(
        "client certificates %s, verified against %s",
        files_.client_certs == ClientCerts::kRequired ? "required" : "optional", files_.ca);
  }
  return absl::StrFormat("TLS%s on the v5/v6 ports (certificate %s; %s)",
                         files_.plain_allowed ? " and plain text" : " only", files_.cert, clients);
}

absl::StatusOr<std::unique_ptr<TlsStream>> TlsConnect(int fd, const TlsClientFiles& files,
                                                      absl::string_view host,
                                                      absl::Duration timeout) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  if (ctx == nullptr) return OpenSslError("SSL_CTX_new");
  CommonOptions(ctx.get());
  const int loaded = files.ca.empty()
                         ? SSL_CTX_set_default_verify_paths(ctx.get())
                         : SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr);
  if (loaded != 1) return OpenSslError(absl::StrFormat("--tls-ca %s", files.ca));
  if (!files.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1) {
      return OpenSslError(absl::StrFormat("--tls-cert %s", files.cert));
    }
    const std::string& key = files.key.empty() ? files.cert : files.key;
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return OpenSslError(absl::StrFormat("--tls-key %s", key));
    }
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx.get());
  if (ssl == nullptr) return OpenSslError("SSL_new");
  const std::string name(host);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
    // A name: SNI (SSL_set_tlsext_host_name, whose macro casts), and checked against the cert.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }
  SSL_set_connect_state(ssl);
  auto stream = std::make_unique<TlsStream>(ssl, fd);
  const int flags = ::fcntl(fd, F_GETFL);
  (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  const absl::Time deadline = absl::Now() + timeout;
  std::string error;
  for (;;) {
    const TlsStream::Step step = stream->Handshake(&error);
    if (step == TlsStream::Step::kDone) break;
    if (step == TlsStream::Step::kFailed) {
      (void)::fcntl(fd, F_SETFL, flags);
      return absl::UnavailableError(absl::StrFormat("%s (server %s)", error, name));
    }
    const absl::Duration left = deadline - absl::Now();
    pollfd p{fd, static_cast<short>(step == TlsStream::Step::kWantRead ? POLLIN : POLLOUT), 0};
    if (left <= absl::ZeroDuration() ||
        ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) == 0) {
      (void)::fcntl(fd, F_SETFL, flags);
      return absl::DeadlineExceededError(absl::StrFormat(
          "TLS handshake with %s: no answer within %s", name, absl::FormatDuration(timeout)));
    }
  }
  (void)::fcntl(fd, F_SETFL, flags);
  return stream;
}

void BlockSigpipeInThisThread() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &pipe, nullptr) == 0) sigpipe_blocked_for_good = true;
}

}  // namespace canserver
