// canserver --interface slcan --channel /dev/ttyACM0@115200: a serial-line CAN adapter (SLCAN,
// "Lawicel" ASCII) attached to the kernel's slcan line discipline by canserver itself, as
// slcand does — the serial port set to raw mode at its baud rate, N_SLCAN on it, the bit rate
// set and the interface brought up — so the netdev it gets (slcan0, …) is served like any
// SocketCAN interface. Destroying it takes the interface down and detaches the line discipline:
// the netdev goes away with canserver.
//
// Needs CAP_NET_ADMIN (the kernel's rule for N_SLCAN); the error says so.
// One owner; Attach and the destructor from the thread that starts and stops the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "io/unique_fd.h"

namespace canserver {

class SlcanAttachment {
 public:
  // `device`: "/dev/ttyACM0" or "/dev/ttyACM0@115200" (baud rate; default 115200, which USB
  // CDC adapters ignore). `bitrate`: the bus's bit rate in bit/s, one of SLCAN's S0..S8
  // (10000, 20000, 50000, 100000, 125000, 250000, 500000, 800000, 1000000).
  static absl::StatusOr<std::unique_ptr<SlcanAttachment>> Attach(absl::string_view device,
                                                                 int32_t bitrate);
  ~SlcanAttachment();
  SlcanAttachment(const SlcanAttachment&) = delete;
  SlcanAttachment& operator=(const SlcanAttachment&) = delete;

  const std::string& netdev() const { return netdev_; }
  const std::string& device() const { return device_; }

 private:
  SlcanAttachment(UniqueFd tty, std::string device, std::string netdev)
      : tty_(std::move(tty)), device_(std::move(device)), netdev_(std::move(netdev)) {}

  UniqueFd tty_;  // open while attached, with the slcan line discipline
  std::string device_;
  std::string netdev_;
};

}  // namespace canserver
