// SocketcandBus: a client of a socketcand server (canserver's --socketcand-port, or socketcand
// itself) in RAW mode: frames both ways. canbench measures socketcand clients with it.
//
//   auto bus = SocketcandBus::Connect({{"127.0.0.1", 29536}, "can0"});
//   (*bus)->Send(CanFrame::Classic(0x123, {1}));
//   auto frame = (*bus)->Recv(absl::Seconds(1));   // nullopt on timeout
//
// One thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/frame.h"
#include "core/socketcand_codec.h"
#include "io/unique_fd.h"
#include "net/socket_util.h"

namespace canserver {

struct SocketcandBusOptions {
  HostPort server;
  std::string channel;
  absl::Duration timeout = absl::Seconds(5);  // connect and handshake
  // Ask for CAN FD frames ("< fdframes on >", canserver's extension of the protocol).
  bool fd_frames = false;
  // Ask for refusals with their reason ("< errors on >", canserver's extension). socketcand
  // itself takes "< errors on >" for a bus named "errors" and closes the connection: false there.
  bool errors_on = true;
};

class SocketcandBus {
 public:
  // Connects, expects "< hi >", opens the channel and switches to RAW mode. Errors carry the
  // server's "< error … >" text.
  static absl::StatusOr<std::unique_ptr<SocketcandBus>> Connect(
      const SocketcandBusOptions& options);

  // The next frame within `timeout` (zero: only what is already here); nullopt if none. An
  // "< error … >" from the server, or the connection closing, is an error.
  absl::StatusOr<std::optional<CanFrame>> Recv(absl::Duration timeout);
  absl::Status Send(const CanFrame& frame);
  // The frames' commands in one write (as a client that sends a batch at once).
  absl::Status SendMany(absl::Span<const CanFrame> frames);
  int fileno() const { return fd_.get(); }

 private:
  explicit SocketcandBus(UniqueFd fd) : fd_(std::move(fd)) {}
  // The next element's content within `timeout` (valid until the next call); nullptr on timeout.
  absl::StatusOr<const std::string*> NextElement(absl::Duration timeout);
  absl::Status Expect(absl::string_view want, absl::Duration timeout);

  UniqueFd fd_;
  socketcand::ElementParser parser_;
  std::string in_;
  size_t in_pos_ = 0;
};

}  // namespace canserver
