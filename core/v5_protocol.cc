#include "core/v5_protocol.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canserver {

absl::Status V5Protocol::OnBytes(absl::Span<const uint8_t> bytes, std::string* reply) {
  if (state_ == State::kClosed) return absl::FailedPreconditionError("session is closed");
  if (!bytes.empty()) decoder_.Append(bytes);
  held_back_ = false;
  while (true) {
    if (state_ == State::kOpen && actions_->TransmitBlocked()) {
      held_back_ = decoder_.buffered() > 0;
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<v5::Event>> next = decoder_.Next();
    if (!next.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("protocol error: ", next.status().message())),
          reply);
    }
    if (!next->has_value()) return absl::OkStatus();
    if (absl::Status s = Handle(**next, reply); !s.ok()) {
      if (absl::IsCancelled(s)) {
        state_ = State::kClosed;
        return s;
      }
      return Fail(std::move(s), reply);
    }
  }
}

absl::Status V5Protocol::OnEof() const {
  if (decoder_.buffered() > 0) {
    return absl::DataLossError(absl::StrFormat(
        "connection closed in the middle of an event (%d bytes held back)", decoder_.buffered()));
  }
  return absl::OkStatus();
}

absl::Status V5Protocol::Refusable(absl::Status status, std::string* reply) const {
  if (!absl::IsPermissionDenied(status)) return status;
  AppendError(status.message(), reply);  // the session goes on: receiving is still allowed
  return absl::OkStatus();
}

absl::Status V5Protocol::Fail(absl::Status status, std::string* reply) {
  state_ = State::kClosed;
  AppendError(status.message(), reply);
  return status;
}

void V5Protocol::AppendError(absl::string_view text, std::string* out) const {
  // Encoding a RemoteException cannot fail; long texts are truncated at a UTF-8 boundary.
  (void)v5::Encode(v5::RemoteException{std::string(text)}, out);
}

void V5Protocol::AppendTransmitFail(uint32_t count, std::string* out) const {
  out->append(count, static_cast<char>(v5::EventId::kTransmitFail));
}

ServerProtocol::Encoded V5Protocol::EncodeFrame(const CanFrame& frame, uint8_t* out,
                                                size_t* length) {
  if (fd_enabled()) {
    *length = v5::EncodeFrameV6(frame, out);
    return Encoded::kWritten;
  }
  if (!v5::EncodeCanMessage(frame, out)) return Encoded::kUnsupported;  // CAN FD for a v5 client
  *length = v5::kCanMessageSize;
  return Encoded::kWritten;
}

StatelessEncodeFn V5Protocol::stateless_encoder() const {
  if (state_ != State::kOpen) return nullptr;
  if (fd_enabled()) return &v5::EncodeFrameV6;
  return [](const CanFrame& frame, uint8_t* out) noexcept -> size_t {
    return v5::EncodeCanMessage(frame, out) ? v5::kCanMessageSize : 0;
  };
}

absl::Status V5Protocol::StartPeriodic(int32_t period_ms, int32_t duration_ms,
                                       const CanFrame& frame) {
  return actions_->StartPeriodic(
      {absl::Milliseconds(period_ms), absl::Milliseconds(duration_ms), frame});
}

absl::Status V5Protocol::NeedsVersion6(const v5::Event& event) const {
  return absl::InvalidArgumentError(absl::StrFormat(
      "protocol error: %s is a CAN FD event of protocol version 6; this session opened with "
      "version %u (send BusRequest version 6 to use CAN FD)",
      v5::EventName(event), version_));
}

absl::Status V5Protocol::Handle(v5::Event& event, std::string* reply) {
  if (std::holds_alternative<v5::ConnectionClosed>(event)) {
    return absl::CancelledError("client sent ConnectionClosed");
  }
  switch (state_) {
    case State::kAwaitBusRequest: {
      if (auto* resume = std::get_if<v5::ResumeRequest>(&event))
        return HandleResume(*resume, reply);
      const auto* request = std::get_if<v5::BusRequest>(&event);
      if (request == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("handshake error: expected BusRequest, got ", v5::EventName(event)));
      }
      if (request->version != v5::kProtocolVersion && request->version != v5::kProtocolVersionFd) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "protocol version mismatch: client speaks version %u, server speaks versions %u and "
            "%u (CAN FD)",
            request->version, v5::kProtocolVersion, v5::kProtocolVersionFd));
      }
      bitrate_ = request->bitrate;
      version_ = request->version;
      state_ = State::kAwaitFilterConfig;
      return absl::OkStatus();
    }
    case State::kAwaitFilterConfig: {
      auto* config = std::get_if<v5::FilterConfig>(&event);
      if (config == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "handshake error: expected FilterConfig after BusRequest, got ", v5::EventName(event)));
      }
      absl::StatusOr<std::string> info =
          actions_->OpenBus("", bitrate_, FilterSet(std::move(config->filters)));
      if (!info.ok()) return info.status();
      state_ = State::kOpen;
      (void)v5::Encode(v5::BusResponse{*std::move(info)}, reply);
      return absl::OkStatus();
    }
    case State::kOpen:
      if (auto* msg = std::get_if<v5::CanMessage>(&event)) {
        actions_->Transmit(msg->frame);
        return absl::OkStatus();
      }
      if (auto* start = std::get_if<v5::PeriodicMessageStart>(&event)) {
        return Refusable(StartPeriodic(start->period_ms, start->duration_ms, start->frame), reply);
      }
      if (auto* fd = std::get_if<v5::CanFdMessage>(&event)) {
        if (!fd_enabled()) return NeedsVersion6(event);
        actions_->Transmit(fd->frame);
        return absl::OkStatus();
      }
      if (auto* fd_start = std::get_if<v5::PeriodicFdMessageStart>(&event)) {
        if (!fd_enabled()) return NeedsVersion6(event);
        return Refusable(StartPeriodic(fd_start->period_ms, fd_start->duration_ms, fd_start->frame),
                         reply);
      }
      if (auto* stop = std::get_if<v5::PeriodicMessageStop>(&event)) {
        return actions_->StopPeriodic(stop->arbitration_id);
      }
      if (auto* config = std::get_if<v5::FilterConfig>(&event)) {
        actions_->SetFilters(FilterSet(std::move(config->filters)));
        return absl::OkStatus();
      }
      if (auto* lease = std::get_if<v5::LeaseRequest>(&event)) {
        // A canserver event in version 5 sessions too: a lease has nothing to do with CAN FD.
        const LeaseReply got = actions_->Lease(lease->seconds, lease->token);
        const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(got.remaining));
        (void)v5::Encode(
            v5::LeaseResponse{got.granted, static_cast<uint32_t>(std::min<int64_t>(ms, UINT32_MAX)),
                              got.token, got.text},
            reply);
        return absl::OkStatus();
      }
      if (auto* resume = std::get_if<v5::ResumeRequest>(&event))
        return HandleResume(*resume, reply);
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected ", v5::EventName(event), " from client"));
    case State::kClosed:
      break;
  }
  return absl::FailedPreconditionError("session is closed");
}

namespace {
uint32_t Milliseconds32(absl::Duration d) {
  return static_cast<uint32_t>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, UINT32_MAX));
}
}  // namespace

absl::Status V5Protocol::HandleResume(const v5::ResumeRequest& request, std::string* reply) {
  if (state_ == State::kAwaitBusRequest) {
    if (request.token.empty()) {
      return absl::InvalidArgumentError(
          "handshake error: a ResumeRequest before BusRequest must carry the token of the "
          "session to resume");
    }
    const ResumeReply got = actions_->ResumeSession(request.token, request.frames_received);
    if (got.kind == ResumeReply::Kind::kHandedOver) {
      state_ = State::kClosed;
      return absl::CancelledError(got.text);  // the resumed session answers the client
    }
    // Refused: the client hears why and may open a new session on this connection.
    (void)v5::Encode(v5::ResumeResponse{v5::ResumeStatus::kRefused, 0, 0, 0, 0, "", got.text},
                     reply);
    return absl::OkStatus();
  }
  if (!request.token.empty()) {
    return absl::InvalidArgumentError(
        "ResumeRequest with a token must be the first event of a new connection (this one has "
        "its session)");
  }
  const ResumeReply got = actions_->KeepForResume();
  const bool kept = got.kind == ResumeReply::Kind::kResumable;
  (void)v5::Encode(
      v5::ResumeResponse{kept ? v5::ResumeStatus::kResumable : v5::ResumeStatus::kRefused,
                         Milliseconds32(got.grace), 0, 0, 0, got.token, got.text},
      reply);
  return absl::OkStatus();
}

void V5Protocol::AppendResumed(const ResumeReport& report, std::string* out) const {
  (void)v5::Encode(v5::ResumeResponse{v5::ResumeStatus::kResumed, Milliseconds32(report.grace),
                                      Milliseconds32(report.away), report.frames_lost,
                                      report.frames_from_client, report.token, report.text},
                   out);
}

const FrontEnd kV5FrontEnd = {
    [](SessionActions* actions) -> std::unique_ptr<ServerProtocol> {
      return std::make_unique<V5Protocol>(actions);
    },
    [](absl::string_view reason, std::string* out) {
      (void)v5::Encode(v5::RemoteException{std::string(reason)}, out);
    },
    /*tls=*/true,
};

}  // namespace canserver
