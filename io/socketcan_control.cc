// SocketCanBackend's control path: the interface's bit timing and state, and setting them, through
// libsocketcan's netlink calls (one round trip each; thread-safe). Kept apart from the raw socket's
// data path in socketcan_backend.cc.
#include <libsocketcan.h>
#include <linux/can/netlink.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "io/can_netlink.h"
#include "io/socketcan_backend.h"

namespace canserver {

BusTiming QueryBusTiming(const std::string& interface, int ifindex) {
  BusTiming t;
  can_bittiming bt{};
  if (can_get_bittiming(interface.c_str(), &bt) == 0) t.bitrate = static_cast<int32_t>(bt.bitrate);
  if (t.bitrate > 0) t.data_bitrate = QueryDataBitrate(ifindex);
  int state = -1;
  if (t.bitrate > 0 && can_get_state(interface.c_str(), &state) == 0) {
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

BusTiming SocketCanBackend::timing() const {
  return QueryBusTiming(interface_, ifindex_.load(std::memory_order_acquire));
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

}  // namespace canserver
