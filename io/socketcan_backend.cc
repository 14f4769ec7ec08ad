#include "io/socketcan_backend.h"

// linux/can/bcm.h ends bcm_msg_head with a flexible array member, a C idiom clang flags in C++.
#ifdef __clang__
#pragma clang diagnostic ignored "-Wzero-length-array"
#endif

#include <libsocketcan.h>
#include <linux/can.h>
#include <linux/can/bcm.h>
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
#include <map>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/can_netlink.h"
#include "io/kernel_frame.h"

namespace canserver {
namespace {

constexpr size_t kBatch = 64;

// Periodic jobs through the kernel's broadcast manager: one CAN_BCM socket per session, connected
// when the first job starts to the interface as it is then. If the interface went away since
// (the kernel dropped its jobs with it), the socket is connected anew to its successor.
class BcmPeriodicJobs final : public PeriodicJobs {
 public:
  BcmPeriodicJobs(const std::atomic<int>* ifindex, std::string interface)
      : ifindex_(ifindex), interface_(std::move(interface)) {}

  absl::Status Start(const CanFrame& frame, absl::Duration period,
                     absl::Duration duration) override {
    RETURN_IF_ERROR(Connect());
    if (frame.fd()) RETURN_IF_ERROR(CheckFdCapable());
    const absl::Time now = absl::Now();
    auto it = jobs_.find(frame.id);
    const bool running =
        it != jobs_.end() && (it->second.end == absl::InfiniteFuture() || now < it->second.end);
    const bool data_only = running && it->second.period == period &&
                           it->second.duration == duration &&
                           it->second.extended == frame.extended() && it->second.fd == frame.fd();
    bcm_msg_head head{};
    head.opcode = TX_SETUP;
    head.can_id = frame.id | (frame.extended() ? CAN_EFF_FLAG : 0);
    head.nframes = 1;
    if (frame.fd()) head.flags |= CAN_FD_FRAME;  // the frame that follows is a canfd_frame
    if (!data_only) {
      // TX_ANNOUNCE sends the first frame at once; with count > 0 the kernel sends `count` frames
      // at ival1 and then, ival2 being zero, stops — that is the duration.
      head.flags |= SETTIMER | STARTTIMER | TX_ANNOUNCE;
      const int64_t count = PeriodicFrameCount(period, duration);
      head.count = static_cast<uint32_t>(count);
      const timeval tv = absl::ToTimeval(period);
      if (count > 0) {
        head.ival1 = {tv.tv_sec, tv.tv_usec};
      } else {
        head.ival2 = {tv.tv_sec, tv.tv_usec};
      }
    }
    size_t mtu;
    canfd_frame kframe;
    ToKernel(frame, &kframe, &mtu);
    // bcm_msg_head ends in a flexible array: the frame (can_frame or canfd_frame) follows it.
    alignas(bcm_msg_head) uint8_t msg[sizeof(bcm_msg_head) + sizeof(canfd_frame)];
    std::memcpy(msg, &head, sizeof head);
    std::memcpy(msg + sizeof head, &kframe, mtu);
    const size_t size = sizeof head + mtu;
    if (::write(fd_.get(), msg, size) != static_cast<ssize_t>(size)) {
      return ErrnoStatus(absl::StrFormat("write(CAN_BCM TX_SETUP 0x%X)", frame.id));
    }
    if (!data_only) {
      jobs_[frame.id] =
          Job{period, duration, frame.extended(), frame.fd(),
              duration > absl::ZeroDuration() ? now + duration : absl::InfiniteFuture()};
    }
    return absl::OkStatus();
  }

  absl::Status Stop(uint32_t arbitration_id) override {
    if (connected_to_ != ifindex_->load(std::memory_order_acquire)) jobs_.clear();  // gone with it
    auto it = jobs_.find(arbitration_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(
          absl::StrFormat("no periodic job for arbitration id 0x%X", arbitration_id));
    }
    bcm_msg_head head{};
    head.opcode = TX_DELETE;
    head.can_id = arbitration_id | (it->second.extended ? CAN_EFF_FLAG : 0);
    jobs_.erase(it);
    // EINVAL here means the kernel had already removed an ended job; nothing is left to stop.
    if (::write(fd_.get(), &head, sizeof head) < 0 && errno != EINVAL) {
      return ErrnoStatus(absl::StrFormat("write(CAN_BCM TX_DELETE 0x%X)", arbitration_id));
    }
    return absl::OkStatus();
  }

  bool Contains(uint32_t arbitration_id) const override { return jobs_.count(arbitration_id) > 0; }
  size_t size() const override { return jobs_.size(); }

 private:
  struct Job {
    absl::Duration period;
    absl::Duration duration;
    bool extended;
    bool fd;
    absl::Time end;
  };
  // The broadcast manager accepts an FD job on any interface and then fails every send silently
  // on a classic one (MTU 16), so ask the interface first.
  absl::Status CheckFdCapable() const {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, interface_.c_str(),
                std::min(interface_.size(), size_t{IFNAMSIZ - 1}));
    if (::ioctl(fd_.get(), SIOCGIFMTU, &ifr) != 0) {
      return ErrnoStatus("ioctl(SIOCGIFMTU) on " + interface_);
    }
    if (ifr.ifr_mtu != CANFD_MTU) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s is a classic CAN interface (MTU %d): it cannot send CAN FD frames",
                          interface_, ifr.ifr_mtu));
    }
    return absl::OkStatus();
  }
  absl::Status Connect() {
    const int ifindex = ifindex_->load(std::memory_order_acquire);
    if (ifindex == 0) {
      return absl::UnavailableError(absl::StrFormat("CAN interface '%s' is gone", interface_));
    }
    if (fd_.valid() && connected_to_ == ifindex) return absl::OkStatus();
    jobs_.clear();
    UniqueFd sock(::socket(PF_CAN, SOCK_DGRAM | SOCK_CLOEXEC, CAN_BCM));
    if (!sock.valid()) return ErrnoStatus("socket(PF_CAN, SOCK_DGRAM, CAN_BCM)");
    sockaddr_can addr{};
    addr.can_family = AF_CAN;
    addr.can_ifindex = ifindex;
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return ErrnoStatus("connect(CAN_BCM) to " + interface_);
    }
    fd_ = std::move(sock);
    connected_to_ = ifindex;
    return absl::OkStatus();
  }

  const std::atomic<int>* const ifindex_;  // the backend's, which outlives every session
  const std::string interface_;
  UniqueFd fd_;
  int connected_to_ = 0;
  std::map<uint32_t, Job> jobs_;
};

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

BusTiming SocketCanBackend::timing() const {
  BusTiming t;
  can_bittiming bt{};
  if (can_get_bittiming(interface_.c_str(), &bt) == 0) t.bitrate = static_cast<int32_t>(bt.bitrate);
  if (t.bitrate > 0) t.data_bitrate = QueryDataBitrate(ifindex_.load(std::memory_order_acquire));
  int state = -1;
  if (t.bitrate > 0 && can_get_state(interface_.c_str(), &state) == 0) {
    switch (state) {
      case CAN_STATE_ERROR_ACTIVE:
        t.state = "error-active";
        break;
      case CAN_STATE_ERROR_WARNING:
        t.state = "error-warning";
        break;
      case CAN_STATE_ERROR_PASSIVE:
        t.state = "error-passive";
        break;
      case CAN_STATE_BUS_OFF:
        t.state = "bus-off";
        break;
      case CAN_STATE_STOPPED:
        t.state = "stopped";
        break;
      case CAN_STATE_SLEEPING:
        t.state = "sleeping";
        break;
      default:
        break;
    }
  }
  return t;
}

CanBackend::BitrateRange SocketCanBackend::bitrate_range() const {
  BitrateRange range;
  can_bittiming_const btc{};
  can_clock clock{};
  if (can_get_bittiming_const(interface_.c_str(), &btc) != 0 ||
      can_get_clock(interface_.c_str(), &clock) != 0 || clock.freq == 0 || btc.brp_min == 0) {
    return range;  // no bit timing (vcan) or an old driver: the classic range
  }
  const uint64_t fastest =
      uint64_t{clock.freq} / (uint64_t{btc.brp_min} * (1 + btc.tseg1_min + btc.tseg2_min));
  const uint64_t slowest =
      uint64_t{clock.freq} / (uint64_t{btc.brp_max} * (1 + btc.tseg1_max + btc.tseg2_max));
  range.max = static_cast<int32_t>(std::min<uint64_t>(fastest, 1'000'000));
  range.min = static_cast<int32_t>(std::max<uint64_t>(slowest, 1));
  return range;
}

absl::Status SocketCanBackend::SetBitrate(int32_t bitrate) {
  RETURN_IF_ERROR(CheckBitrate(*this, bitrate));
  // The bit timing can only change while the interface is down.
  const char* name = interface_.c_str();
  if (can_do_stop(name) != 0) {
    return ErrnoStatus(
        absl::StrFormat("could not set %s to %d bit/s: taking it down failed (needs CAP_NET_ADMIN)",
                        interface_, bitrate));
  }
  const int set = can_set_bitrate(name, static_cast<__u32>(bitrate));
  const int set_errno = errno;
  const int up = can_do_start(name);
  if (set != 0) {
    errno = set_errno;
    return ErrnoStatus(absl::StrFormat(
        "could not set %s to %d bit/s (the controller may not support it)", interface_, bitrate));
  }
  if (up != 0) {
    return ErrnoStatus(
        absl::StrFormat("%s set to %d bit/s but not brought up again", interface_, bitrate));
  }
  CS_LOG(kInfo, "%s: bit rate set to %d bit/s", interface_, bitrate);
  return absl::OkStatus();
}

absl::Status SocketCanBackend::SetRestartMs(uint32_t restart_ms) {
  // Like the bit timing, restart-ms only changes while the interface is down.
  const char* name = interface_.c_str();
  if (can_do_stop(name) != 0) {
    return ErrnoStatus(absl::StrFormat(
        "could not set restart-ms %d on %s: taking it down failed (needs CAP_NET_ADMIN)",
        restart_ms, interface_));
  }
  const int set = can_set_restart_ms(name, restart_ms);
  const int set_errno = errno;
  (void)can_do_start(name);
  if (set != 0) {
    errno = set_errno;
    return ErrnoStatus(
        absl::StrFormat("could not set restart-ms %d on %s", restart_ms, interface_));
  }
  CS_LOG(kInfo, "%s: restarts %d ms after bus-off", interface_, restart_ms);
  return absl::OkStatus();
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
  return std::make_unique<BcmPeriodicJobs>(&ifindex_, interface_);
}

}  // namespace canserver
