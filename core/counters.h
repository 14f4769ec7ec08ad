// Counters shared between threads. Each field has a single writer thread (noted per field) and
// is read by anyone for logs and tests, so relaxed atomics are enough: no other data is published
// through them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>

namespace canserver {

struct Counter {
  std::atomic<uint64_t> value{0};
  // Single writer: a plain load+store is cheaper than a locked add and equally correct.
  void Add(uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Single writer: keeps the largest value seen.
  void Max(uint64_t v) noexcept {
    if (v > value.load(std::memory_order_relaxed)) value.store(v, std::memory_order_relaxed);
  }
  uint64_t Get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// One client session.
struct SessionCounters {
  // The client's output is counted by whoever holds its socket: its io thread, or the CAN thread
  // during a direct write (io/subscriber.h, SocketLoan); the hand-over orders the writes.
  Counter frames_to_client;    // socket holder: CanMessages encoded for the client
  Counter frames_from_client;  // io thread: CanMessages received from the client
  Counter bytes_to_client;     // socket holder
  Counter bytes_from_client;   // io thread
  Counter drops_ring_full;     // CAN thread: frames this client missed because its ring was full
  Counter drops_unsupported;   // socket holder: CAN FD frames a version 5 client cannot receive
  // The transmit path (docs/architecture.md): a frame from the client is queued, then written or
  // refused. tx_failed = tx_timeout + tx_bus_error + tx_no_fd; each one was answered with
  // TransmitFail.
  Counter tx_written;       // CAN thread: this client's frames the bus accepted
  Counter tx_failed;        // CAN thread: this client's frames refused (any reason)
  Counter tx_timeout;       // CAN thread: refused because the bus took nothing for --tx-timeout
  Counter tx_bus_error;     // CAN thread: refused by the bus for a reason waiting cannot fix
  Counter tx_no_fd;         // CAN thread: CAN FD frames refused by a classic-only interface
  Counter tx_wait_max_us;   // CAN thread: longest time one of its frames waited for the bus
  Counter tx_paused;        // io thread: times reading stopped because its tx queue was full
  Counter ring_high_water;  // io thread: most frames seen waiting in its ring at once
  // io thread: commands the front end could not carry out (a socketcand syntax error, an unknown
  // command), each logged (rate-limited) and, where the client asked for it, answered.
  Counter client_errors;
  // io thread: periods its jobs skipped because the io thread came late (they send once, not a
  // backlog); virtual bus only (the kernel's broadcast manager keeps no such count).
  Counter periodic_skipped;
  // io thread: requests refused because its role does not allow them (--access: a monitor's
  // frames, periodic jobs, ISO-TP; a transmit client's bit rate)
  Counter refused_role;
  // io thread: requests refused because another client holds the channel's lease (frames,
  // periodic jobs, ISO-TP), and leases refused because another holds one
  Counter refused_lease;

  std::string Summary() const;
};

// A channel's latency histogram, Prometheus style (cumulative buckets, sum, count). Two per
// channel: delivery (a frame's bus timestamp to its encoding for a client's socket, over every
// client; written by every io thread of the channel's sessions and by the CAN thread's direct
// writes) and transmit wait (a client's frame decoded by its io thread to written to the bus;
// written by the CAN thread). Relaxed fetch_add, one per bucket touched per batch; read by anyone.
class DeliveryLatency {
 public:
  // Upper bounds in seconds; the last bucket (+Inf) is implied.
  static constexpr double kBounds[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3,
                                       10e-3, 25e-3,  50e-3,  100e-3, 250e-3, 1.0};
  static constexpr size_t kBuckets = std::size(kBounds) + 1;

  // Adds `n` latencies in nanoseconds (negative ones, from a clock step, count as zero).
  void Record(const int64_t* latencies_ns, size_t n) noexcept;
  // Per bucket (not cumulative), sum in seconds, total count.
  uint64_t bucket(size_t i) const noexcept { return buckets_[i].load(std::memory_order_relaxed); }
  double sum_seconds() const noexcept {
    return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  }
  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

  // Benchmarks: also count every latency in 1 µs steps up to kFineMicros (beyond: one bucket), so
  // a tail a few µs wide can be told from the floor's; the buckets above are too coarse for that.
  // Call before the traffic starts (canbench does, on its in-process server). Costs one more
  // relaxed fetch_add per frame while enabled.
  static constexpr size_t kFineMicros = 4096;
  void EnableFine();
  // The q-quantile (0..1) of what was recorded since EnableFine(), in µs; 0 if nothing was.
  double FineQuantileUs(double q) const noexcept;

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> fine_owner_;
  std::atomic<std::atomic<uint64_t>*> fine_{nullptr};
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> count_{0};
};

// One CAN channel.
struct ChannelCounters {
  Counter bus_rx;        // CAN thread: frames received from the bus
  Counter bus_tx;        // CAN thread: frames written to the bus
  Counter bus_rx_bytes;  // CAN thread: data bytes of the frames received (socketcand's stat)
  Counter bus_tx_bytes;  // CAN thread: data bytes of the frames written
  // CAN thread: nominal bits on the wire (WireBits) of the frames received and of those it wrote
  // for clients: the bus load, client-sent frames included.
  Counter bus_wire_bits;
  Counter bus_tx_failed;     // CAN thread: frames refused with TransmitFail (sum of the reasons)
  Counter tx_timeout;        // CAN thread: refused because the bus took nothing for --tx-timeout
  Counter tx_bus_error;      // CAN thread: refused for a reason waiting cannot fix (down, gone…)
  Counter tx_no_fd;          // CAN thread: CAN FD frames refused by a classic-only interface
  Counter tx_busy;           // CAN thread: writes the bus deferred (ENOBUFS/EAGAIN), then retried
  Counter tx_wait_max_us;    // CAN thread: longest time a frame waited from queued to written
  Counter tx_wait_total_us;  // CAN thread: sum over written frames (mean = total / bus_tx)
  Counter kernel_drops;      // CAN thread: frames the kernel dropped (SO_RXQ_OVFL)
  Counter state_changes;     // CAN thread: controller state changes (error frames announcing them)
  Counter bus_off;           // CAN thread: times the controller went bus-off
  Counter ring_drops;        // CAN thread: frames dropped for some client (sum over clients)
  Counter filtered_out;      // CAN thread: (frame, client) pairs rejected by the client's filters
  Counter direct_frames;     // CAN thread: frames it wrote to idle clients' sockets itself

  std::string Summary() const;
};

}  // namespace canserver
