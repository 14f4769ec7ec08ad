// RawCanSocket: a plain CAN_RAW socket on an interface, used where something must talk to the bus
// directly rather than through canserver — canbench's load writer and baseline reader, and the
// vcan tests' independent oracle.
//
// Single-owner: one thread at a time.
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
  // `error_frames`: also receive error frames (CAN_RAW_ERR_FILTER).
  static absl::StatusOr<std::unique_ptr<RawCanSocket>> Open(const std::string& ifname,
                                                            bool error_frames = false);
  // Writes one frame, waiting out ENOBUFS (a full tx queue) for up to 10 s as cangen does;
  // false on any other error.
  bool Write(const CanFrame& frame);
  // A frame with its kernel receive timestamp, or nullopt after `timeout`.
  std::optional<CanFrame> Read(absl::Duration timeout);

 private:
  explicit RawCanSocket(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace canserver
