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
#pragma once

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
};

class SocketCanBackend final : public CanBackend {
 public:
  // Opens and binds the raw socket. Errors name the call and interface, e.g.
  // "no CAN interface 'nosuch0'" or "socket(PF_CAN, SOCK_RAW): Address family not supported".
  static absl::StatusOr<std::unique_ptr<SocketCanBackend>> Open(const SocketCanOptions& options);

  std::string channel_info() const override { return "socketcan channel '" + interface_ + "'"; }
  int rx_fd() const override { return fd_.get(); }
  size_t Receive(CanFrame* out, size_t max, uint64_t* kernel_drops) noexcept override;
  size_t Send(const CanFrame* frames, size_t n, int* error) noexcept override;
  absl::StatusOr<std::unique_ptr<PeriodicJobs>> CreatePeriodicJobs(EventLoop* loop) override;

  // The receive buffer the kernel actually granted.
  int receive_buffer_bytes() const { return rcvbuf_; }

 private:
  SocketCanBackend(std::string interface, int ifindex, UniqueFd fd, int rcvbuf)
      : interface_(std::move(interface)), ifindex_(ifindex), fd_(std::move(fd)), rcvbuf_(rcvbuf) {}

  const std::string interface_;
  const int ifindex_;
  UniqueFd fd_;
  int rcvbuf_;
  uint32_t last_overflow_ = 0;  // SO_RXQ_OVFL is a running total per socket
  bool have_overflow_ = false;
};

}  // namespace canserver
