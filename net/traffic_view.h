// TrafficView: what the status page shows of one channel's traffic — a table per arbitration id
// (count, rate, mean period and its jitter, last data, last seen) and the newest frames — summed
// up on the server, so a browser gets a summary a second, never every frame of a busy bus.
//
// The bus load's history is kept whether anyone looks or not: once a second its thread reads the
// channel's counters (wire bits, frames) into a ring of the last kHistory seconds, so the page's
// graph shows the last minutes as soon as it opens (HistoryJson; nothing is subscribed for it).
//
// The table costs nothing until someone looks: the first Json() subscribes it to the channel like a
// monitor client (a ring the CAN thread fills; frames it could not take are counted, shown as
// "not seen"), a thread of its own drains the ring every 100 ms into the table, and 10 s after
// the last Json() it unsubscribes and sleeps. It is no session: the status and metrics leave it
// out (RemoteServer::Status), and it never transmits.
//
//   TrafficView view(channel, /*subscriber_id=*/kViewIds + 0);
//   std::string json = view.Json(absl::Now());    // HTTP thread, once a second
//
// Thread-safety: Json from any thread; its own thread otherwise; the channel outlives it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "io/can_channel.h"
#include "io/subscriber.h"
#include "io/wakeup.h"

namespace canserver {

class TrafficView {
 public:
  // Subscriber ids of views: above any session's.
  static constexpr uint64_t kIdBase = uint64_t{1} << 62;
  static constexpr size_t kMaxIds = 2048;      // ids in the table; more are counted, not listed
  static constexpr size_t kTraceFrames = 100;  // the newest frames kept
  static constexpr absl::Duration kIdleAfter = absl::Seconds(10);
  static constexpr size_t kHistory = 300;                  // seconds of bus load kept
  static constexpr const char* kProtocol = "status page";  // SubscriberInfo::protocol

  TrafficView(CanChannel* channel, uint64_t subscriber_id);
  ~TrafficView();
  TrafficView(const TrafficView&) = delete;
  TrafficView& operator=(const TrafficView&) = delete;

  // {"ids": [...], "trace": [...], "frames", "not_seen", "ids_not_listed", "since"} as JSON;
  // starts watching the channel if it was not.
  std::string Json();
  // {"history": [[unix seconds, wire bits/s, frames/s], ...]}, oldest first; subscribes nothing.
  std::string HistoryJson();

 private:
  struct IdStats {
    uint32_t id = 0;
    uint8_t flags = 0;
    uint8_t len = 0;
    uint8_t data[kCanFdMaxLen] = {};
    uint64_t count = 0;
    int64_t last_ns = 0;
    // Welford's running mean and sum of squares of the intervals between frames.
    double period_mean_ns = 0;
    double period_m2 = 0;
  };
  void Run(std::stop_token stop);
  // Once a second: the channel's rates since the last sample into history_. Under mu_.
  void Sample(int64_t now_ns);
  // Adds frames to the table and the trace. Under mu_.
  void Add(const CanFrame* frames, size_t n);

  CanChannel* const channel_;
  const uint64_t subscriber_id_;
  std::shared_ptr<const Wakeup> wakeup_;
  std::mutex mu_;
  std::condition_variable_any wake_;
  std::shared_ptr<Subscriber> subscriber_;        // guarded by mu_: null while nobody looks
  absl::Time last_asked_ = absl::InfinitePast();  // guarded by mu_
  std::map<uint32_t, IdStats> ids_;               // guarded by mu_: key id | extended << 31
  std::deque<CanFrame> trace_;                    // guarded by mu_
  uint64_t frames_ = 0;                           // guarded by mu_
  uint64_t ids_not_listed_ = 0;                   // guarded by mu_: frames of ids beyond kMaxIds
  int64_t since_ns_ = 0;                          // guarded by mu_: when the view started
  struct Point {
    int64_t at_ns;
    uint64_t wire_bits;  // counters at that moment
    uint64_t frames;
  };
  std::deque<Point> history_;  // guarded by mu_: one a second, kHistory + 1 at most
  std::jthread thread_;
};

}  // namespace canserver
