// TCP helpers for the server and the client library. Errors name the call and the address,
// e.g. "bind(0.0.0.0:54701): Address already in use".
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "io/unique_fd.h"

namespace canserver {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// "host", "host:port", "[v6addr]:port" or ":port". A missing port is `default_port`.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, uint16_t default_port);

// A non-blocking listening socket bound to host:port (port 0: any free port). `rcvbuf` > 0 sets
// SO_RCVBUF before listen(), so accepted sockets inherit it and their handshake already offers
// the window it allows (tcp(7): set after accept, the peer has seen a larger window and sized
// its segments to half of it, and a window smaller than one segment waits for TCP's persist
// timer). `sndbuf` > 0 fixes SO_SNDBUF the same way (no autotuning to megabytes per client).
absl::StatusOr<UniqueFd> ListenTcp(const HostPort& address, int backlog = 512, int rcvbuf = 0,
                                   int sndbuf = 0);
// The local port of a bound socket.
uint16_t LocalPort(int fd);
// "1.2.3.4:5678" for the peer of a connected socket.
std::string PeerName(int fd);
// The peer's address alone ("1.2.3.4", "fd00::1"; an IPv4-mapped IPv6 address as IPv4).
std::string PeerAddress(int fd);

// A blocking TCP connection with TCP_NODELAY set, or an error naming the address.
absl::StatusOr<UniqueFd> ConnectTcp(const HostPort& address, absl::Duration timeout);

absl::Status SetNonBlocking(int fd);
// SO_LINGER 0: close() resets the connection and frees its buffers at once, instead of leaving
// an orphaned socket that holds unsent data (up to its send buffer) while a peer that never
// reads keeps its window shut.
void ResetOnClose(int fd);
absl::Status SetNoDelay(int fd);
// Finds a peer that vanished without a word (cable pulled, host powered off, a black-holed
// route) within about `dead_after` instead of never: keepalive probes from dead_after/2 of
// silence, 3 of them dead_after/6 apart. Keepalive only probes an idle connection; with
// `unacked_limit` > 0, data (or a shut window) unacknowledged for that long also ends it
// (TCP_USER_TIMEOUT; Linux applies it to a zero window too, so a peer that is alive but not
// reading is cut as well: only for a server that disconnects such clients anyway).
// `dead_after` zero or less: the kernel's defaults (keepalive off).
absl::Status SetKeepalive(int fd, absl::Duration dead_after,
                          absl::Duration unacked_limit = absl::ZeroDuration());
// The keepalive our clients (RemoteBus, SocketcandBus) use: a server that vanished is noticed
// within this.
inline constexpr absl::Duration kClientKeepalive = absl::Seconds(10);

}  // namespace canserver
