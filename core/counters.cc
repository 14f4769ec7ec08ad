#include "core/counters.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace canserver {

std::string SessionCounters::Summary() const {
  return absl::StrFormat(
      "to_client=%d from_client=%d bytes_out=%d bytes_in=%d drops_ring_full=%d "
      "drops_unsupported=%d tx_written=%d tx_failed=%d tx_timeout=%d tx_bus_error=%d "
      "tx_no_fd=%d tx_wait_max_us=%d tx_paused=%d client_errors=%d periodic_skipped=%d "
      "refused_role=%d refused_lease=%d",
      frames_to_client.Get(), frames_from_client.Get(), bytes_to_client.Get(),
      bytes_from_client.Get(), drops_ring_full.Get(), drops_unsupported.Get(), tx_written.Get(),
      tx_failed.Get(), tx_timeout.Get(), tx_bus_error.Get(), tx_no_fd.Get(), tx_wait_max_us.Get(),
      tx_paused.Get(), client_errors.Get(), periodic_skipped.Get(), refused_role.Get(),
      refused_lease.Get());
}

void DeliveryLatency::Record(const int64_t* latencies_ns, size_t n) noexcept {
  uint64_t local[kBuckets] = {};
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t ns = latencies_ns[i] > 0 ? latencies_ns[i] : 0;
    sum += static_cast<uint64_t>(ns);
    size_t b = 0;
    while (b < std::size(kBounds) && static_cast<double>(ns) > kBounds[b] * 1e9) ++b;
    ++local[b];
  }
  for (size_t b = 0; b < kBuckets; ++b) {
    if (local[b] != 0) buckets_[b].fetch_add(local[b], std::memory_order_relaxed);
  }
  sum_ns_.fetch_add(sum, std::memory_order_relaxed);
  count_.fetch_add(n, std::memory_order_relaxed);
  if (std::atomic<uint64_t>* fine = fine_.load(std::memory_order_acquire)) {
    for (size_t i = 0; i < n; ++i) {
      const int64_t us = latencies_ns[i] > 0 ? latencies_ns[i] / 1000 : 0;
      fine[std::min<size_t>(static_cast<size_t>(us), kFineMicros)].fetch_add(
          1, std::memory_order_relaxed);
    }
  }
}

void DeliveryLatency::EnableFine() {
  if (fine_owner_) return;
  fine_owner_ = std::make_unique<std::atomic<uint64_t>[]>(kFineMicros + 1);
  fine_.store(fine_owner_.get(), std::memory_order_release);
}

double DeliveryLatency::FineQuantileUs(double q) const noexcept {
  const std::atomic<uint64_t>* fine = fine_.load(std::memory_order_acquire);
  if (fine == nullptr) return 0;
  uint64_t total = 0;
  for (size_t i = 0; i <= kFineMicros; ++i) total += fine[i].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(q * static_cast<double>(total - 1));
  uint64_t seen = 0;
  for (size_t i = 0; i <= kFineMicros; ++i) {
    seen += fine[i].load(std::memory_order_relaxed);
    if (seen > rank) return static_cast<double>(i);
  }
  return static_cast<double>(kFineMicros);
}

std::string ChannelCounters::Summary() const {
  return absl::StrFormat(
      "bus_rx=%d bus_tx=%d bus_tx_failed=%d tx_timeout=%d tx_bus_error=%d tx_no_fd=%d tx_busy=%d "
      "tx_wait_max_us=%d tx_wait_mean_us=%d kernel_drops=%d ring_drops=%d state_changes=%d "
      "bus_off=%d direct_frames=%d",
      bus_rx.Get(), bus_tx.Get(), bus_tx_failed.Get(), tx_timeout.Get(), tx_bus_error.Get(),
      tx_no_fd.Get(), tx_busy.Get(), tx_wait_max_us.Get(),
      bus_tx.Get() == 0 ? 0 : tx_wait_total_us.Get() / bus_tx.Get(), kernel_drops.Get(),
      ring_drops.Get(), state_changes.Get(), bus_off.Get(), direct_frames.Get());
}

}  // namespace canserver
