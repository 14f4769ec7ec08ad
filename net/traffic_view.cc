#include "net/traffic_view.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/text_format.h"
#include "io/clock.h"
#include "nlohmann/json.hpp"

namespace canserver {
namespace {
constexpr absl::Duration kDrainEvery = absl::Milliseconds(100);
constexpr size_t kRingFrames = 1 << 16;  // 100 ms of a saturated 1 Mbit/s bus, with room
}  // namespace

TrafficView::TrafficView(CanChannel* channel, uint64_t subscriber_id)
    : channel_(channel), subscriber_id_(subscriber_id) {
  if (absl::StatusOr<Wakeup> w = Wakeup::Create(); w.ok()) {
    wakeup_ = std::make_shared<Wakeup>(*std::move(w));
  }
  thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

TrafficView::~TrafficView() {
  thread_.request_stop();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (subscriber_ != nullptr) channel_->Unsubscribe(subscriber_id_);
}

std::string TrafficView::Json() {
  using nlohmann::json;
  std::unique_lock<std::mutex> lock(mu_);
  last_asked_ = absl::Now();
  if (subscriber_ == nullptr) {
    // A monitor: its gate is never armed (the view drains on its own clock), so the wakeup is
    // never used; no transmit queue to speak of.
    subscriber_ = std::make_shared<Subscriber>(subscriber_id_, kRingFrames, wakeup_, 1);
    subscriber_->info.protocol = kProtocol;
    subscriber_->info.peer = "the status page";
    channel_->Subscribe(subscriber_, FilterSet());
    ids_.clear();
    trace_.clear();
    frames_ = ids_not_listed_ = 0;
    since_ns_ = RealtimeNanos();
    wake_.notify_all();
  }
  json ids = json::array();
  for (const auto& [key, s] : ids_) {
    const double period_ms = s.count > 1 ? s.period_mean_ns / 1e6 : 0;
    const double jitter_ms = s.count > 2 ? std::sqrt(s.period_m2 / double(s.count - 2)) / 1e6 : 0;
    CanFrame last;
    last.id = s.id;
    last.flags = s.flags;
    last.len = s.len;
    std::memcpy(last.data, s.data, s.len);
    ids.push_back({{"id", last.extended() ? absl::StrFormat("%08X", last.id)
                                          : absl::StrFormat("%03X", last.id)},
                   {"count", s.count},
                   {"rate", period_ms > 0 ? 1000.0 / period_ms : 0.0},
                   {"period_ms", period_ms},
                   {"jitter_ms", jitter_ms},
                   {"last", ToString(last)},
                   {"last_seen", double(s.last_ns) / 1e9}});
  }
  json trace = json::array();
  for (const CanFrame& f : trace_) {
    trace.push_back({{"t", double(f.timestamp_ns) / 1e9}, {"frame", ToString(f)}});
  }
  const uint64_t not_seen = subscriber_->counters.drops_ring_full.Get();
  return json{
      {"since", double(since_ns_) / 1e9},  {"frames", frames_},     {"not_seen", not_seen},
      {"ids_not_listed", ids_not_listed_}, {"ids", std::move(ids)}, {"trace", std::move(trace)}}
      .dump();
}

std::string TrafficView::HistoryJson() {
  using nlohmann::json;
  std::lock_guard<std::mutex> lock(mu_);
  json points = json::array();
  for (size_t i = 1; i < history_.size(); ++i) {
    const Point& a = history_[i - 1];
    const Point& b = history_[i];
    const double dt = double(b.at_ns - a.at_ns) / 1e9;
    if (dt <= 0) continue;
    points.push_back({double(b.at_ns) / 1e9, double(b.wire_bits - a.wire_bits) / dt,
                      double(b.frames - a.frames) / dt});
  }
  return json{{"history", std::move(points)}}.dump();
}

void TrafficView::Sample(int64_t now_ns) {
  const ChannelCounters& k = channel_->counters();
  history_.push_back({now_ns, k.bus_wire_bits.Get(), k.bus_rx.Get() + k.bus_tx.Get()});
  while (history_.size() > kHistory + 1) history_.pop_front();
}

void TrafficView::Add(const CanFrame* frames, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const CanFrame& f = frames[i];
    ++frames_;
    trace_.push_back(f);
    if (trace_.size() > kTraceFrames) trace_.pop_front();
    const uint32_t key = f.id | (f.extended() ? 0x80000000u : 0u) | (f.error() ? 0x40000000u : 0u);
    auto it = ids_.find(key);
    if (it == ids_.end()) {
      if (ids_.size() >= kMaxIds) {
        ++ids_not_listed_;
        continue;
      }
      it = ids_.emplace(key, IdStats{}).first;
      it->second.id = f.id;
    }
    IdStats& s = it->second;
    if (s.count > 0) {
      const double interval = double(f.timestamp_ns - s.last_ns);
      const double delta = interval - s.period_mean_ns;
      const double k = double(s.count);  // the count-th interval
      s.period_mean_ns += delta / k;
      s.period_m2 += delta * (interval - s.period_mean_ns);
    }
    ++s.count;
    s.last_ns = f.timestamp_ns;
    s.flags = f.flags;
    s.len = f.len;
    std::memcpy(s.data, f.data, f.len);
  }
}

void TrafficView::Run(std::stop_token stop) {
  CanFrame batch[256];
  std::unique_lock<std::mutex> lock(mu_);
  int64_t next_sample_ns = RealtimeNanos();
  while (!stop.stop_requested()) {
    const int64_t now_ns = RealtimeNanos();
    if (now_ns >= next_sample_ns) {
      Sample(now_ns);
      next_sample_ns = now_ns + 1'000'000'000;
    }
    // Asleep but for the history's second while nobody looks at the table.
    const absl::Duration nap =
        subscriber_ == nullptr ? absl::Nanoseconds(next_sample_ns - now_ns) : kDrainEvery;
    wake_.wait_for(lock, stop, absl::ToChronoNanoseconds(nap),
                   [this, had = subscriber_ != nullptr] { return !had && subscriber_ != nullptr; });
    if (subscriber_ == nullptr) continue;
    // Drained under the lock: at most a ring's worth, a few ms at worst, against a page's poll.
    for (size_t n; (n = subscriber_->ring.PopBulk(batch, std::size(batch))) > 0;) Add(batch, n);
    if (absl::Now() - last_asked_ > kIdleAfter) {
      channel_->Unsubscribe(subscriber_id_);
      subscriber_.reset();
    }
  }
}

}  // namespace canserver
