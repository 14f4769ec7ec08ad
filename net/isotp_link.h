// IsoTpLink: socketcand's ISO-TP mode for one session — the channel's CAN_ISOTP socket in the
// session's event loop, and the PDUs waiting while the kernel sends one (it takes one at a time).
// The session turns what it receives into "< pdu … >" elements (ServerProtocol::AppendPdu).
//
// Owning io thread only. Destroying it takes the socket out of the loop and closes it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/isotp_config.h"
#include "io/can_backend.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"

namespace canserver {

class IsoTpLink {
 public:
  // PDUs one session may queue while the kernel still sends an earlier one.
  static constexpr size_t kMaxQueuedPdus = 16;

  // Opens `config` on `backend`'s channel; `on_event` runs with the epoll events whenever the
  // socket is readable (call Receive) or writable (call Flush).
  static absl::StatusOr<std::unique_ptr<IsoTpLink>> Open(CanBackend& backend,
                                                         const IsoTpConfig& config, EventLoop* loop,
                                                         std::function<void(uint32_t)> on_event);
  ~IsoTpLink();
  IsoTpLink(const IsoTpLink&) = delete;
  IsoTpLink& operator=(const IsoTpLink&) = delete;

  // Queues a PDU (then call Flush); an error if kMaxQueuedPdus already wait.
  absl::Status Send(absl::string_view pdu);
  // Writes queued PDUs until one is in flight (then waits for EPOLLOUT). Returns the text of a
  // send that failed (that PDU is dropped), or "" if none did.
  std::string Flush();
  // What the socket holds now: up to 16 PDUs, and the error the kernel reports once for a failed
  // transfer (no flow control, a timeout, a wrong sequence), "" if none.
  struct Received {
    std::vector<std::string> pdus;
    std::string error;
  };
  Received Receive();

 private:
  IsoTpLink(UniqueFd fd, EventLoop* loop) : fd_(std::move(fd)), loop_(loop) {}

  UniqueFd fd_;
  EventLoop* const loop_;
  std::deque<std::string> queued_;
};

}  // namespace canserver
