// ResumableSessions: the server's sessions that may outlive their connection (protocol v5/v6's
// ResumeRequest, docs/protocol.md "Resuming a session"), by token.
//
// A session that asked for a token is entered here by its io thread. When its connection
// breaks without a ConnectionClosed, the session stays (filters, periodic jobs, its ring
// filling) for --resume-grace; a new connection that presents the token as its first event, from
// the same identity, is handed to that session's io thread (Deliver), which gives the session
// the new socket. Claim() makes the hand-over exclusive: an entry claimed is neither expired nor
// claimed again until its io thread has re-attached it (Attached) or dropped the hand-over.
//
//   ResumableSessions sessions;
//   std::string token = sessions.Enter(7, {"10.0.0.5", ""}, deliver);
//   sessions.Detached(token, absl::Now() + absl::Seconds(10));
//   absl::StatusOr<ResumableSessions::Deliver> to = sessions.Claim(token, who, absl::Now());
//
// Thread-safe: every io thread calls it; one mutex, taken per event that enters, detaches,
// claims or ends a session (never per frame).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "io/unique_fd.h"
#include "net/tls.h"

namespace canserver {

// Who may resume a session: the same certificate where TLS names the client, else the same
// address (the token is the secret; the address keeps a token seen on the wire from working
// elsewhere).
struct ResumeIdentity {
  std::string address;      // "10.0.0.5"
  std::string certificate;  // the client certificate's first name; "" without one
  // Why `other` may not resume a session of this identity; "" if it may.
  std::string Mismatch(const ResumeIdentity& other) const;
};

// A new connection handed to the session it resumes: its socket, its TLS stream (null: plain),
// the bytes it sent after its ResumeRequest, and what the client said it had received.
struct Handoff {
  UniqueFd fd;
  std::unique_ptr<TlsStream> tls;
  std::string peer;       // "10.0.0.5:41236"
  std::string undecoded;  // bytes after the ResumeRequest
  uint64_t frames_received = 0;
};

class ResumableSessions {
 public:
  // Gives the hand-over to the session's io thread (thread-safe, does not block).
  using Deliver = std::function<void(Handoff)>;

  // Enters session `session`; returns its token (128 random bits in hex).
  std::string Enter(uint64_t session, ResumeIdentity who, Deliver deliver);
  // The session's connection broke: it is kept until `expires`.
  void Detached(absl::string_view token, absl::Time expires);
  // Its io thread gave it a connection again (or dropped a hand-over): claimable again.
  void Attached(absl::string_view token);
  // A new connection by `who` presents `token` at `now`: the session's Deliver, or why not (in
  // words for the client: no such session, its grace ran out, another identity, already being
  // resumed).
  absl::StatusOr<Deliver> Claim(absl::string_view token, const ResumeIdentity& who, absl::Time now);
  // The session's io thread, its grace over at `now`: removes the entry unless it was claimed
  // meanwhile; true if it was removed (the session ends).
  bool Expire(absl::string_view token, absl::Time now);
  // The session ended.
  void Remove(absl::string_view token);
  // Sessions entered, and of them those without a connection now.
  size_t size() const;
  size_t detached() const;

 private:
  struct Entry {
    uint64_t session = 0;
    ResumeIdentity who;
    Deliver deliver;
    absl::Time expires = absl::InfiniteFuture();  // InfiniteFuture: connected
    bool claimed = false;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
};

}  // namespace canserver
