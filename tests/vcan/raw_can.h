// A raw CAN_RAW socket on an interface: the independent oracle and traffic source of the vcan
// scenarios (what really crossed the kernel's CAN stack).
#pragma once

#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "core/frame.h"
#include "io/unique_fd.h"

namespace canserver::testing {

class RawCan {
 public:
  explicit RawCan(const std::string& ifname, bool error_frames = false) {
    fd_.Reset(::socket(PF_CAN, SOCK_RAW | SOCK_CLOEXEC, CAN_RAW));
    if (!fd_.valid()) return;
    if (error_frames) {
      const can_err_mask_t mask = CAN_ERR_MASK;
      ::setsockopt(fd_.get(), SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &mask, sizeof mask);
    }
    const int on = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    sockaddr_can addr{};
    addr.can_family = AF_CAN;
    addr.can_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fd_.Reset();
  }
  bool ok() const { return fd_.valid(); }

  // Writes one classic frame, waiting out ENOBUFS (a full tx queue) as cangen does.
  bool Write(const CanFrame& f) {
    can_frame k{};
    k.can_id = f.id | (f.extended() ? CAN_EFF_FLAG : 0) | (f.remote() ? CAN_RTR_FLAG : 0) |
               (f.error() ? CAN_ERR_FLAG : 0);
    k.can_dlc = f.len;
    std::memcpy(k.data, f.data, f.len > 8 ? 8 : f.len);
    for (int tries = 0; tries < 1000; ++tries) {
      if (::write(fd_.get(), &k, sizeof k) == static_cast<ssize_t>(sizeof k)) return true;
      if (errno != ENOBUFS) return false;
      pollfd p{fd_.get(), POLLOUT, 0};
      ::poll(&p, 1, 10);
    }
    return false;
  }

  std::optional<CanFrame> Read(absl::Duration timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0)
      return std::nullopt;
    can_frame k{};
    if (::read(fd_.get(), &k, sizeof k) != static_cast<ssize_t>(sizeof k)) return std::nullopt;
    CanFrame f;
    f.flags = static_cast<uint8_t>((k.can_id & CAN_EFF_FLAG ? kCanFlagExtended : 0) |
                                   (k.can_id & CAN_RTR_FLAG ? kCanFlagRemote : 0) |
                                   (k.can_id & CAN_ERR_FLAG ? kCanFlagError : 0));
    f.id = k.can_id & (k.can_id & CAN_ERR_FLAG   ? CAN_ERR_MASK
                       : k.can_id & CAN_EFF_FLAG ? CAN_EFF_MASK
                                                 : CAN_SFF_MASK);
    f.len = k.can_dlc;
    std::memcpy(f.data, k.data, 8);
    if (f.remote()) std::memset(f.data, 0, 8);
    return f;
  }

 private:
  UniqueFd fd_;
};

}  // namespace canserver::testing
