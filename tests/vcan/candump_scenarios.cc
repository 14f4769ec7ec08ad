// candump parity on a real kernel: the same frames on vcan0 through can-utils' candump and
// through `canremote dump` give the same text, byte for byte, in every timestamp mode (#25).
// vcan hands every socket the same receive timestamp, so even -t a lines match, to the
// microsecond the protocol's f64 timestamps allow (see MaskMicros).
#include <cctype>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using testing::VcanTest;

// A line with its timestamp's microseconds masked, and the timestamp in µs (-1: none). Protocol
// v5/v6 carries a frame's time as f64 seconds: at today's epoch that is exact to ±0.12 µs, so
// canremote's microsecond digit may be one off candump's (the kernel's) where the time lies
// that close to a microsecond boundary. Everything else must be identical.
std::pair<std::string, int64_t> MaskMicros(std::string line) {
  const size_t open = line.find('(');
  const size_t dot = line.find('.', open == std::string::npos ? 0 : open);
  const size_t close = line.find(')', dot == std::string::npos ? 0 : dot);
  if (open == std::string::npos || dot == std::string::npos || close != dot + 7) return {line, -1};
  size_t secs_at = dot;
  while (secs_at > open + 1 && std::isdigit(static_cast<unsigned char>(line[secs_at - 1]))) {
    --secs_at;
  }
  const int64_t us = std::stoll(line.substr(secs_at, dot - secs_at)) * 1'000'000 +
                     std::stoll(line.substr(dot + 1, 6));
  line.replace(dot + 1, 6, "uuuuuu");
  return {line, us};
}

// 30. canremote dump prints what candump prints: standard, extended (and the standard ids
// indented after it), remote, CAN FD with flags, no data; with -t a, A, d, z and -x (where only
// candump's TX, for frames its own host sent, reads RX).
TEST_F(VcanTest, Scenario30_CanremoteDumpMatchesCandump) {
  auto ts = Serve("vcan0");
  ASSERT_NE(ts, nullptr);
  const std::vector<std::string> frames = {"123#112233", "005#",         "1ABCDEF0#FF", "7FF#R",
                                           "321#0102",   "123##1112233", "100##0"};
  const std::string canremote = testing::BuildDir() + "/tools/canremote";
  const std::string n = std::to_string(frames.size());
  const std::vector<std::string> modes = {"", "-t a", "-t A", "-t d", "-t z", "-x"};
  std::vector<std::pair<std::string, std::string>> files;  // candump's, canremote's
  const int receivers = testing::Candump::Receivers("vcan0");
  for (size_t i = 0; i < modes.size(); ++i) {
    const std::string base = absl::StrCat("/tmp/parity-", ::getpid(), "-", i);
    files.emplace_back(base + ".candump", base + ".canremote");
    (void)std::system(absl::StrCat("TZ=UTC timeout 40 candump ", modes[i], " -n ", n, " vcan0 > ",
                                   files[i].first, " 2>&1 &")
                          .c_str());
    (void)std::system(absl::StrCat("TZ=UTC timeout 40 ", canremote, " dump ", modes[i], " -n ", n,
                                   " -c ", ts->address(), " > ", files[i].second, " 2>&1 &")
                          .c_str());
  }
  // Every candump and every canremote session listening before the first frame.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((testing::Candump::Receivers("vcan0") < receivers + static_cast<int>(modes.size()) ||
          ts->server().channel().subscriber_count() < modes.size()) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  absl::SleepFor(absl::Milliseconds(300));
  for (const std::string& f : frames) {
    ASSERT_EQ(testing::RunShell("cansend vcan0 " + f).second, 0) << f;
    absl::SleepFor(absl::Milliseconds(5));  // distinct delta timestamps
  }
  for (size_t i = 0; i < modes.size(); ++i) {
    std::vector<std::string> want =
        testing::Candump::ReadLines(files[i].first, frames.size(), absl::Seconds(20));
    if (modes[i] == "-x") {
      // candump -x says TX for frames sent from its own host (cansend here). A client of canserver
      // is never that host: every frame reaches it from the bus, RX (the protocol has no such bit).
      for (std::string& line : want) {
        if (const size_t at = line.find("  TX "); at != std::string::npos)
          line.replace(at, 5, "  RX ");
      }
    }
    const std::vector<std::string> got =
        testing::Candump::ReadLines(files[i].second, frames.size(), absl::Seconds(20));
    ASSERT_EQ(want.size(), frames.size()) << "candump " << modes[i];
    ASSERT_EQ(got.size(), want.size()) << "canremote dump " << modes[i];
    for (size_t k = 0; k < want.size(); ++k) {
      const auto [want_text, want_us] = MaskMicros(want[k]);
      const auto [got_text, got_us] = MaskMicros(got[k]);
      EXPECT_EQ(got_text, want_text) << "canremote dump " << modes[i] << ": " << got[k];
      EXPECT_LE(std::abs(got_us - want_us), 2)
          << "canremote dump " << modes[i] << ": " << got[k] << " / candump: " << want[k];
    }
  }
}

}  // namespace
}  // namespace canserver
