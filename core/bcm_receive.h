// BcmReceive: socketcand's BCM-mode receive commands with the semantics of the kernel's broadcast
// manager (net/can/bcm.c, RX_SETUP), applied per client to the frames its ring brings, so they
// work the same on every backend:
//
//   subscribe  every frame of the id (RX_FILTER_ID)
//   filter     a frame of the id only when the bytes under the mask changed since the last one
//              passed (the first always passes)
//   muxfilter  as filter, with one mask per multiplex value: the first 8-byte tuple says where the
//              multiplex value sits, each further tuple gives a value and the mask for it
//   throttle   with an interval, at most one frame per interval per id; a change in between is
//              kept (the latest) and delivered when the interval ends (TakeDue), as the kernel's
//              throttle timer does
//
//   BcmReceive rx;
//   rx.Subscribe({0x123, false}, absl::ZeroDuration());
//   if (rx.Accept(frame)) deliver(frame);
//   rx.TakeDue(now_ns, &frames);   // throttled updates whose time has come
//
// Single-owner (the session's io thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/filter.h"
#include "core/frame.h"

namespace canserver {

class BcmReceive {
 public:
  using Mask = std::array<uint8_t, 8>;
  struct Key {
    uint32_t id = 0;
    bool extended = false;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  static constexpr size_t kMaxJobs = kMaxFilters;  // one channel filter each
  static constexpr size_t kMaxMuxTuples = 257;     // the mux mask and up to 256 values

  // Each replaces what the id had. ResourceExhausted beyond kMaxJobs ids.
  absl::Status Subscribe(Key key, absl::Duration throttle);
  absl::Status Filter(Key key, absl::Duration throttle, const Mask& mask);
  // tuples[0]: where the multiplex value sits; tuples[1..]: value and mask (2..257 tuples).
  absl::Status MuxFilter(Key key, absl::Duration throttle, std::vector<Mask> tuples);
  // False if the id had nothing.
  bool Unsubscribe(Key key);

  // Whether `frame` goes to the client now (timed by frame.timestamp_ns).
  bool Accept(const CanFrame& frame);
  // Appends the throttled updates due at `now_ns` (CLOCK_REALTIME) to *out.
  void TakeDue(int64_t now_ns, std::vector<CanFrame>* out);

  // Exact-id filters for the channel, so the CAN thread brings only these ids (none: a filter
  // that matches nothing).
  FilterSet ChannelFilters() const;
  size_t size() const { return jobs_.size(); }

 private:
  enum class Kind { kAll, kContent, kMux };
  struct Job {
    Kind kind = Kind::kAll;
    int64_t throttle_ns = 0;
    std::vector<Mask> masks;                // kContent: 1; kMux: the tuples
    std::vector<std::optional<Mask>> last;  // per mask: the content last passed
    int64_t last_sent_ns = INT64_MIN;       // throttle
    std::optional<CanFrame> held;           // the latest change while throttled
  };
  absl::Status Put(Key key, Job job);
  // Delivery through the throttle: true to send now; else the frame is held.
  bool Throttle(Job& job, const CanFrame& frame);

  std::map<Key, Job> jobs_;
};

}  // namespace canserver
