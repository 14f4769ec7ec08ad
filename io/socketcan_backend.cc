#include "io/socketcan_backend.h"

#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/isotp.h>
#include <linux/can/netlink.h>
#include <linux/can/raw.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/bcm_periodic_jobs.h"
#include "io/can_netdevs.h"
#include "io/can_netlink.h"
#include "io/kernel_frame.h"

namespace canserver {
namespace {

constexpr size_t kBatch = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<SocketCanBackend>> SocketCanBackend::Open(
    const SocketCanOptions& options) {
  if (options.interface.empty() || options.interface.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid CAN interface name '%s'", options.interface));
  }
  auto backend = std::unique_ptr<SocketCanBackend>(new SocketCanBackend(options));
  absl::Status opened = backend->OpenRaw();
  if (opened.ok()) return backend;
  if (!options.wait_for_interface || !absl::IsNotFound(opened)) return opened;
  backend->GoAway();
  if (!backend->netlink_.valid()) {
    return absl::UnavailableError(absl::StrFormat(
        "no CAN interface '%s', and no netlink socket to wait for it", options.interface));
  }
  CS_LOG(kWarning, "%s: no such interface yet; waiting for it (--wait-for-interface)",
         options.interface);
  return backend;
}

std::string SocketCanBackend::channel_info() const {
  std::string info = "socketcan channel '" + interface_ + "'";
  if (const std::string device = DescribeCanDevice(interface_); !device.empty()) {
    absl::StrAppend(&info, " (", device, ")");
  }
  return info;
}

absl::Status SocketCanBackend::OpenRaw() {
  const int fd = ::socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
  if (fd < 0) {
    return ErrnoStatus(absl::StrFormat(
        "socket(PF_CAN, SOCK_RAW, CAN_RAW) for '%s' (does this kernel have CAN support? try "
        "--interface virtual)",
        interface_));
  }
  UniqueFd sock(fd);
  const unsigned ifindex = ::if_nametoindex(interface_.c_str());
  if (ifindex == 0) {
    return absl::NotFoundError(absl::StrFormat("no CAN interface '%s' (if_nametoindex: %s)",
                                               interface_, std::strerror(errno)));
  }
  const int on = 1;
  // FD frames where the interface allows; classic-only interfaces simply never send them.
  (void)::setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FD_FRAMES, &on, sizeof on);
  // The controller's state changes always (the CAN thread counts and logs them); every error
  // class only when clients asked for error frames (they receive them only then, either way).
  const can_err_mask_t mask =
      options_.error_frames ? CAN_ERR_MASK : (CAN_ERR_CRTL | CAN_ERR_BUSOFF | CAN_ERR_RESTARTED);
  if (::setsockopt(fd, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &mask, sizeof mask) != 0) {
    return ErrnoStatus("setsockopt(CAN_RAW_ERR_FILTER) on " + interface_);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) {
    return ErrnoStatus("setsockopt(SO_TIMESTAMPNS) on " + interface_);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on) != 0) {
    return ErrnoStatus("setsockopt(SO_RXQ_OVFL) on " + interface_);
  }
  // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it SO_RCVBUF is capped by rmem_max.
  const int want = options_.receive_buffer_bytes;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  }
  int got = 0;
  socklen_t got_len = sizeof got;
  ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &got_len);

  sockaddr_can addr{};
  addr.can_family = AF_CAN;
  addr.can_ifindex = static_cast<int>(ifindex);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoStatus("bind(CAN_RAW) to " + interface_);
  }
  CS_LOG(kInfo, "%s: CAN_RAW socket, receive buffer %d bytes (asked %d)", interface_, got, want);
  fd_ = std::move(sock);
  rcvbuf_ = got;
  have_overflow_ = false;  // a new socket counts its drops from zero
  ifindex_.store(static_cast<int>(ifindex), std::memory_order_release);
  gone_ = false;
  netlink_.Reset();
  ++epoch_;
  return absl::OkStatus();
}

void SocketCanBackend::GoAway() noexcept {
  fd_.Reset();
  ifindex_.store(0, std::memory_order_release);
  gone_ = true;
  ++epoch_;
  UniqueFd nl(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = RTMGRP_LINK;
  if (nl.valid() && ::bind(nl.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    netlink_ = std::move(nl);
  } else {
    CS_LOG(kError, "%s: netlink socket for link changes: %s", interface_, std::strerror(errno));
  }
  // It may already be back (deleted and re-added before we looked).
  WatchForReturn();
}

void SocketCanBackend::WatchForReturn() noexcept {
  // Drain the link messages; which link they name does not matter: the name is looked up anew.
  alignas(nlmsghdr) char buf[8192];
  while (netlink_.valid() && ::recv(netlink_.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  if (::if_nametoindex(interface_.c_str()) == 0) return;
  if (absl::Status s = OpenRaw(); !s.ok()) {
    CS_LOG(kWarning, "%s is back but could not be opened: %s", interface_, s.message());
    return;
  }
  CS_LOG(kInfo, "%s is back: serving it again", interface_);
}

size_t SocketCanBackend::Receive(CanFrame* out, size_t max, uint64_t* kernel_drops) noexcept {
  const size_t n = std::min(max, kBatch);
  canfd_frame frames[kBatch];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  alignas(
      cmsghdr) char control[kBatch][CMSG_SPACE(sizeof(timespec)) + CMSG_SPACE(sizeof(uint32_t))];
  sockaddr_can from[kBatch];
  for (size_t i = 0; i < n; ++i) {
    iov[i] = {&frames[i], sizeof frames[i]};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = control[i];
    msgs[i].msg_hdr.msg_controllen = sizeof control[i];
  }
  if (gone_) {
    WatchForReturn();
    return 0;
  }
  const int got = ::recvmmsg(fd_.get(), msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  if (got < 0 && errno == ENODEV) {
    CS_LOG(kWarning,
           "%s: interface gone (ENODEV); writes fail with TransmitFail until it comes back",
           interface_);
    GoAway();
    return 0;
  }
  if (got < 0 && errno == ENETDOWN) {
    // Reported once per down transition; the socket stays bound and receives again once it is up.
    CS_LOG(kWarning, "%s: interface went down; writes fail with TransmitFail until it is up",
           interface_);
  }
  if (got <= 0) return 0;
  size_t count = 0;
  for (int i = 0; i < got; ++i) {
    const size_t bytes = msgs[i].msg_len;
    if (bytes != CAN_MTU && bytes != CANFD_MTU) continue;
    // When the interface is deleted the kernel unbinds the socket before we see ENODEV; frames
    // of other interfaces that slip in meanwhile are not this channel's.
    if (from[i].can_ifindex != ifindex_.load(std::memory_order_relaxed)) continue;
    CanFrame& f = out[count++];
    FromKernel(frames[i], bytes, &f);
    f.timestamp_ns = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr;
         c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        f.timestamp_ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
      } else if (c->cmsg_type == SO_RXQ_OVFL) {
        uint32_t total;
        std::memcpy(&total, CMSG_DATA(c), sizeof total);
        if (have_overflow_)
          *kernel_drops += total - last_overflow_;
        else
          *kernel_drops += total;
        last_overflow_ = total;
        have_overflow_ = true;
      }
    }
  }
  return count;
}

size_t SocketCanBackend::Send(const CanFrame* frames, size_t n, int* error) noexcept {
  if (gone_) {
    *error = ENODEV;
    return 0;
  }
  size_t done = 0;
  while (done < n) {
    const size_t batch = std::min(n - done, kBatch);
    canfd_frame kframes[kBatch];
    iovec iov[kBatch];
    mmsghdr msgs[kBatch];
    for (size_t i = 0; i < batch; ++i) {
      size_t mtu;
      ToKernel(frames[done + i], &kframes[i], &mtu);
      iov[i] = {&kframes[i], mtu};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int sent = ::sendmmsg(fd_.get(), msgs, static_cast<unsigned>(batch), MSG_DONTWAIT);
    if (sent < 0) {
      *error = errno;
      if (errno == ENODEV || errno == ENXIO) {  // deleted: the socket is no longer bound
        CS_LOG(kWarning, "%s: interface gone (%s); writes fail until it comes back", interface_,
               std::strerror(errno));
        GoAway();
        *error = ENODEV;
      }
      return done;
    }
    done += static_cast<size_t>(sent);
    if (static_cast<size_t>(sent) < batch) {
      // sendmmsg stops at the first failing frame without saying why; ask once more for it.
      size_t mtu;
      canfd_frame k;
      ToKernel(frames[done], &k, &mtu);
      if (::write(fd_.get(), &k, mtu) == static_cast<ssize_t>(mtu)) {
        ++done;
        continue;
      }
      *error = errno;
      return done;
    }
  }
  return done;
}

absl::StatusOr<UniqueFd> SocketCanBackend::OpenIsoTp(const IsoTpConfig& config) {
  UniqueFd fd(::socket(PF_CAN, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_ISOTP));
  if (!fd.valid()) {
    return ErrnoStatus("socket(CAN_ISOTP) (is the can-isotp module loaded?)");
  }
  if (config.flags != 0) {  // as socketcand: the kernel's defaults unless flags are given
    can_isotp_options opts{};
    opts.flags = config.flags;
    opts.ext_address = config.ext_address;
    opts.txpad_content = config.txpad;
    opts.rxpad_content = config.rxpad;
    opts.rx_ext_address = config.rx_ext_address;
    if (::setsockopt(fd.get(), SOL_CAN_ISOTP, CAN_ISOTP_OPTS, &opts, sizeof opts) != 0) {
      return ErrnoStatus("setsockopt(CAN_ISOTP_OPTS)");
    }
  }
  can_isotp_fc_options fc{};
  fc.bs = config.block_size;
  fc.stmin = config.stmin;
  fc.wftmax = config.wftmax;
  if (::setsockopt(fd.get(), SOL_CAN_ISOTP, CAN_ISOTP_RECV_FC, &fc, sizeof fc) != 0) {
    return ErrnoStatus("setsockopt(CAN_ISOTP_RECV_FC)");
  }
  const int ifindex = ifindex_.load(std::memory_order_acquire);
  if (ifindex == 0) return absl::UnavailableError(interface_ + " is gone");
  sockaddr_can addr{};
  addr.can_family = AF_CAN;
  addr.can_ifindex = ifindex;
  addr.can_addr.tp.tx_id = config.tx_id | (config.tx_extended ? CAN_EFF_FLAG : 0);
  addr.can_addr.tp.rx_id = config.rx_id | (config.rx_extended ? CAN_EFF_FLAG : 0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoStatus(
        absl::StrFormat("bind(CAN_ISOTP %X→%X on %s)", config.tx_id, config.rx_id, interface_));
  }
  return fd;
}

absl::StatusOr<std::unique_ptr<PeriodicJobs>> SocketCanBackend::CreatePeriodicJobs(EventLoop*) {
  return MakeBcmPeriodicJobs(&ifindex_, interface_);
}

}  // namespace canserver
