#include "tools/tx_bench.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "io/clock.h"
#include "io/raw_can_socket.h"
#include "io/socketcan_backend.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"

namespace canserver {
namespace {

constexpr int kBitsPerFrame = 111;  // standard id, 8 data bytes, no stuffing

CanFrame TxFrame(int sender, uint32_t seq) {
  CanFrame f = CanFrame::Classic(0x100 + static_cast<uint32_t>(sender), {});
  f.len = 8;
  for (int i = 0; i < 4; ++i) f.data[i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
  f.data[4] = static_cast<uint8_t>(sender);
  return f;
}

// Counts what reaches the bus, per sender and in order, until `expected` frames arrived or
// nothing came for 2 s after the senders finished.
class Observer {
 public:
  explicit Observer(int senders) : next_(static_cast<size_t>(senders), 0) {}

  // Takes one frame; returns false for frames that are not the benchmark's.
  bool Take(const CanFrame& f) {
    const uint32_t sender = f.id - 0x100;
    if (f.id < 0x100 || sender >= next_.size() || f.len != 8) return false;
    const uint32_t seq = (uint32_t{f.data[0]} << 24) | (uint32_t{f.data[1]} << 16) |
                         (uint32_t{f.data[2]} << 8) | f.data[3];
    if (seq < next_[sender]) ++reordered;  // a gap is a loss, counted as sent - seen
    next_[sender] = seq + 1;
    const int64_t now = RealtimeNanos();
    if (seen == 0) first_ns = now;
    last_ns = now;
    ++seen;
    return true;
  }

  uint64_t seen = 0;
  uint64_t reordered = 0;
  int64_t first_ns = 0;
  int64_t last_ns = 0;

 private:
  std::vector<uint32_t> next_;
};

// Reads with `read` (fills up to 64 frames, 0 after a short wait) until done.
template <typename Read>
void Observe(Observer& obs, uint64_t expected, const std::atomic<bool>& sending_done, Read read) {
  absl::Time idle_since = absl::Now();
  CanFrame frames[64];
  while (obs.seen < expected) {
    const size_t n = read(frames);
    bool any = false;
    for (size_t i = 0; i < n; ++i) any |= obs.Take(frames[i]);
    if (any) idle_since = absl::Now();
    if (n == 0 && sending_done && absl::Now() - idle_since > absl::Seconds(2)) break;
  }
}

// The interface's own view, read in batches (recvmmsg) so that the observer costs the writer
// under test as little CPU as possible.
class BusReader {
 public:
  static absl::StatusOr<BusReader> Open(const std::string& channel) {
    ASSIGN_OR_RETURN(std::unique_ptr<SocketCanBackend> b,
                     SocketCanBackend::Open({channel, false, 8 << 20}));
    return BusReader(std::move(b));
  }
  size_t Read(CanFrame* out) {
    pollfd p{backend_->rx_fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) return 0;
    uint64_t drops = 0;
    const size_t n = backend_->Receive(out, 64, &drops);
    kernel_drops += drops;
    return n;
  }
  uint64_t kernel_drops = 0;

 private:
  explicit BusReader(std::unique_ptr<SocketCanBackend> b) : backend_(std::move(b)) {}
  std::unique_ptr<SocketCanBackend> backend_;
};

void Finish(TxBenchRun& run, const Observer& obs) {
  run.on_bus = obs.seen;
  run.reordered = obs.reordered;
  run.seconds = static_cast<double>(obs.last_ns - obs.first_ns) / 1e9;
}

absl::StatusOr<TxBenchRun> RawRun(const TxBenchOptions& o) {
  ASSIGN_OR_RETURN(std::unique_ptr<RawCanSocket> writer, RawCanSocket::Open(o.channel));
  ASSIGN_OR_RETURN(BusReader reader, BusReader::Open(o.channel));
  TxBenchRun run;
  run.writer = "raw";
  run.senders = 1;
  Observer obs(1);
  std::atomic<bool> done{false};
  std::thread observe([&] {
    Observe(obs, o.frames_per_sender, done, [&](CanFrame* out) { return reader.Read(out); });
  });
  const absl::Time start = absl::Now();
  for (uint32_t i = 0; i < o.frames_per_sender; ++i) {
    if (!writer->Write(TxFrame(0, i))) break;  // waits out ENOBUFS, as cangen does
    ++run.sent;
  }
  run.sender_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  done = true;
  observe.join();
  Finish(run, obs);
  return run;
}

}  // namespace

absl::StatusOr<std::vector<TxBenchRun>> RunTxBench(const TxBenchOptions& o, int senders) {
  std::vector<TxBenchRun> runs;
  const bool socketcan = !o.server.empty() || o.backend == "socketcan";
  if (socketcan && o.raw_baseline) {
    ASSIGN_OR_RETURN(TxBenchRun raw, RawRun(o));
    runs.push_back(raw);
  }

  std::shared_ptr<VirtualBus> vbus;
  std::unique_ptr<RemoteServer> server;
  std::thread serve;
  std::string address = o.server;
  if (o.server.empty()) {
    std::shared_ptr<CanBackend> backend;
    if (o.backend == "virtual") {
      ASSIGN_OR_RETURN(vbus, VirtualBus::Create(o.channel, 1 << 20, o.virtual_bitrate, 10));
      backend = vbus;
    } else {
      ASSIGN_OR_RETURN(std::unique_ptr<SocketCanBackend> b, SocketCanBackend::Open({o.channel}));
      backend = std::shared_ptr<CanBackend>(std::move(b));
    }
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.io_threads = o.io_threads;
    options.client_rcvbuf_bytes = o.client_rcvbuf;
    options.max_clients_per_address = 0;  // every sender is on this machine
    options.max_clients_per_channel = 0;
    options.ring_frames = 1 << 17;  // the observing client must not be the bottleneck
    ASSIGN_OR_RETURN(server, RemoteServer::Create(options, backend));
    address = absl::StrFormat("127.0.0.1:%d", server->port());
    serve = std::thread([&] { (void)server->ServeForever(); });
  }
  auto stop_server = [&] {
    if (!server) return;
    server->Shutdown();
    serve.join();
  };

  RemoteBusOptions bus_options;
  bus_options.channel = address;
  // The senders never read: they ask for one id nobody sends, as a send-only tool should. A
  // client that takes every frame and reads none fills its socket, and canserver ends such a
  // session (--slow-client-timeout, --keepalive's TCP_USER_TIMEOUT) with what it had not yet
  // read from it: with 4 senders × 20,000 at 500 kbit/s the others' frames shut their windows
  // and 4-7 % of the frames never reached the bus.
  RemoteBusOptions sender_options = bus_options;
  sender_options.filters = {{.can_id = 0x1FFFFFFF, .can_mask = 0x1FFFFFFF, .extended = true}};
  std::vector<std::unique_ptr<RemoteBus>> clients;
  for (int s = 0; s < senders; ++s) {
    auto bus = RemoteBus::Connect(sender_options);
    if (!bus.ok()) {
      stop_server();
      return bus.status();
    }
    clients.push_back(*std::move(bus));
  }
  // The observer: the interface itself on SocketCAN, else one more client.
  std::optional<BusReader> raw_reader;
  std::unique_ptr<RemoteBus> client_reader;
  if (socketcan) {
    auto r = BusReader::Open(o.channel);
    if (!r.ok()) {
      stop_server();
      return r.status();
    }
    raw_reader.emplace(*std::move(r));
  } else {
    auto r = RemoteBus::Connect(bus_options);
    if (!r.ok()) {
      stop_server();
      return r.status();
    }
    client_reader = *std::move(r);
  }
  absl::SleepFor(absl::Milliseconds(200));  // subscriptions settle

  TxBenchRun run;
  run.writer = "canserver";
  run.senders = senders;
  run.sent = uint64_t{o.frames_per_sender} * static_cast<uint64_t>(senders);
  Observer obs(senders);
  std::atomic<bool> done{false};
  std::thread observe([&] {
    Observe(obs, run.sent, done, [&](CanFrame* out) -> size_t {
      if (raw_reader) return raw_reader->Read(out);
      auto got = client_reader->Recv(absl::Milliseconds(100));
      if (!got.ok() || !got->has_value()) return 0;
      out[0] = **got;
      return 1;
    });
  });
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  std::atomic<int64_t> slowest_ns{0};
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      std::vector<CanFrame> chunk;
      for (uint32_t i = 0; i < o.frames_per_sender; i += 1000) {
        chunk.clear();
        for (uint32_t k = i; k < std::min(o.frames_per_sender, i + 1000); ++k)
          chunk.push_back(TxFrame(s, k));
        if (!clients[static_cast<size_t>(s)]->SendMany(chunk).ok()) break;
      }
      const int64_t took = absl::ToInt64Nanoseconds(absl::Now() - start);
      int64_t prev = slowest_ns.load();
      while (prev < took && !slowest_ns.compare_exchange_weak(prev, took)) {
      }
    });
  }
  for (auto& t : threads) t.join();
  run.sender_seconds = static_cast<double>(slowest_ns.load()) / 1e9;
  done = true;
  observe.join();
  Finish(run, obs);
  // TransmitFail events wait on the senders' sockets.
  for (auto& c : clients) {
    while (true) {
      auto got = c->Recv(absl::Milliseconds(200));
      if (!got.ok() || !got->has_value()) break;
    }
    run.refused += c->transmit_failures();
  }
  if (server) {
    // In-process, the server's own count of frames written is exact; a client observer on the
    // virtual bus may miss frames of a flood (its ring overflows) without any being lost.
    run.observer_missed = run.on_bus < server->channel().counters().bus_tx.Get()
                              ? server->channel().counters().bus_tx.Get() - run.on_bus
                              : 0;
    run.on_bus = std::max(run.on_bus, server->channel().counters().bus_tx.Get());
    run.server_counters = server->channel().counters().Summary();
  }
  stop_server();
  runs.push_back(run);
  return runs;
}

std::string FormatTxBench(const std::vector<TxBenchRun>& runs, int bitrate) {
  std::string out =
      absl::StrFormat("%-22s %9s %9s %6s %7s %7s %11s %8s %8s %8s\n", "writer", "sent", "on bus",
                      "lost", "refused", "reorder", "frames/s", "sender s", "vs raw", "of wire");
  double raw_fps = 0;
  for (const TxBenchRun& r : runs) {
    if (r.writer == "raw") raw_fps = r.fps();
  }
  const double wire_fps = bitrate > 0 ? double{1.0} * bitrate / kBitsPerFrame : 0;
  for (const TxBenchRun& r : runs) {
    const std::string name = r.writer == "raw"
                                 ? "raw SocketCAN writer"
                                 : absl::StrFormat("canserver, %d sender(s)", r.senders);
    out += absl::StrFormat(
        "%-22s %9d %9d %6d %7d %7d %11.0f %8.2f %8s %8s\n", name, r.sent, r.on_bus,
        r.sent - std::min(r.sent, r.on_bus), r.refused, r.reordered, r.fps(), r.sender_seconds,
        raw_fps > 0 ? absl::StrFormat("%.1f%%", 100 * r.fps() / raw_fps) : "-",
        wire_fps > 0 ? absl::StrFormat("%.1f%%", 100 * r.fps() / wire_fps) : "-");
  }
  for (const TxBenchRun& r : runs) {
    if (!r.server_counters.empty()) out += "server: " + r.server_counters + "\n";
    if (r.observer_missed > 0) {
      out += absl::StrFormat(
          "(the observing client missed %d frames of the flood; on bus = the server's count, "
          "frames/s from what it saw)\n",
          r.observer_missed);
    }
  }
  return out;
}

std::string TxBenchJson(const std::vector<TxBenchRun>& runs, int bitrate) {
  std::vector<std::string> items;
  for (const TxBenchRun& r : runs) {
    items.push_back(absl::StrFormat(
        R"({"writer":"%s","senders":%d,"sent":%d,"on_bus":%d,"lost":%d,"refused":%d,"reordered":%d,"seconds":%.3f,"fps":%.1f,"sender_seconds":%.3f})",
        r.writer, r.senders, r.sent, r.on_bus, r.sent - std::min(r.sent, r.on_bus), r.refused,
        r.reordered, r.seconds, r.fps(), r.sender_seconds));
  }
  return absl::StrFormat(R"({"tool":"canbench","mode":"senders","bitrate":%d,"runs":[%s]})",
                         bitrate, absl::StrJoin(items, ","));
}

}  // namespace canserver
