// Small helpers missing from Debian 12's abseil (20220623 has no RETURN_IF_ERROR /
// ASSIGN_OR_RETURN).
#pragma once

#include <cerrno>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define CANSERVER_CONCAT_INNER(a, b) a##b
#define CANSERVER_CONCAT(a, b) CANSERVER_CONCAT_INNER(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                   \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr());` — declares x from the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CANSERVER_CONCAT(_status_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

namespace canserver {

// absl::ErrnoToStatus with the current errno: "bind(0.0.0.0:54701): Address already in use".
inline absl::Status ErrnoStatus(absl::string_view what, int err = errno) {
  return absl::ErrnoToStatus(err, what);
}

}  // namespace canserver
