// candump parity on a real kernel: the same frames on vcan0 through can-utils' candump and
// through `canremote dump` give the same text, byte for byte, in every timestamp mode (#25).
// vcan hands every socket the same receive timestamp, so even -t a lines must match.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vcan/vcan_fixture.h"

namespace canserver {
namespace {

using testing::VcanTest;

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
    EXPECT_EQ(got, want) << "canremote dump " << modes[i];
  }
}

}  // namespace
}  // namespace canserver
