// RawCanSocket: a plain CAN_RAW socket on an interface for canbench — the load writer and the
// baseline reader that measures what the kernel path alone carries.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/frame.h"
#include "io/unique_fd.h"

namespace canserver {

class RawCanSocket {
 public:
  static absl::StatusOr<std::unique_ptr<RawCanSocket>> Open(const std::string& ifname);
  // Blocks out ENOBUFS (a full tx queue), as cangen does; false on any other error.
  bool Write(const CanFrame& frame);
  // A frame with its kernel receive timestamp, or nullopt after `timeout`.
  std::optional<CanFrame> Read(absl::Duration timeout);

 private:
  explicit RawCanSocket(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace canserver
