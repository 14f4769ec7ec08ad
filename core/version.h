// canserver's version, from the project() call in the top-level CMakeLists.txt.
#pragma once

namespace canserver {

inline constexpr char kVersion[] = CANSERVER_VERSION;

}  // namespace canserver
