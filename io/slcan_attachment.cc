#include "io/slcan_attachment.h"

#include <fcntl.h>
#include <libsocketcan.h>
#include <linux/sockios.h>
#include <linux/tty.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/log.h"

namespace canserver {
namespace {

speed_t BaudConstant(int baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    case 460800:
      return B460800;
    case 500000:
      return B500000;
    case 921600:
      return B921600;
    case 1000000:
      return B1000000;
    case 2000000:
      return B2000000;
    case 3000000:
      return B3000000;
    default:
      return B0;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SlcanAttachment>> SlcanAttachment::Attach(absl::string_view device,
                                                                         int32_t bitrate) {
  std::string path(device);
  int baud = 115200;
  if (const size_t at = path.rfind('@'); at != std::string::npos) {
    if (!absl::SimpleAtoi(path.substr(at + 1), &baud) || BaudConstant(baud) == B0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("slcan channel '%s': '%s' is not a serial baud rate (e.g. 115200)",
                          device, path.substr(at + 1)));
    }
    path.resize(at);
  }
  if (bitrate <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "slcan channel '%s': give the bus's bit rate with --bitrate (e.g. --bitrate 500000)",
        device));
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrFormat("slcan: cannot open %s: %s", path, std::strerror(errno)));
  }
  UniqueFd tty(fd);
  termios t{};
  if (::tcgetattr(fd, &t) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("slcan: %s is not a serial device: %s", path, std::strerror(errno)));
  }
  ::cfmakeraw(&t);
  ::cfsetspeed(&t, BaudConstant(baud));
  (void)::tcsetattr(fd, TCSANOW, &t);
  int ldisc = N_SLCAN;
  if (::ioctl(fd, TIOCSETD, &ldisc) != 0) {
    const int err = errno;
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        err == EPERM ? absl::StrFormat("slcan: attaching %s needs CAP_NET_ADMIN (run canserver as "
                                       "root, or setcap cap_net_admin+ep on it)",
                                       path)
                     : absl::StrFormat("slcan: cannot attach the slcan line discipline to %s: %s "
                                       "(modprobe slcan)",
                                       path, std::strerror(err)));
  }
  char name[IFNAMSIZ] = {};
  if (::ioctl(fd, SIOCGIFNAME, name) != 0) {
    return absl::InternalError(
        absl::StrFormat("slcan: no interface for %s: %s", path, std::strerror(errno)));
  }
  auto attached = std::unique_ptr<SlcanAttachment>(new SlcanAttachment(std::move(tty), path, name));
  // The kernel (6.0+) passes the bit rate to the adapter as SLCAN's S command when the interface
  // goes up, then opens the channel (O).
  if (can_set_bitrate(name, static_cast<__u32>(bitrate)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "slcan: %s (on %s) does not take %d bit/s; SLCAN adapters run at 10000, 20000, 50000, "
        "100000, 125000, 250000, 500000, 800000 or 1000000",
        name, path, bitrate));
  }
  if (can_do_start(name) != 0) {
    return absl::UnavailableError(absl::StrFormat("slcan: cannot bring %s (on %s) up", name, path));
  }
  CS_LOG(kInfo, "slcan: %s@%d attached as %s at %d bit/s", path, baud, name, bitrate);
  return attached;
}

SlcanAttachment::~SlcanAttachment() {
  (void)can_do_stop(netdev_.c_str());
  // Back to the ordinary line discipline, as slcand does at exit: the kernel unregisters the
  // netdev. (Closing alone is not enough where the tty outlives the file, e.g. a pty whose other
  // side is still open.)
  int ldisc = N_TTY;
  (void)::ioctl(tty_.get(), TIOCSETD, &ldisc);
  tty_.Reset();
  CS_LOG(kInfo, "slcan: %s detached from %s", netdev_, device_);
}

}  // namespace canserver
