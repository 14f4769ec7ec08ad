// Beacon: socketcand's service discovery (doc/protocol.md, "Service discovery"): a UDP datagram
// to port 42000 every 2 s (the document asks for at most 3) naming the host, every URL the
// socketcand listener answers on and every channel served:
//
//   <CANBeacon name="rig-7" type="SocketCAN" description="canserver 0.2.0">
//     <URL>can://192.0.2.7:29536</URL>
//     <Bus name="can0"/><Bus name="can1"/>
//   </CANBeacon>
//
// Sent to the broadcast address of every IPv4 interface that has one (listening on 0.0.0.0), or
// of the listen address's interface, and to any --beacon-to address (unicast, e.g. a PC on another
// subnet, or 127.0.0.1 for a local test). Owned by RemoteServer's accept thread.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "io/unique_fd.h"
#include "net/socket_util.h"

namespace canserver {

class Beacon {
 public:
  // `listen_host`/`port`: the socketcand listener; `extra`: --beacon-to destinations.
  static absl::StatusOr<std::unique_ptr<Beacon>> Create(const std::string& listen_host,
                                                        uint16_t port,
                                                        std::vector<std::string> channels,
                                                        std::vector<HostPort> extra);
  // The datagram for a destination reached from `local` (its URL comes first).
  std::string Text(const std::string& local) const;
  // Sends one beacon to every destination; failures are logged once per destination.
  void Send();

 private:
  struct Destination {
    sockaddr_in to;
    std::string local;  // our address on the way there, for the first URL
    bool failed = false;
  };
  Beacon(UniqueFd fd, std::string listen_host, uint16_t port, std::vector<std::string> channels);

  UniqueFd fd_;
  const std::string listen_host_;
  const uint16_t port_;
  const std::vector<std::string> channels_;
  std::vector<std::string> addresses_;  // every local IPv4 address the listener answers on
  std::vector<Destination> destinations_;
  std::string hostname_;
};

}  // namespace canserver
