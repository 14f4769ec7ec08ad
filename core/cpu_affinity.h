// --cpu-affinity CAN_CPUS/IO_CPUS: where the server's threads run. Each list is CPU numbers and
// ranges ("0", "0,2", "1-3"); CAN threads take the CAN list's CPUs in turn (channel i on
// CAN_CPUS[i % n]), io threads the IO list's (thread i on IO_CPUS[i % n]), one CPU each. Either
// side may be empty ("0/" pins only the CAN threads, "/1" only the io threads).
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canserver {

struct CpuAffinity {
  std::vector<int> can_cpus;
  std::vector<int> io_cpus;
  bool empty() const { return can_cpus.empty() && io_cpus.empty(); }
  // The CPU for thread `index` of a list; -1: not pinned.
  static int For(const std::vector<int>& cpus, size_t index) {
    return cpus.empty() ? -1 : cpus[index % cpus.size()];
  }
};

// Parses "CAN_CPUS/IO_CPUS"; "" is no pinning. Errors name the part that is wrong.
absl::StatusOr<CpuAffinity> ParseCpuAffinity(absl::string_view text);

}  // namespace canserver
