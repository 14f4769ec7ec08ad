#include "core/cpu_affinity.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace canserver {
namespace {

constexpr int kMaxCpu = 1023;  // CPU_SETSIZE

absl::StatusOr<std::vector<int>> ParseList(absl::string_view text, absl::string_view side) {
  std::vector<int> cpus;
  if (text.empty()) return cpus;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::vector<absl::string_view> range = absl::StrSplit(part, absl::MaxSplits('-', 1));
    int lo = 0, hi = 0;
    if (!absl::SimpleAtoi(range[0], &lo) ||
        (range.size() == 2 ? !absl::SimpleAtoi(range[1], &hi) : (hi = lo, false)) || lo < 0 ||
        hi < lo || hi > kMaxCpu) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cpu-affinity: '", part, "' in the ", side,
                       " list is no CPU number or range (e.g. 0, 0,2 or 1-3)"));
    }
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

}  // namespace

absl::StatusOr<CpuAffinity> ParseCpuAffinity(absl::string_view text) {
  CpuAffinity a;
  if (text.empty()) return a;
  std::vector<absl::string_view> sides = absl::StrSplit(text, '/');
  if (sides.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cpu-affinity wants CAN_CPUS/IO_CPUS, e.g. 0/1 or 0/1-3 (got '", text, "')"));
  }
  auto can = ParseList(sides[0], "CAN thread");
  if (!can.ok()) return can.status();
  auto io = ParseList(sides[1], "io thread");
  if (!io.ok()) return io.status();
  a.can_cpus = *std::move(can);
  a.io_cpus = *std::move(io);
  return a;
}

}  // namespace canserver
