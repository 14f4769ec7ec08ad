#include "net/beacon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/socketcand_codec.h"
#include "core/status_macros.h"
#include "core/version.h"

namespace canserver {
namespace {

std::string Ip(const sockaddr_in& a) {
  char text[INET_ADDRSTRLEN] = "";
  ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
  return text;
}

// XML attribute text: the few characters XML reserves.
std::string Escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The source address the kernel picks to reach `to`.
std::string LocalAddressFor(const sockaddr_in& to) {
  UniqueFd probe(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (!probe.valid() ||
      ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 ||
      ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return "";
  }
  return Ip(local);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Beacon>> Beacon::Create(const std::string& listen_host,
                                                       uint16_t port,
                                                       std::vector<std::string> channels,
                                                       std::vector<HostPort> extra) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus("socket(UDP) for --beacon");
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_BROADCAST, &on, sizeof on) != 0) {
    return ErrnoStatus("setsockopt(SO_BROADCAST) for --beacon");
  }
  auto beacon =
      std::unique_ptr<Beacon>(new Beacon(std::move(fd), listen_host, port, std::move(channels)));
  const bool wildcard = listen_host.empty() || listen_host == "0.0.0.0" || listen_host == "::";
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return ErrnoStatus("getifaddrs for --beacon");
  for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP)) {
      continue;
    }
    const std::string ip = Ip(*reinterpret_cast<const sockaddr_in*>(i->ifa_addr));
    if (!wildcard && ip != listen_host) continue;
    // Loopback is no address for another machine; it is named only to a loopback destination
    // (as the first URL) or when it is all the listener has.
    if (wildcard && (i->ifa_flags & IFF_LOOPBACK)) continue;
    beacon->addresses_.push_back(ip);
    if ((i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr != nullptr) {
      sockaddr_in to = *reinterpret_cast<const sockaddr_in*>(i->ifa_broadaddr);
      to.sin_port = htons(socketcand::kBeaconPort);
      beacon->destinations_.push_back({to, ip});
    }
  }
  ::freeifaddrs(ifs);
  if (beacon->addresses_.empty())
    beacon->addresses_.push_back(wildcard ? "127.0.0.1" : listen_host);
  for (const HostPort& hp : extra) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(hp.port);
    if (::inet_pton(AF_INET, hp.host.c_str(), &to.sin_addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--beacon-to %s: an IPv4 address is needed", hp.ToString()));
    }
    beacon->destinations_.push_back({to, wildcard ? LocalAddressFor(to) : listen_host});
  }
  if (beacon->destinations_.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "--beacon: no interface with a broadcast address for %s; name one with --beacon-to",
        listen_host));
  }
  return beacon;
}

Beacon::Beacon(UniqueFd fd, std::string listen_host, uint16_t port,
               std::vector<std::string> channels)
    : fd_(std::move(fd)),
      listen_host_(std::move(listen_host)),
      port_(port),
      channels_(std::move(channels)) {
  char name[256] = "canserver";
  if (::gethostname(name, sizeof name - 1) != 0) std::strcpy(name, "canserver");
  hostname_ = name;
}

std::string Beacon::Text(const std::string& local) const {
  std::string xml =
      absl::StrFormat("<CANBeacon name=\"%s\" type=\"SocketCAN\" description=\"canserver %s\">",
                      Escape(hostname_), kVersion);
  std::vector<std::string> urls;
  if (!local.empty()) urls.push_back(local);
  for (const std::string& a : addresses_) {
    if (std::find(urls.begin(), urls.end(), a) == urls.end()) urls.push_back(a);
  }
  for (const std::string& a : urls) absl::StrAppend(&xml, "<URL>can://", a, ":", port_, "</URL>");
  for (const std::string& c : channels_) absl::StrAppend(&xml, "<Bus name=\"", Escape(c), "\"/>");
  xml += "</CANBeacon>";
  return xml;
}

void Beacon::Send() {
  for (Destination& d : destinations_) {
    const std::string text = Text(d.local);
    if (::sendto(fd_.get(), text.data(), text.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&d.to), sizeof d.to) < 0) {
      if (!d.failed) {
        CS_LOG(kWarning, "beacon to %s:%d: %s", Ip(d.to), ntohs(d.to.sin_port),
               std::strerror(errno));
      }
      d.failed = true;
    } else {
      d.failed = false;
    }
  }
}

}  // namespace canserver
