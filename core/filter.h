// CAN receive filters with python-can semantics.
//
// A filter is {can_id, can_mask[, extended]}. A frame passes a filter when
// (frame.id & can_mask) == (can_id & can_mask) and, if `extended` is given, the frame's id type
// equals it. A FilterSet passes a frame when it is empty or any of its filters passes it.
//
//   FilterSet set({{.can_id = 0x100, .can_mask = 0x700}});
//   if (set.Matches(frame)) ...
//
// Immutable after construction, so any thread may call Matches() on a set it can see.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/frame.h"

namespace canserver {

struct CanFilter {
  uint32_t can_id = 0;
  uint32_t can_mask = 0;
  std::optional<bool> extended;  // unset: matches standard and extended ids

  bool Matches(const CanFrame& frame) const {
    if (extended.has_value() && *extended != frame.extended()) return false;
    return (frame.id & can_mask) == (can_id & can_mask);
  }
  friend bool operator==(const CanFilter&, const CanFilter&) = default;
};

// The protocol limits a FilterConfig to 255 filters (a u8 count).
inline constexpr size_t kMaxFilters = 255;

class FilterSet {
 public:
  FilterSet() = default;
  explicit FilterSet(std::vector<CanFilter> filters) : filters_(std::move(filters)) {}
  // A set that passes no frame: one filter on bit 31, which no frame's id has.
  static FilterSet Nothing() { return FilterSet({{0x80000000u, 0x80000000u, std::nullopt}}); }

  bool Matches(const CanFrame& frame) const {
    if (filters_.empty()) return true;
    for (const CanFilter& f : filters_) {
      if (f.Matches(frame)) return true;
    }
    return false;
  }
  bool empty() const { return filters_.empty(); }
  const std::vector<CanFilter>& filters() const { return filters_; }

 private:
  std::vector<CanFilter> filters_;
};

// "123:7FF" / "1ABCDEF0:1FFFFFFF:ext" style text for logs.
std::string ToString(const CanFilter& filter);

}  // namespace canserver
