#include "net/socketcand_bus.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<SocketcandBus>> SocketcandBus::Connect(
    const SocketcandBusOptions& options) {
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectTcp(options.server, options.timeout));
  auto bus = std::unique_ptr<SocketcandBus>(new SocketcandBus(std::move(fd)));
  RETURN_IF_ERROR(bus->Expect("hi", options.timeout));
  // "< errors on >" (canserver's extension): refusals are answered with their reason, which
  // Recv() then returns as an error.
  const std::string open =
      absl::StrCat(options.errors_on ? "< errors on >" : "", "< open ", options.channel,
                   " >< rawmode >", options.fd_frames ? "< fdframes on >" : "");
  if (::send(bus->fd_.get(), open.data(), open.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(open.size())) {
    return ErrnoStatus("send to " + options.server.ToString());
  }
  for (int i = 2 + (options.errors_on ? 1 : 0) + (options.fd_frames ? 1 : 0); i > 0; --i) {
    RETURN_IF_ERROR(bus->Expect("ok", options.timeout));
  }
  return bus;
}

absl::Status SocketcandBus::Expect(absl::string_view want, absl::Duration timeout) {
  ASSIGN_OR_RETURN(const std::string* got, NextElement(timeout));
  if (got == nullptr) {
    return absl::DeadlineExceededError(absl::StrCat("no '< ", want, " >' from the server"));
  }
  if (*got != want) {
    return absl::FailedPreconditionError(absl::StrCat("server said '< ", *got, " >'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<const std::string*> SocketcandBus::NextElement(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const auto kind = parser_.Next(in_, &in_pos_);
    if (kind == socketcand::ElementParser::Kind::kElement) return &parser_.element();
    if (kind == socketcand::ElementParser::Kind::kGarbage) {
      return absl::DataLossError(absl::StrCat("from the server: ", parser_.error()));
    }
    in_.clear();
    in_pos_ = 0;
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd p{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0)));
    if (ready < 0 && errno != EINTR) return ErrnoStatus("poll");
    if (ready <= 0) {
      if (left <= 0) return nullptr;
      continue;
    }
    char buf[64 << 10];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return absl::UnavailableError("the server closed the connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return ErrnoStatus("recv");
    }
    in_.assign(buf, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::optional<CanFrame>> SocketcandBus::Recv(absl::Duration timeout) {
  ASSIGN_OR_RETURN(const std::string* element, NextElement(timeout));
  if (element == nullptr) return std::nullopt;
  if (element->rfind("error", 0) == 0) {
    return absl::UnavailableError(absl::StrCat("server: < ", *element, " >"));
  }
  ASSIGN_OR_RETURN(CanFrame frame, socketcand::ParseFrameElement(*element));
  return frame;
}

namespace {

// Appends the RAW-mode command that sends `frame`.
void AppendSendCommand(const CanFrame& frame, std::string* text) {
  const int id_digits = frame.extended() ? 8 : 3;
  if (frame.fd()) {
    const int flags = ((frame.flags & kCanFlagBrs) ? 1 : 0) | ((frame.flags & kCanFlagEsi) ? 2 : 0);
    absl::StrAppendFormat(text, "< fdsend %0*X %X %d", id_digits, frame.id, flags, frame.len);
  } else if (frame.remote()) {
    absl::StrAppendFormat(text, "< sendrtr %0*X %d", id_digits, frame.id, frame.len);
  } else {
    absl::StrAppendFormat(text, "< send %0*X %d", id_digits, frame.id, frame.len);
  }
  for (uint8_t i = 0; i < frame.len && !frame.remote(); ++i) {
    absl::StrAppendFormat(text, " %02X", frame.data[i]);
  }
  *text += " >";
}

}  // namespace

absl::Status SocketcandBus::Send(const CanFrame& frame) { return SendMany({&frame, 1}); }

absl::Status SocketcandBus::SendMany(absl::Span<const CanFrame> frames) {
  std::string text;
  for (const CanFrame& f : frames) AppendSendCommand(f, &text);
  for (size_t done = 0; done < text.size();) {  // the socket blocks: a short write is a full buffer
    const ssize_t n = ::send(fd_.get(), text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("send");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace canserver
