// Sequence numbers in canbench's frames, for every dlc 0..8.
//
// A frame carries the low bits of its 32-bit sequence number in the arbitration id (11 bits for a
// standard id, 29 for an extended one) and, with dlc >= 4, the whole number big-endian in
// data[0..3] (readable in candump); with dlc 1..3 the data bytes carry the bits above the id's.
// So a frame holds 32 sequence bits whenever dlc >= 4, or dlc >= 1 with an extended id, or dlc 3
// with a standard id. With fewer (standard id and dlc 0..2: 11, 19 or 27 bits; extended id and
// dlc 0: 29 bits) SequenceTracker restores the high bits from the last number seen, which is exact
// unless half the window (1,024 frames for dlc 0 with standard ids) is lost in a row. Loss itself
// is counted as sent minus received, so it stays exact either way.
//
// Pure functions and one small per-reader class; owned by the thread that reads a client.
#pragma once

#include <cstdint>

#include "core/frame.h"

namespace canserver {

inline int IdSequenceBits(bool extended) { return extended ? 29 : 11; }

// The frame for sequence number `seq` with `dlc` data bytes (0..8).
inline CanFrame MakeSequencedFrame(uint32_t seq, bool extended, int dlc) {
  const uint32_t id_mask = (uint32_t{1} << IdSequenceBits(extended)) - 1;
  CanFrame f = CanFrame::Classic(seq & id_mask, {}, extended);
  f.len = static_cast<uint8_t>(dlc);
  if (dlc >= 4) {
    f.data[0] = static_cast<uint8_t>(seq >> 24);
    f.data[1] = static_cast<uint8_t>(seq >> 16);
    f.data[2] = static_cast<uint8_t>(seq >> 8);
    f.data[3] = static_cast<uint8_t>(seq);
  } else {
    const uint64_t rest = uint64_t{seq} >> IdSequenceBits(extended);
    for (int i = 0; i < dlc; ++i) f.data[i] = static_cast<uint8_t>(rest >> (8 * i));
  }
  return f;
}

// Restores sequence numbers in the order a reader receives them.
class SequenceTracker {
 public:
  uint32_t Recover(const CanFrame& f) {
    uint32_t seq;
    if (f.len >= 4) {
      seq = (uint32_t{f.data[0]} << 24) | (uint32_t{f.data[1]} << 16) | (uint32_t{f.data[2]} << 8) |
            f.data[3];
    } else {
      const int id_bits = IdSequenceBits(f.extended());
      uint64_t v = f.id & ((uint32_t{1} << id_bits) - 1);
      for (int i = 0; i < f.len; ++i) v |= uint64_t{f.data[i]} << (id_bits + 8 * i);
      const int bits = id_bits + 8 * f.len;
      seq = static_cast<uint32_t>(v);
      if (bits < 32) seq = Unwrap(seq, bits);
    }
    if (static_cast<int32_t>(seq - next_) >= 0) next_ = seq + 1;
    return seq;
  }

 private:
  // The number congruent to `low` modulo 2^bits that is nearest to the one expected next.
  uint32_t Unwrap(uint32_t low, int bits) const {
    const uint32_t window = uint32_t{1} << bits;
    uint32_t candidate = (next_ & ~(window - 1)) | low;
    const int32_t ahead = static_cast<int32_t>(candidate - next_);
    if (ahead >= static_cast<int32_t>(window / 2)) candidate -= window;
    if (ahead < -static_cast<int32_t>(window / 2)) candidate += window;
    return candidate;
  }

  uint32_t next_ = 0;  // canbench numbers frames from 0
};

}  // namespace canserver
