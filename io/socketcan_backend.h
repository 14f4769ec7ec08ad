// SocketCanBackend: a Linux SocketCAN interface (can0, vcan0, …) through a CAN_RAW socket.
//
// Set-up follows can-utils' candump: SO_TIMESTAMPNS for kernel receive times, SO_RXQ_OVFL for the
// kernel's drop counter, a large receive buffer (SO_RCVBUFFORCE, falling back to SO_RCVBUF, then
// read back), CAN FD frames where the interface allows, error frames only when asked for.
// Frames are read with recvmmsg and written with sendmmsg in batches. Periodic jobs use one CAN_BCM
// socket per session, so the kernel times them and closing the session ends them.
//
// The raw socket does not receive its own writes (CAN_RAW_RECV_OWN_MSGS is off), so the CAN thread
// fans out what it wrote itself; frames of other sockets on the host (cansend, the broadcast
// manager) arrive like any bus frame.
//
// An interface that disappears (a USB adapter unplugged: its netdev is deleted) does not end the
// channel. The kernel reports ENODEV on the raw socket and unbinds it — left open it would then
// receive every interface's frames — so the backend closes it at once, and until a netdev of that
// name exists again its rx_fd() is a netlink socket subscribed to link changes (RTNLGRP_LINK):
// writes fail with ENODEV (TransmitFail), and the first link message that shows the name again
// reopens and rebinds the raw socket. Sessions stay connected throughout. With
// wait_for_interface, Open() starts in that state when the interface does not exist yet.
// Periodic jobs started before the interface went away are dropped by the kernel with it.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "io/can_backend.h"
#include "io/unique_fd.h"

namespace canserver {

struct SocketCanOptions {
  std::string interface = "can0";
  bool error_frames = false;
  int receive_buffer_bytes = 4 << 20;
  bool wait_for_interface = false;  // a missing interface is not an error: wait for it
};

class SocketCanBackend final : public CanBackend {
 public:
  // Opens and binds the raw socket. Errors name the call and interface, e.g.
  // "no CAN interface 'nosuch0'" or "socket(PF_CAN, SOCK_RAW): Address family not supported".
  static absl::StatusOr<std::unique_ptr<SocketCanBackend>> Open(const SocketCanOptions& options);

  // "socketcan channel 'can0' (kvaser_usb, serial 0012345)": the device from sysfs, read each
  // time (the adapter behind a name can change while --wait-for-interface waits).
  std::string channel_info() const override;
  std::string name() const override { return interface_; }
  // Through libsocketcan (netlink): the bit rate where the driver has bit timing, and the state.
  BusTiming timing() const override;
  absl::Status SetBitrate(int32_t bitrate) override;
  BitrateRange bitrate_range() const override;
  absl::Status SetRestartMs(uint32_t restart_ms) override;
  // The raw socket, or while the interface is gone the netlink socket. CAN thread only.
  int rx_fd() const override { return gone_ ? netlink_.get() : fd_.get(); }
  uint64_t rx_fd_epoch() const noexcept override { return epoch_; }
  size_t Receive(CanFrame* out, size_t max, uint64_t* kernel_drops) noexcept override;
  size_t Send(const CanFrame* frames, size_t n, int* error) noexcept override;
  absl::StatusOr<UniqueFd> OpenIsoTp(const IsoTpConfig& config) override;
  absl::StatusOr<std::unique_ptr<PeriodicJobs>> CreatePeriodicJobs(EventLoop* loop) override;

  // The receive buffer the kernel actually granted.
  int receive_buffer_bytes() const { return rcvbuf_; }
  // True while the interface does not exist. Thread-safe.
  bool gone() const { return ifindex_.load(std::memory_order_acquire) == 0; }

 private:
  explicit SocketCanBackend(SocketCanOptions options) : options_(std::move(options)) {}
  // Opens and binds the raw socket to the interface as it exists now.
  absl::Status OpenRaw();
  // The interface went away: close the raw socket, listen for its return. CAN thread only.
  void GoAway() noexcept;
  // Reads link messages; reopens once the interface exists again. CAN thread only.
  void WatchForReturn() noexcept;

  const SocketCanOptions options_;
  const std::string& interface_ = options_.interface;
  std::atomic<int> ifindex_{0};  // 0 while the interface is gone; written by the CAN thread
  UniqueFd fd_;                  // the raw socket, invalid while gone
  UniqueFd netlink_;             // RTNLGRP_LINK, open while gone
  bool gone_ = false;            // CAN thread (and Open)
  uint64_t epoch_ = 0;           // +1 whenever rx_fd() changes
  int rcvbuf_ = 0;
  uint32_t last_overflow_ = 0;  // SO_RXQ_OVFL is a running total per socket
  bool have_overflow_ = false;
};

// The bit timing and state of CAN interface `interface` (index `ifindex`), as timing() reports
// them, for an interface no backend serves (canserver --list). Thread-safe.
BusTiming QueryBusTiming(const std::string& interface, int ifindex);

}  // namespace canserver
