// The usage examples in the headers' opening comments, compiled and run as written (with their
// "..." filled in), so they cannot drift from the API (#26).
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "core/v5_codec.h"
#include "gtest/gtest.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"

namespace canserver {
namespace {

TEST(HeaderExamplesTest, V5Codec) {
  const CanFrame frame = CanFrame::Classic(0x123, {1, 2});
  // core/v5_codec.h:
  uint8_t wire[v5::kCanMessageSize];
  v5::EncodeCanMessage(frame, wire);  // hot path: 23 bytes, no allocation
  v5::StreamDecoder dec;
  const absl::string_view bytes(reinterpret_cast<const char*>(wire), sizeof wire);
  dec.Append(bytes);
  int events = 0;
  while (true) {
    auto ev = dec.Next();  // error, nullopt (need more bytes) or an event
    if (!ev.ok() || !ev->has_value()) break;
    ++events;
  }
  EXPECT_EQ(events, 1);
}

TEST(HeaderExamplesTest, EventLoop) {
  UniqueFd event(::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC));
  const int fd = event.get();
  bool running = true;
  const int timeout_ms = 1000;
  // io/event_loop.h:
  std::unique_ptr<EventLoop> loop = *EventLoop::Create();
  (void)loop->Add(fd, EPOLLIN, [&](uint32_t events) { running = (events & EPOLLIN) == 0; });
  while (running) (void)loop->Poll(timeout_ms);
  EXPECT_FALSE(running);
  loop->Remove(fd);
}

}  // namespace
}  // namespace canserver
