#include "net/isotp_link.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<IsoTpLink>> IsoTpLink::Open(CanBackend& backend,
                                                           const IsoTpConfig& config,
                                                           EventLoop* loop,
                                                           std::function<void(uint32_t)> on_event) {
  absl::StatusOr<UniqueFd> fd = backend.OpenIsoTp(config);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(), absl::StrCat("isotpconf: ", fd.status().message()));
  }
  std::unique_ptr<IsoTpLink> link(new IsoTpLink(*std::move(fd), loop));
  if (absl::Status added = loop->Add(link->fd_.get(), EPOLLIN, std::move(on_event)); !added.ok()) {
    return added;
  }
  return link;
}

IsoTpLink::~IsoTpLink() { loop_->Remove(fd_.get()); }

absl::Status IsoTpLink::Send(absl::string_view pdu) {
  if (queued_.size() >= kMaxQueuedPdus) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "sendpdu: %d PDUs already wait for the bus; this one was not sent", kMaxQueuedPdus));
  }
  queued_.emplace_back(pdu);
  return absl::OkStatus();
}

std::string IsoTpLink::Flush() {
  std::string error;
  while (!queued_.empty()) {
    const std::string& pdu = queued_.front();
    const ssize_t n = ::send(fd_.get(), pdu.data(), pdu.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;  // one PDU in flight: EPOLLOUT says when it is done
    if (n < 0) error = absl::StrFormat("sendpdu: %s", std::strerror(errno));
    queued_.pop_front();
  }
  (void)loop_->Modify(fd_.get(), queued_.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
  return error;
}

IsoTpLink::Received IsoTpLink::Receive() {
  Received got;
  char pdu[kIsoTpMaxPdu + 1];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::recv(fd_.get(), pdu, sizeof pdu, MSG_DONTWAIT);
    if (n > 0) {
      got.pdus.emplace_back(pdu, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      got.error = absl::StrFormat("isotp: %s", std::strerror(errno));
    }
    break;
  }
  return got;
}

}  // namespace canserver
