#include "core/capture_protocol.h"

#include <cstring>

#include "core/text_format.h"

namespace canserver {

void CaptureProtocol::Greet(std::string* reply) {
  absl::StatusOr<std::string> info = actions_->OpenBus("", 0, FilterSet());
  if (!info.ok()) {
    refused_ = info.status();
    return;
  }
  open_ = true;
  *reply += pcapng::SectionHeader();
  *reply += pcapng::InterfaceDescription(ChannelNameFromInfo(*info), BitrateFromInfo(*info));
}

absl::Status CaptureProtocol::OnBytes(absl::Span<const uint8_t>, std::string*) {
  // A refused open ends the session at the first event; a monitor has nothing to say otherwise.
  return refused_;
}

ServerProtocol::Encoded CaptureProtocol::EncodeFrame(const CanFrame& frame, uint8_t* out,
                                                     size_t* length) {
  const std::string block = pcapng::Packet(0, frame);
  std::memcpy(out, block.data(), block.size());
  *length = block.size();
  return Encoded::kWritten;
}

const FrontEnd kCaptureFrontEnd = {
    [](SessionActions* actions) -> std::unique_ptr<ServerProtocol> {
      return std::make_unique<CaptureProtocol>(actions);
    },
    [](absl::string_view, std::string*) {},  // any text would corrupt the pcapng stream
};

}  // namespace canserver
