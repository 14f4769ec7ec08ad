// Counters shared between threads. Each field has a single writer thread (noted per field) and
// is read by anyone for logs and tests, so relaxed atomics are enough: no other data is published
// through them.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace canserver {

struct Counter {
  std::atomic<uint64_t> value{0};
  // Single writer: a plain load+store is cheaper than a locked add and equally correct.
  void Add(uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// One client session.
struct SessionCounters {
  Counter frames_to_client;    // io thread: CanMessages encoded for the client
  Counter frames_from_client;  // io thread: CanMessages received from the client
  Counter bytes_to_client;     // io thread
  Counter bytes_from_client;   // io thread
  Counter drops_ring_full;     // CAN thread: frames this client missed because its ring was full
  Counter drops_unsupported;   // io thread: frames protocol v5 cannot carry (CAN FD)
  Counter tx_failed;           // CAN thread: this client's frames the bus refused
  Counter tx_queue_full;       // io thread: this client's frames refused by a full tx queue

  std::string Summary() const;
};

// One CAN channel.
struct ChannelCounters {
  Counter bus_rx;         // CAN thread: frames received from the bus
  Counter bus_tx;         // CAN thread: frames written to the bus
  Counter bus_tx_failed;  // CAN thread: writes the bus refused
  Counter kernel_drops;   // CAN thread: frames the kernel dropped (SO_RXQ_OVFL)
  Counter ring_drops;     // CAN thread: frames dropped for some client (sum over clients)
  Counter filtered_out;   // CAN thread: (frame, client) pairs rejected by the client's filters

  std::string Summary() const;
};

}  // namespace canserver
