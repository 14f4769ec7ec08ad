// libFuzzer target: socketcand's element parser and the server's socketcand session logic, fed
// arbitrary client bytes in arbitrary splits, with the transmit queue filling and draining.
// Checks, besides memory safety (ASan/UBSan):
//   - every action carries a valid frame or job, and none comes before "open" or after the end;
//   - every reply is a run of well-formed elements (nothing a client's parser could mistake);
//   - frames encoded for the client fit kMaxFrameElementLength.
// Run: build-fuzz/tests/socketcand_fuzz -max_total_time=60 CORPUS_DIR tests/fuzz/socketcand_corpus
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/socketcand_codec.h"
#include "core/socketcand_protocol.h"

namespace canserver {
namespace {

class CheckingActions : public SessionActions {
 public:
  absl::StatusOr<std::string> OpenBus(absl::string_view channel, int32_t,
                                      FilterSet filters) override {
    if (++opens > 1 || channel.empty() || channel.size() > 16) std::abort();
    if (filters.filters().size() > kMaxFilters) std::abort();
    if (channel == "bad") return absl::NotFoundError("no channel 'bad'");
    return std::string("fuzz channel");
  }
  void SetFilters(FilterSet filters) override {
    Check();
    if (filters.filters().size() > kMaxFilters) std::abort();
  }
  void Transmit(const CanFrame& frame) override {
    Check();
    if (blocked) std::abort();  // the session must stop at a full queue
    CheckFrame(frame);
  }
  bool TransmitBlocked() const override { return blocked; }
  absl::Status StartPeriodic(const PeriodicRequest& r) override {
    Check();
    if (r.period <= absl::ZeroDuration() || r.duration != absl::ZeroDuration()) std::abort();
    CheckFrame(r.frame);
    return absl::OkStatus();
  }
  absl::Status StopPeriodic(uint32_t id) override {
    Check();
    if (id > kCanExtIdMax) std::abort();
    return absl::OkStatus();
  }
  static void CheckFrame(const CanFrame& f) {
    if (f.id > kCanExtIdMax || (!f.extended() && f.id > kCanStdIdMax)) std::abort();
    if (f.fd() ? !IsCanFdLength(f.len) || f.remote() : f.len > 8) std::abort();
    char text[socketcand::kMaxFrameElementLength];
    if (socketcand::FormatRawFrame(f, text) > sizeof text) std::abort();
  }
  void Check() const {
    if (opens != 1 || closed) std::abort();
  }
  int opens = 0;
  bool closed = false;
  bool blocked = false;
};

// Every byte of `reply` belongs to a well-formed element.
void CheckReply(const std::string& reply) {
  socketcand::ElementParser parser;
  size_t pos = 0;
  while (true) {
    const auto kind = parser.Next(reply, &pos);
    if (kind == socketcand::ElementParser::Kind::kGarbage) std::abort();
    if (kind == socketcand::ElementParser::Kind::kNeedMore) break;
  }
  if (parser.in_element()) std::abort();
}

}  // namespace
}  // namespace canserver

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canserver;
  if (size < 2) return 0;
  const size_t chunk = 1 + data[0] % 64;  // how the stream is split
  const uint8_t blocking = data[1];       // which pieces find the transmit queue full
  data += 2;
  size -= 2;

  CheckingActions actions;
  SocketcandProtocol session(&actions);
  std::string reply;
  session.Greet(&reply);
  int64_t t = 1'700'000'000'000'000'000;
  size_t piece_index = 0;
  for (size_t pos = 0; pos < size && !actions.closed; pos += chunk, ++piece_index) {
    const auto piece = absl::MakeConstSpan(data + pos, std::min(chunk, size - pos));
    actions.blocked = (blocking >> (piece_index % 8)) & 1;
    absl::Status s = session.OnBytes(piece, &reply);
    if (s.ok() && actions.blocked) {
      actions.blocked = false;
      s = session.Resume(&reply);
    }
    if (!s.ok()) actions.closed = true;
    if (session.is_open()) {
      // Frames from the bus, including the ids and bytes just seen, through the mode's rules.
      CanFrame f = CanFrame::Classic(piece[0] & 0x7FF, {piece[0], piece.back()});
      f.timestamp_ns = t += 1'000'000;
      if (piece.size() > 3) f.flags |= piece[1] & (kCanFlagExtended | kCanFlagRemote | kCanFlagFd);
      if (f.fd()) f.flags &= static_cast<uint8_t>(~kCanFlagRemote);
      uint8_t out[socketcand::kMaxFrameElementLength];
      size_t len = 0;
      if (session.EncodeFrame(f, out, &len) == ServerProtocol::Encoded::kWritten) {
        if (len > sizeof out) std::abort();
        reply.append(reinterpret_cast<char*>(out), len);
      }
      session.OnTick(absl::FromUnixNanos(t), &reply);
    }
  }
  CheckReply(reply);
  (void)session.OnEof();
  return 0;
}
