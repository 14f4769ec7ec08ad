// The vcan scenarios' independent oracle and traffic source: a raw CAN_RAW socket on an
// interface (what really crossed the kernel's CAN stack), with an ok() the fixtures assert on.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "io/raw_can_socket.h"

namespace canserver::testing {

class RawCan {
 public:
  explicit RawCan(const std::string& ifname, bool error_frames = false) {
    auto socket = RawCanSocket::Open(ifname, error_frames);
    if (socket.ok()) socket_ = *std::move(socket);
  }
  bool ok() const { return socket_ != nullptr; }
  bool Write(const CanFrame& f) { return socket_->Write(f); }
  std::optional<CanFrame> Read(absl::Duration timeout) { return socket_->Read(timeout); }

 private:
  std::unique_ptr<RawCanSocket> socket_;
};

// Frames with `id` seen on the bus by a raw socket within `window`.
inline std::vector<CanFrame> Watch(RawCan& raw, uint32_t id, absl::Duration window) {
  std::vector<CanFrame> out;
  const absl::Time end = absl::Now() + window;
  while (absl::Now() < end) {
    std::optional<CanFrame> f = raw.Read(end - absl::Now());
    if (f && f->id == id) out.push_back(*f);
  }
  return out;
}

}  // namespace canserver::testing
