// TLS for protocol v5/v6 connections (OpenSSL from Debian), server and client side.
//
// The server detects TLS per connection on the same port: a v5/v6 client's first byte is 0x01
// (a BusRequest's event id), a TLS ClientHello's is 0x16 (a handshake record). So a rig needs no
// second port or firewall rule, plain and TLS clients can share a port while a rig migrates
// (`--tls optional`), and a plain client on a `--tls required` port is refused in its own
// protocol (a RemoteException naming the fix) instead of meeting a TLS alert it cannot read.
//
// After the handshake, where the kernel offers it (Linux's `tls` upper-layer protocol, kTLS),
// OpenSSL hands the session keys to the kernel: application data is then plain send() calls on
// the socket, which keeps the server's fast paths (batched writes, the CAN thread's direct
// writes) one syscall per batch. Without kTLS every write goes through SSL_write on the io
// thread, and the CAN thread does not write directly to that client.
//
// Threads: TlsServer is thread-safe (Reload() from the signal thread, NewStream() from io
// threads). A TlsStream belongs to one thread at a time (its session's io thread, or a client's
// caller under its lock); with kernel_send(), other threads may send() on the socket directly.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace canserver {

// A TLS ClientHello starts with this byte (a handshake record); a v5/v6 BusRequest with 0x01.
inline constexpr uint8_t kTlsHandshakeRecord = 0x16;

enum class ClientCerts { kNone, kOptional, kRequired };

struct TlsServerFiles {
  std::string cert;  // PEM: the server's certificate (and chain)
  std::string key;   // PEM: its private key
  std::string ca;    // PEM: CAs that sign client certificates; "" = no client certificates
  ClientCerts client_certs = ClientCerts::kOptional;  // with a CA: asked for; required or not
  bool plain_allowed = false;  // --tls optional: plain-text clients too on the same port
};

class TlsStream {
 public:
  enum class Step { kDone, kWantRead, kWantWrite, kFailed };

  TlsStream(SSL* ssl, int fd);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Drives the handshake on a non-blocking socket. kFailed: `error` says why, in words a user can
  // act on ("certificate verify failed: unable to get local issuer certificate").
  Step Handshake(std::string* error);
  // Like recv(): bytes read, 0 at the end (close_notify or EOF), or -1 with errno (EAGAIN: try
  // again when the socket is readable; EPROTO: a TLS error, see last_error()).
  ssize_t Read(void* buf, size_t len);
  // Like send() on a non-blocking socket: bytes taken, or -1 with errno (EAGAIN, EPIPE, EPROTO).
  // After EAGAIN the next call must offer the same bytes first (OpenSSL's rule; the buffer may
  // move).
  ssize_t Write(const void* data, size_t len);
  // Decrypted bytes waiting in the stream (a record read in part): poll() does not see them.
  bool pending() const;
  // Sends close_notify if the connection is healthy (best effort, non-blocking).
  void Shutdown();

  // kTLS: the kernel encrypts what is sent, so plain send() on the socket carries application
  // data, from any thread that holds the socket (the CAN thread's direct writes).
  bool kernel_send() const { return kernel_send_; }
  bool kernel_receive() const { return kernel_receive_; }
  // The verified peer certificate's subject CN and subjectAltName DNS, email and URI entries;
  // empty without a verified certificate.
  const std::vector<std::string>& peer_names() const { return peer_names_; }
  // "TLS 1.3 TLS_AES_256_GCM_SHA384, kernel TLS send+receive, client certificate 'flasher-1'".
  std::string Describe() const;
  const std::string& last_error() const { return last_error_; }

 private:
  // Read's or Write's result when SSL_read/SSL_write moved nothing (n <= 0), as recv()/send()
  // give theirs: 0 at the end (reading), or -1 with errno EAGAIN, EPIPE or EPROTO.
  ssize_t Failed(int n, bool reading);

  SSL* ssl_;
  bool kernel_send_ = false;
  bool kernel_receive_ = false;
  bool broken_ = false;  // no close_notify after a fatal error
  std::vector<std::string> peer_names_;
  std::string last_error_;
};

class TlsServer {
 public:
  static absl::StatusOr<std::shared_ptr<TlsServer>> Create(TlsServerFiles files);
  ~TlsServer();

  // Reads the certificate, key and CA files again (a rotated certificate). Sessions already
  // open keep theirs; new connections get the new ones. On error the old ones stay. Thread-safe.
  absl::Status Reload();
  // A server-side stream for an accepted non-blocking socket. Thread-safe.
  std::unique_ptr<TlsStream> NewStream(int fd);

  bool plain_allowed() const { return files_.plain_allowed; }
  // The files it was created from (the HTTP port serves the same certificate).
  const TlsServerFiles& files() const { return files_; }
  // Handshakes that failed and plain-text clients refused on a --tls required port.
  void CountFailure() { failed_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // "TLS (and plain text) on the v5 port; client certificates required, CA ca.pem", for logs.
  std::string Describe() const;

 private:
  explicit TlsServer(TlsServerFiles files) : files_(std::move(files)) {}
  static absl::StatusOr<std::shared_ptr<SSL_CTX>> Load(const TlsServerFiles& files);

  const TlsServerFiles files_;
  std::mutex mu_;
  std::shared_ptr<SSL_CTX> ctx_;  // guarded by mu_
  std::atomic<uint64_t> failed_{0};
};

// The client side, for RemoteBus, canremote and canbench: a client that asked for TLS never
// falls back to plain text.
struct TlsClientFiles {
  std::string ca;    // PEM: the CA that signed the server's certificate ("": system CAs)
  std::string cert;  // PEM: this client's certificate, if the server asks for one
  std::string key;
  bool enabled() const { return !ca.empty() || !cert.empty(); }
};

// Connects TLS over the connected socket `fd` (blocking or not), verifying the server's
// certificate against `files.ca` and `host` (a name or an address). Blocks up to `timeout`.
// Blocks SIGPIPE in the calling thread for good, so TlsStream's writes there need not block and
// unblock it around each call (the server's io threads; a SIGPIPE left pending is harmless).
void BlockSigpipeInThisThread();

absl::StatusOr<std::unique_ptr<TlsStream>> TlsConnect(int fd, const TlsClientFiles& files,
                                                      absl::string_view host,
                                                      absl::Duration timeout);

}  // namespace canserver
