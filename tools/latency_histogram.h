// LatencyHistogram: fixed buckets of 1 µs up to 100 ms plus an overflow bucket, so a bench run of
// any length records every sample in 400 KB per client without allocating while it runs.
// Owned by one thread; Merge() combines them afterwards.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace canserver {

class LatencyHistogram {
 public:
  static constexpr int64_t kBucketNs = 1000;
  static constexpr size_t kBuckets = 100'000;  // 100 ms; later samples land in the last bucket

  LatencyHistogram() : counts_(kBuckets + 1, 0) {}

  void Add(int64_t ns) {
    if (ns < 0) ns = 0;  // clocks agree only to their resolution
    counts_[std::min<size_t>(static_cast<size_t>(ns / kBucketNs), kBuckets)]++;
    ++total_;
    max_ns_ = std::max(max_ns_, ns);
    sum_ns_ += ns;
  }
  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
    sum_ns_ += other.sum_ns_;
  }
  // The upper edge of the bucket holding quantile q (0..1), in microseconds.
  double PercentileUs(double q) const {
    if (total_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return i == kBuckets ? static_cast<double>(max_ns_) / 1000 : static_cast<double>(i + 1);
    }
    return static_cast<double>(max_ns_) / 1000;
  }
  double MeanUs() const {
    return total_ ? static_cast<double>(sum_ns_) / static_cast<double>(total_) / 1000 : 0;
  }
  double MaxUs() const { return static_cast<double>(max_ns_) / 1000; }
  uint64_t total() const { return total_; }
  const std::vector<uint64_t>& counts() const { return counts_; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  int64_t max_ns_ = 0;
  int64_t sum_ns_ = 0;
};

}  // namespace canserver
