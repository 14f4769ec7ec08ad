// The client→bus half of canbench (`canbench --senders N`): N clients send as fast as the server
// takes their frames; what reached the bus is counted by an independent observer (a raw CAN
// socket on SocketCAN, a receiving client on the virtual bus). Reported next to a raw SocketCAN
// writer writing the same frames in the same run, and to the wire rate where the bit rate is
// known: frames/s on the bus, frames lost (sent, never on the bus), frames refused (TransmitFail).
//
// Frames are standard-id 8-byte frames, id 0x100 + sender, the sender's sequence number
// big-endian in data[0..3]: 111 bits each on the wire (without stuffing).
//
// Single-threaded caller; RunTxBench starts and joins its own threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace canserver {

struct TxBenchOptions {
  std::string server;               // host:port of an external server; empty: in-process
  std::string backend = "virtual";  // in-process server's backend: virtual or socketcan
  std::string channel = "vcan0";
  int io_threads = 2;
  size_t client_rcvbuf = 16 << 10;  // in-process server: ServerOptions::client_rcvbuf_bytes
  int virtual_bitrate = 0;          // in-process virtual bus: the emulated wire (0: none)
  int bitrate = 0;  // the bus's bit rate, for "% of the wire" (virtual: virtual_bitrate)
  uint32_t frames_per_sender = 20000;
  bool raw_baseline = true;  // SocketCAN: a raw writer sends the same frames first
};

struct TxBenchRun {
  std::string writer;  // "raw" or "canserver"
  int senders = 0;
  uint64_t sent = 0;
  uint64_t on_bus = 0;        // seen by the observer
  uint64_t refused = 0;       // TransmitFail received by the senders
  uint64_t reordered = 0;     // frames of one sender seen out of its order
  double seconds = 0;         // first to last frame on the bus
  double sender_seconds = 0;  // until the slowest sender had handed over its last frame
  double fps() const { return seconds > 0 ? static_cast<double>(on_bus) / seconds : 0; }
  uint64_t observer_missed = 0;  // frames written that a client observer did not see
  std::string server_counters;   // the channel's counters (in-process server)
};

// One run with `senders` clients (preceded by a raw-writer run on SocketCAN when asked).
absl::StatusOr<std::vector<TxBenchRun>> RunTxBench(const TxBenchOptions& options, int senders);

// The table, ratios to the raw writer and to the wire included.
std::string FormatTxBench(const std::vector<TxBenchRun>& runs, int bitrate);
std::string TxBenchJson(const std::vector<TxBenchRun>& runs, int bitrate);

}  // namespace canserver
