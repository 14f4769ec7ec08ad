#include "core/frame.h"

#include "core/text_format.h"

namespace canserver {

// One text form for frames everywhere: the one can-utils users read.
std::string ToString(const CanFrame& frame) { return FormatCansend(frame); }

}  // namespace canserver
