#include "io/raw_can_socket.h"

#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status_macros.h"
#include "io/kernel_frame.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<RawCanSocket>> RawCanSocket::Open(const std::string& ifname,
                                                                 bool error_frames) {
  UniqueFd fd(::socket(PF_CAN, SOCK_RAW | SOCK_CLOEXEC, CAN_RAW));
  if (!fd.valid()) return ErrnoStatus("socket(PF_CAN, SOCK_RAW) for " + ifname);
  if (error_frames) {
    const can_err_mask_t mask = CAN_ERR_MASK;
    if (::setsockopt(fd.get(), SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &mask, sizeof mask) != 0) {
      return ErrnoStatus("setsockopt(CAN_RAW_ERR_FILTER) on " + ifname);
    }
  }
  const int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  // CAN FD frames too (an interface whose MTU is CAN_MTU simply never has any).
  ::setsockopt(fd.get(), SOL_CAN_RAW, CAN_RAW_FD_FRAMES, &on, sizeof on);
  const int rcvbuf = 8 << 20;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  sockaddr_can addr{};
  addr.can_family = AF_CAN;
  addr.can_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
  if (addr.can_ifindex == 0) return absl::NotFoundError("no CAN interface '" + ifname + "'");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoStatus("bind(CAN_RAW) to " + ifname);
  }
  return std::unique_ptr<RawCanSocket>(new RawCanSocket(std::move(fd)));
}

bool RawCanSocket::Write(const CanFrame& frame) {
  canfd_frame k;
  size_t mtu;
  ToKernel(frame, &k, &mtu);
  for (int tries = 0; tries < 10000; ++tries) {
    if (::write(fd_.get(), &k, mtu) == static_cast<ssize_t>(mtu)) return true;
    if (errno != ENOBUFS) return false;
    pollfd p{fd_.get(), POLLOUT, 0};
    ::poll(&p, 1, 1);
  }
  return false;
}

std::optional<CanFrame> RawCanSocket::Read(absl::Duration timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return std::nullopt;
  canfd_frame k{};
  iovec iov{&k, sizeof k};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd_.get(), &msg, 0);
  if (n != CAN_MTU && n != CANFD_MTU) return std::nullopt;
  CanFrame f;
  FromKernel(k, static_cast<size_t>(n), &f);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      timespec ts;
      std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      f.timestamp_ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    }
  }
  return f;
}

}  // namespace canserver
