#include "core/filter.h"

#include "absl/strings/str_format.h"

namespace canserver {

std::string ToString(const CanFilter& filter) {
  std::string out = absl::StrFormat("%X:%X", filter.can_id, filter.can_mask);
  if (filter.extended.has_value()) out += *filter.extended ? ":ext" : ":std";
  return out;
}

}  // namespace canserver
