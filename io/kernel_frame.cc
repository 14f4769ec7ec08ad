#include "io/kernel_frame.h"

#include <algorithm>
#include <cstring>

namespace canserver {

void ToKernel(const CanFrame& in, canfd_frame* out, size_t* mtu) {
  std::memset(out, 0, sizeof *out);
  out->can_id = in.id;
  if (in.extended()) out->can_id |= CAN_EFF_FLAG;
  if (in.remote()) out->can_id |= CAN_RTR_FLAG;
  if (in.error()) out->can_id |= CAN_ERR_FLAG;
  out->len = in.len;
  std::memcpy(out->data, in.data, in.len);
  if (in.fd()) {
    if (in.flags & kCanFlagBrs) out->flags |= CANFD_BRS;
    if (in.flags & kCanFlagEsi) out->flags |= CANFD_ESI;
    *mtu = CANFD_MTU;
  } else {
    *mtu = CAN_MTU;
  }
}

void FromKernel(const canfd_frame& in, size_t bytes, CanFrame* out) {
  out->flags = 0;
  if (in.can_id & CAN_EFF_FLAG) out->flags |= kCanFlagExtended;
  if (in.can_id & CAN_RTR_FLAG) out->flags |= kCanFlagRemote;
  if (in.can_id & CAN_ERR_FLAG) out->flags |= kCanFlagError;
  out->id = in.can_id & ((in.can_id & CAN_ERR_FLAG)   ? CAN_ERR_MASK
                         : (in.can_id & CAN_EFF_FLAG) ? CAN_EFF_MASK
                                                      : CAN_SFF_MASK);
  // The byte count the kernel returned tells classic from FD frames.
  if (bytes == CANFD_MTU) {
    out->flags |= kCanFlagFd;
    if (in.flags & CANFD_BRS) out->flags |= kCanFlagBrs;
    if (in.flags & CANFD_ESI) out->flags |= kCanFlagEsi;
    out->len = std::min<uint8_t>(in.len, kCanFdMaxLen);
  } else {
    out->len = std::min<uint8_t>(in.len, kCanClassicMaxLen);
  }
  std::memcpy(out->data, in.data, out->len);
}

}  // namespace canserver
