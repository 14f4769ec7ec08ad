#include "io/bcm_periodic_jobs.h"

// linux/can/bcm.h ends bcm_msg_head with a flexible array member, a C idiom clang flags in C++.
#ifdef __clang__
#pragma clang diagnostic ignored "-Wzero-length-array"
#endif

#include <linux/can.h>
#include <linux/can/bcm.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/kernel_frame.h"
#include "io/unique_fd.h"

namespace canserver {
namespace {

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

std::unique_ptr<PeriodicJobs> MakeBcmPeriodicJobs(const std::atomic<int>* ifindex,
                                                  std::string interface) {
  return std::make_unique<BcmPeriodicJobs>(ifindex, std::move(interface));
}

}  // namespace canserver
