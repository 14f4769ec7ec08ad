// libFuzzer target: the protocol v5/v6 stream decoder and the server's session logic, fed arbitrary
// client bytes in arbitrary splits. Checks, besides memory safety (ASan/UBSan):
//   - every event the decoder yields re-encodes, and decodes back to the same event;
//   - the session never acts after it closed and never opens the bus twice.
// Run: build-fuzz/tests/v5_fuzz -max_total_time=60 CORPUS_DIR tests/fuzz/corpus
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/v5_codec.h"
#include "core/v5_protocol.h"

namespace canserver {
namespace {

class CountingActions : public SessionActions {
 public:
  absl::StatusOr<std::string> OpenBus(absl::string_view, int32_t, FilterSet filters) override {
    if (++opens > 1 || filters.filters().size() > kMaxFilters) std::abort();
    return std::string("fuzz channel");
  }
  void SetFilters(FilterSet) override { Check(); }
  void Transmit(const CanFrame& frame) override {
    Check();
    if (frame.id > kCanExtIdMax) std::abort();
    if (frame.fd() ? !IsCanFdLength(frame.len) || frame.remote() : frame.len > 8) std::abort();
  }
  absl::Status StartPeriodic(const PeriodicRequest& s) override {
    Check();
    if (s.period <= absl::ZeroDuration() || s.duration < absl::ZeroDuration()) std::abort();
    return jobs++ < 8 ? absl::OkStatus() : absl::ResourceExhaustedError("too many");
  }
  absl::Status StopPeriodic(uint32_t) override {
    Check();
    return absl::OkStatus();
  }
  void Check() const {
    if (opens != 1 || closed) std::abort();  // acting before the handshake or after the end
  }
  int opens = 0;
  int jobs = 0;
  bool closed = false;
};

void CheckRoundTrip(const v5::Event& event) {
  std::string bytes;
  if (!v5::Encode(event, &bytes).ok()) std::abort();  // whatever decodes must encode
  v5::Event again;
  auto used = v5::DecodeEvent(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), &again);
  if (!used.ok() || *used != bytes.size()) std::abort();
  if (std::holds_alternative<v5::CanMessage>(event)) {
    // Timestamps pass through nanoseconds; compare the frame itself.
    if (!(std::get<v5::CanMessage>(again).frame == std::get<v5::CanMessage>(event).frame))
      std::abort();
  } else if (std::holds_alternative<v5::CanFdMessage>(event)) {
    if (!(std::get<v5::CanFdMessage>(again).frame == std::get<v5::CanFdMessage>(event).frame))
      std::abort();
  } else if (!(again == event)) {
    std::abort();
  }
}

}  // namespace
}  // namespace canserver

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canserver;
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 32;  // the first byte picks how the stream is split
  ++data;
  --size;

  v5::StreamDecoder decoder;
  CountingActions actions;
  V5Protocol session(&actions);
  bool session_open = true;
  for (size_t pos = 0; pos < size; pos += chunk) {
    const auto piece = absl::MakeConstSpan(data + pos, std::min(chunk, size - pos));
    decoder.Append(piece);
    while (true) {
      auto next = decoder.Next();
      if (!next.ok() || !next->has_value()) break;
      CheckRoundTrip(**next);
    }
    if (session_open) {
      std::string reply;
      if (!session.OnBytes(piece, &reply).ok()) {
        session_open = false;
        actions.closed = true;
      }
      if (reply.size() > 2 + 255 + 2 + 255) std::abort();  // BusResponse and/or RemoteException
    }
  }
  (void)session.OnEof();
  return 0;
}
