// canbench: load and latency harness for canserver (or any protocol v5 server).
//
//   canbench --clients 4 --rate 10000 --duration 5          # in-process server, virtual bus
//   canbench --backend socketcan --channel vcan0 --clients 4 # in-process server on vcan0
//   canbench --server 127.0.0.1:54701 --channel vcan0        # an external server, load on vcan0
//   canbench --sweep 1,2,4,8 --plot results/virtual          # throughput against clients, PNGs
//   canbench --clients 4 --rate 10000 --baseline relay       # alternated with the relay floor
//
// Frames carry a sequence number (tools/bench_sequence.h: in the id and data, for any dlc). Latency
// is the client's arrival time (CLOCK_REALTIME when the CanMessage is decoded) minus the frame's
// bus time carried in that CanMessage: the kernel's SO_TIMESTAMPNS on SocketCAN, the injection time
// on the virtual bus. Both ends read the same clock of the same machine, so no clock offset enters
// the figure. A second figure runs from canbench's own write of the frame (tools/send_times.h),
// independent of the server's timestamps, so peers are compared alike.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/version.h"
#include "io/raw_can_socket.h"
#include "io/socketcan_backend.h"
#include "io/virtual_bus.h"
#include "net/remote_bus.h"
#include "net/remote_server.h"
#include "net/socketcand_bus.h"
#include "tools/bench_sequence.h"
#include "tools/cli_args.h"
#include "tools/client_relay_floor.h"
#include "tools/latency_histogram.h"
#include "tools/relay_floor.h"
#include "tools/send_times.h"
#include "tools/tx_bench.h"

ABSL_FLAG(std::string, server, "",
          "measure the server at host:port (default: start one in-process)");
ABSL_FLAG(std::string, backend, "virtual", "in-process server's backend: virtual or socketcan");
ABSL_FLAG(std::string, channel, "vcan0",
          "CAN interface for socketcan load (raw writer and baseline reader), or virtual bus name");
ABSL_FLAG(std::string, source, "bus",
          "where frames come from: 'bus' (raw writer on the interface / injection into the virtual "
          "bus) or 'client' (one extra client, of the receivers' protocol, sends them; the others "
          "receive)");
ABSL_FLAG(int, clients, 1, "receiving clients");
ABSL_FLAG(std::string, sweep, "", "comma-separated client counts, one run each (e.g. 1,2,4,8)");
ABSL_FLAG(double, rate, 0, "frames/s offered (0: as fast as possible)");
ABSL_FLAG(double, duration, 5, "seconds of load");
ABSL_FLAG(int64_t, count, 0, "frames to send (overrides --duration)");
ABSL_FLAG(std::string, mix, "std", "ids: std, ext or mixed");
ABSL_FLAG(std::string, dlc, "8",
          "data length of the frames: N (0..8) or a range A-B, cycled frame by frame (0-8: all)");
ABSL_FLAG(bool, fd, false,
          "CAN FD frames (protocol version 6): lengths 12..64 in turn, every other pair with bit "
          "rate switch; --dlc is then ignored");
ABSL_FLAG(std::string, protocol, "v5",
          "receiving clients' protocol: v5 (python-can remote), socketcand (ASCII, RAW mode), "
          "or both (--clients of each, side by side in the same run)");
ABSL_FLAG(int, socketcand_port, 29536,
          "with --server and --protocol socketcand/both: the server's socketcand port");
ABSL_FLAG(bool, socketcand_itself, false,
          "with --server: the socketcand port is socketcand itself, not canserver's (its clients "
          "send no '< errors on >', which socketcand would take for a bus name)");
ABSL_FLAG(int, threads, 2, "in-process server's io threads");
ABSL_FLAG(std::string, cpu_affinity, "",
          "in-process server: CAN_CPUS/IO_CPUS as canserver --cpu-affinity (the relay floor "
          "runs where the kernel puts it)");
ABSL_FLAG(bool, direct_write, true,
          "in-process server: as canserver --direct-write (false: every frame through an io "
          "thread, to measure what direct writes change)");
ABSL_FLAG(int, client_rcvbuf, 16 * 1024,
          "in-process server: as canserver --client-rcvbuf (0: the kernel's autotuning)");
ABSL_FLAG(int, client_sndbuf, 64 * 1024,
          "in-process server: as canserver --client-sndbuf (0: the kernel's autotuning)");
ABSL_FLAG(int, reader_threads, 0,
          "threads reading the clients, each multiplexing its share with poll() (0: one per "
          "client, as separate client processes would)");
ABSL_FLAG(std::string, json, "", "write results as JSON to this file");
ABSL_FLAG(std::string, csv, "", "write the latency histogram (µs, count) as CSV to this file");
ABSL_FLAG(std::string, plot, "",
          "write PREFIX-latency.png (and PREFIX-throughput.png with --sweep) with gnuplot");
ABSL_FLAG(bool, progress, true, "a live progress line on stderr");
ABSL_FLAG(std::string, senders, "",
          "client->bus mode: comma-separated sender counts (e.g. 1,4); each sender sends --count "
          "frames (default 20000) as fast as the server takes them, next to a raw SocketCAN "
          "writer; what reaches the bus is counted by a raw socket (or a client on the virtual "
          "bus)");
ABSL_FLAG(int, virtual_bitrate, 0,
          "in-process virtual bus: emulate a wire of this many bit/s (as canserver "
          "--virtual-bitrate)");
ABSL_FLAG(int, bus_bitrate, 0,
          "the bus's bit rate, to report the share of the wire used (default: --virtual-bitrate)");
ABSL_FLAG(bool, raw_baseline, true, "--senders on SocketCAN: run the raw writer first");
ABSL_FLAG(std::string, baseline, "",
          "'relay': alternate every run with the relay floor (tools/relay_floor.h: one thread, "
          "one epoll set, the same v5 events, no CAN semantics) on the same bus, and report "
          "canserver/floor ratios of latency and CPU; in-process, --source bus, v5 clients only. "
          "'relay2' (with --source client): alternate with the two-thread client relay "
          "(tools/client_relay_floor.h: one thread reads the sender, hands whole messages to "
          "another through a buffer and an eventfd, which writes them to the others: the same "
          "one cross-thread wake-up as canserver's io thread → CAN thread) and, for the record, "
          "the one-thread client relay; ratios canserver/relay2");
ABSL_FLAG(std::string, tls_ca, "",
          "TLS: the clients verify the server against this CA (with --tls-cert/--tls-key the "
          "in-process server serves TLS with them; tests/tls/make_certs.sh makes a set)");
ABSL_FLAG(std::string, tls_cert, "", "TLS: the in-process server's certificate");
ABSL_FLAG(std::string, tls_key, "", "TLS: the in-process server's key");
ABSL_FLAG(int, repeat, 0, "runs per client count (0: 1, or 5 with --baseline relay); medians");

namespace canserver {
namespace {

// --client-rcvbuf for the in-process server (negative reads as 0: the kernel's autotuning).
size_t ClientRcvbufFlag() {
  return static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_client_rcvbuf)));
}

struct ClientResult {
  uint64_t received = 0;
  uint64_t reordered = 0;
  uint64_t last_seq = 0;
  bool any = false;
  SequenceTracker sequence;
  LatencyHistogram latency;
  LatencyHistogram from_write;  // from canbench's write (SendTimes), whatever the bus time says
  // --source client: from canbench's write to the frame's bus time (when the server wrote it to
  // the bus); frames without one (the floors) are not counted.
  LatencyHistogram to_bus;
  uint64_t unmatched = 0;  // frames whose write time was no longer in SendTimes
  int64_t first_ns = 0;    // arrival of the first and last frame (CLOCK_REALTIME)
  int64_t last_ns = 0;
};

// One of the server's latency histograms over a run: mean, and p50, p99, p99.9 in 1 µs steps.
struct ServerHop {
  double mean_us = 0;
  double us[3] = {};
};

ServerHop HopOf(const DeliveryLatency& h) {
  ServerHop hop;
  if (h.count() == 0) return hop;
  hop.mean_us = h.sum_seconds() * 1e6 / static_cast<double>(h.count());
  hop.us[0] = h.FineQuantileUs(0.5);
  hop.us[1] = h.FineQuantileUs(0.99);
  hop.us[2] = h.FineQuantileUs(0.999);
  return hop;
}

struct RunResult {
  std::string target = "canserver";  // or a floor: "relay", "relay1", "relay2"
  int clients = 0;
  std::vector<std::string> labels;  // per client: "client 0", or "v5 0" / "sc 0" with both
  uint64_t sent = 0;
  double offered_fps = 0;
  double seconds = 0;
  std::vector<ClientResult> per_client;
  ClientResult baseline;  // raw reader on the interface (socketcan only)
  bool have_baseline = false;
  uint64_t server_drops = 0;
  double server_cpu_s = 0;  // CPU of the server's threads (or the relay's) over the load
  // The server's own hops, from its histograms: bus time → encoded for a client's socket (over
  // every delivery), and a client's frame decoded → written to the bus (the transmit wait).
  ServerHop server_hop;
  ServerHop server_tx_wait;
};

struct DlcRange {
  int lo = 8;
  int hi = 8;
};

// "N" or "A-B" with 0 <= A <= B <= 8.
std::optional<DlcRange> ParseDlc(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '-');
  DlcRange r;
  if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &r.lo)) return std::nullopt;
  r.hi = r.lo;
  if (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &r.hi)) return std::nullopt;
  if (r.lo < 0 || r.hi > 8 || r.lo > r.hi) return std::nullopt;
  return r;
}

CanFrame MakeFrame(uint32_t seq, const std::string& mix, DlcRange dlc, bool fd) {
  const bool ext = mix == "ext" || (mix == "mixed" && (seq & 1));
  if (fd) {
    // The sequence number in data[0..3] as for classic frames; the rest a pattern.
    static constexpr uint8_t kFdLens[] = {12, 16, 20, 24, 32, 48, 64};
    CanFrame f = MakeSequencedFrame(seq, ext, 8);
    f.flags |= kCanFlagFd;
    if ((seq >> 1) & 1) f.flags |= kCanFlagBrs;
    f.len = kFdLens[seq % std::size(kFdLens)];
    for (uint8_t i = 8; i < f.len; ++i) f.data[i] = static_cast<uint8_t>(seq + i);
    return f;
  }
  const int len = dlc.lo + static_cast<int>(seq % static_cast<uint32_t>(dlc.hi - dlc.lo + 1));
  return MakeSequencedFrame(seq, ext, len);
}

// One clock read per frame: under emulation (the vcan VM) a clock read can be a syscall.
void Account(ClientResult& r, const CanFrame& f, const SendTimes& send_times) {
  const int64_t now = RealtimeNanos();
  const uint32_t seq = r.sequence.Recover(f);
  if (r.any && seq < r.last_seq) ++r.reordered;
  r.last_seq = seq;
  if (!r.any) r.first_ns = now;
  r.any = true;
  r.last_ns = now;
  ++r.received;
  r.latency.Add(now - f.timestamp_ns);
  if (std::optional<int64_t> written = send_times.Lookup(seq)) {
    r.from_write.Add(now - *written);
    if (f.timestamp_ns >= *written) r.to_bus.Add(f.timestamp_ns - *written);
  } else {
    ++r.unmatched;
  }
}

uint64_t Lost(const ClientResult& r, uint64_t sent) { return sent - std::min(sent, r.received); }

double Fps(const ClientResult& r) {
  const double s = static_cast<double>(r.last_ns - r.first_ns) / 1e9;
  return s > 0 ? static_cast<double>(r.received) / s : 0;
}

// --- Setup: what is measured (an external server, canserver in-process, or the relay floor) and
// the clients that measure it.

// The server under test. Its thread is joined when this goes away, on every path (a joinable
// std::thread destroyed would std::terminate instead of the run printing its error).
struct Target {
  std::shared_ptr<VirtualBus> vbus;  // the in-process virtual bus, where canbench injects
  std::unique_ptr<RemoteServer> server;
  std::unique_ptr<RelayFloor> relay;
  std::unique_ptr<ClientRelayFloor> client_relay;  // --baseline relay2: relay1 or relay2
  std::thread serve;
  std::string address;     // host:port the clients connect to
  bool socketcan = false;  // the traffic is on a SocketCAN interface (raw reader and writer)

  ~Target() { Stop(); }
  void Stop() {
    if (serve.joinable()) {
      server->Shutdown();
      serve.join();
    }
  }
  // CPU time of the server's threads (or the relay's) so far.
  absl::Duration Cpu() const {
    if (server) return server->ThreadCpuTime();
    if (relay) return relay->CpuTime();
    return client_relay ? client_relay->CpuTime() : absl::ZeroDuration();
  }
};

// `kind`: "canserver", or a floor: "relay" (bus → clients), "relay1"/"relay2" (client → clients).
absl::StatusOr<std::unique_ptr<Target>> StartTarget(const std::string& kind, bool socketcand) {
  auto t = std::make_unique<Target>();
  if (kind == "relay1" || kind == "relay2") {
    ASSIGN_OR_RETURN(t->client_relay, ClientRelayFloor::Start(kind == "relay1" ? 1 : 2));
    t->address = absl::StrFormat("127.0.0.1:%d", t->client_relay->port());
    return t;
  }
  const bool relay_floor = kind == "relay";
  const std::string server_flag = absl::GetFlag(FLAGS_server);
  const std::string backend_name = absl::GetFlag(FLAGS_backend);
  t->address = server_flag;
  t->socketcan = !server_flag.empty() || backend_name == "socketcan";
  if (!server_flag.empty()) return t;
  std::shared_ptr<CanBackend> backend;
  if (backend_name == "virtual") {
    ASSIGN_OR_RETURN(t->vbus, VirtualBus::Create(absl::GetFlag(FLAGS_channel), 1 << 20));
    backend = t->vbus;
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<SocketCanBackend> b,
                     SocketCanBackend::Open({absl::GetFlag(FLAGS_channel)}));
    backend = std::shared_ptr<CanBackend>(std::move(b));
  }
  if (relay_floor) {
    ASSIGN_OR_RETURN(t->relay, RelayFloor::Start(backend));
    t->address = absl::StrFormat("127.0.0.1:%d", t->relay->port());
    return t;
  }
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.io_threads = absl::GetFlag(FLAGS_threads);
  ASSIGN_OR_RETURN(options.cpu_affinity, ParseCpuAffinity(absl::GetFlag(FLAGS_cpu_affinity)));
  options.direct_write = absl::GetFlag(FLAGS_direct_write);
  options.client_rcvbuf_bytes = ClientRcvbufFlag();
  options.client_sndbuf_bytes =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_client_sndbuf)));
  // Every client is on this machine: the per-address and per-channel limits would only cap
  // the client counts a benchmark asks for.
  options.max_clients_per_address = 0;
  options.max_clients_per_channel = 0;
  options.max_handshakes = 0;
  options.ring_frames = 65536;
  if (socketcand) options.socketcand_port = 0;
  if (const std::string cert = absl::GetFlag(FLAGS_tls_cert); !cert.empty()) {
    ASSIGN_OR_RETURN(options.tls, TlsServer::Create({cert, absl::GetFlag(FLAGS_tls_key), "",
                                                     ClientCerts::kNone, false}));
  }
  ASSIGN_OR_RETURN(t->server, RemoteServer::Create(options, backend));
  t->server->channel().delivery_latency().EnableFine();
  t->server->channel().tx_wait_latency().EnableFine();
  t->address = absl::StrFormat("127.0.0.1:%d", t->server->port());
  t->serve = std::thread([server = t->server.get()] { (void)server->ServeForever(); });
  return t;
}

// A receiving client of either protocol.
struct Receiver {
  std::unique_ptr<RemoteBus> v5;
  std::unique_ptr<SocketcandBus> sc;
  int fileno() const { return v5 ? v5->fileno() : sc->fileno(); }
  absl::StatusOr<std::optional<CanFrame>> Recv(absl::Duration t) {
    return v5 ? v5->Recv(t) : sc->Recv(t);
  }
};

// The sending client (--source client): of the receivers' protocol (v5 with --protocol both).
struct Sender {
  std::unique_ptr<RemoteBus> v5;
  std::unique_ptr<SocketcandBus> sc;
  absl::Status SendMany(absl::Span<const CanFrame> frames) {
    return v5 ? v5->SendMany(frames) : sc->SendMany(frames);
  }
};

struct Clients {
  std::vector<Receiver> receivers;
  std::optional<Sender> sender;              // --source client
  std::unique_ptr<RawCanSocket> raw_writer;  // --source bus on SocketCAN
  std::unique_ptr<RawCanSocket> raw_reader;  // the baseline: the interface read directly
};

// Connects `v5` and `sc` receivers (labels into result), the sender and the raw sockets.
absl::StatusOr<Clients> ConnectClients(const Target& target, int v5, int sc, RunResult* result) {
  Clients c;
  const std::string channel = absl::GetFlag(FLAGS_channel);
  const std::string source = absl::GetFlag(FLAGS_source);
  RemoteBusOptions opts;
  opts.channel = target.address;
  if (target.relay == nullptr && target.client_relay == nullptr) {
    opts.tls.ca = absl::GetFlag(FLAGS_tls_ca);  // the floors: plain
  }
  for (int i = 0; i < v5; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<RemoteBus> bus, RemoteBus::Connect(opts));
    c.receivers.push_back({std::move(bus), nullptr});
    result->labels.push_back(sc > 0 ? absl::StrFormat("v5 %d", i)
                                    : absl::StrFormat("client %d", i));
  }
  SocketcandBusOptions sc_opts;
  if (sc > 0) {
    ASSIGN_OR_RETURN(sc_opts.server, ParseHostPort(target.address, 0));
    sc_opts.server.port = target.server
                              ? target.server->socketcand_port()
                              : static_cast<uint16_t>(absl::GetFlag(FLAGS_socketcand_port));
    sc_opts.channel = channel;
    sc_opts.fd_frames = absl::GetFlag(FLAGS_fd);
    sc_opts.errors_on = !absl::GetFlag(FLAGS_socketcand_itself);
    for (int i = 0; i < sc; ++i) {
      ASSIGN_OR_RETURN(std::unique_ptr<SocketcandBus> bus, SocketcandBus::Connect(sc_opts));
      c.receivers.push_back({nullptr, std::move(bus)});
      result->labels.push_back(v5 > 0 ? absl::StrFormat("sc %d", i)
                                      : absl::StrFormat("client %d", i));
    }
  }
  if (source == "client" && v5 > 0) {
    ASSIGN_OR_RETURN(std::unique_ptr<RemoteBus> bus, RemoteBus::Connect(opts));
    c.sender = Sender{std::move(bus), nullptr};
  } else if (source == "client") {
    ASSIGN_OR_RETURN(std::unique_ptr<SocketcandBus> bus, SocketcandBus::Connect(sc_opts));
    c.sender = Sender{nullptr, std::move(bus)};
  }
  if (target.socketcan && source == "bus") {
    ASSIGN_OR_RETURN(c.raw_writer, RawCanSocket::Open(channel));
  }
  if (target.socketcan) {
    // The baseline: the same traffic read straight from the interface. With an external server
    // on a machine without the interface (load from a client), there is none.
    absl::StatusOr<std::unique_ptr<RawCanSocket>> r = RawCanSocket::Open(channel);
    if (r.ok()) {
      c.raw_reader = *std::move(r);
      result->have_baseline = true;
    } else if (absl::GetFlag(FLAGS_server).empty() || source == "bus") {
      return r.status();
    }
  }
  return c;
}

// --- Load: the reader threads (and the baseline's) account every frame while the load runs.

// What the load and the readers share.
struct Shared {
  std::unique_ptr<SendTimes> send_times = std::make_unique<SendTimes>();
  std::atomic<bool> sending_done{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> progress_received{0};
};

// The reader threads: each multiplexes its share of the receivers with poll() (by default every
// receiver has its own thread) until everything sent arrived, or nothing came for a second after
// the load ended (what a receiver misses then is counted as lost). Joined when this goes away.
class Readers {
 public:
  Readers(Clients& clients, Shared& shared, RunResult& result)
      : clients_(clients), shared_(shared), result_(result) {
    const int n = static_cast<int>(clients.receivers.size());
    const int asked = absl::GetFlag(FLAGS_reader_threads);
    const int threads = asked <= 0 ? n : std::clamp(asked, 1, n);
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, t, threads] { Read(t, threads); });
    if (clients.raw_reader) threads_.emplace_back([this] { ReadBaseline(); });
  }
  ~Readers() { Join(); }
  void Join() {
    shared_.sending_done = true;  // they stop once the traffic is in or idle
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Read(int t, int threads) {
    std::vector<size_t> mine;
    for (size_t i = static_cast<size_t>(t); i < clients_.receivers.size();
         i += static_cast<size_t>(threads)) {
      mine.push_back(i);
    }
    std::vector<pollfd> fds;
    for (size_t i : mine) fds.push_back({clients_.receivers[i].fileno(), POLLIN, 0});
    std::vector<bool> done(mine.size(), false);
    // When each client last yielded a frame (read once per round, not per frame).
    std::vector<absl::Time> last_data(mine.size(), absl::Now());
    size_t finished = 0;
    while (finished < mine.size()) {
      ::poll(fds.data(), fds.size(), 100);
      for (size_t k = 0; k < mine.size(); ++k) {
        if (done[k]) continue;
        ClientResult& r = result_.per_client[mine[k]];
        bool got_any = false;
        // At most 4096 frames per client per round, so one busy client cannot starve the rest.
        for (int n = 0; n < 4096; ++n) {
          auto got = clients_.receivers[mine[k]].Recv(absl::ZeroDuration());
          if (!got.ok()) {
            done[k] = true;
            ++finished;
            break;
          }
          if (!got->has_value()) break;
          Account(r, **got, *shared_.send_times);
          got_any = true;
          if (mine[k] == 0) shared_.progress_received.store(r.received, std::memory_order_relaxed);
        }
        if (done[k]) continue;
        const absl::Time now = absl::Now();
        if (got_any) last_data[k] = now;
        if (shared_.sending_done &&
            (r.received >= shared_.sent || now - last_data[k] > absl::Seconds(1))) {
          done[k] = true;
          ++finished;
        }
      }
    }
  }

  void ReadBaseline() {
    absl::Time idle_since = absl::Now();
    while (true) {
      std::optional<CanFrame> f = clients_.raw_reader->Read(absl::Milliseconds(100));
      if (f.has_value()) {
        Account(result_.baseline, *f, *shared_.send_times);
        idle_since = absl::Now();
        continue;
      }
      if (shared_.sending_done && (result_.baseline.received >= shared_.sent ||
                                   absl::Now() - idle_since > absl::Seconds(1))) {
        break;
      }
    }
  }

  Clients& clients_;
  Shared& shared_;
  RunResult& result_;
  std::vector<std::thread> threads_;
};

// Offers the load: paced in 1 ms slices at --rate, or as fast as the path takes it, for
// --duration or --count frames, through the virtual bus, the interface or a sending client.
// Returns the frames sent.
absl::StatusOr<uint64_t> Load(Target& target, Clients& clients, Shared& shared) {
  const std::string mix = absl::GetFlag(FLAGS_mix);
  const DlcRange dlc = *ParseDlc(absl::GetFlag(FLAGS_dlc));
  const bool fd = absl::GetFlag(FLAGS_fd);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t count = absl::GetFlag(FLAGS_count);
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_duration));
  const bool progress = absl::GetFlag(FLAGS_progress);
  const absl::Time start = absl::Now();
  absl::Time next_progress = start + absl::Seconds(1);
  uint64_t seq = 0;
  std::vector<CanFrame> batch;
  while (count > 0 ? seq < static_cast<uint64_t>(count) : absl::Now() - start < duration) {
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    uint64_t due = rate > 0 ? static_cast<uint64_t>(elapsed * rate) + 1 : seq + 256;
    if (count > 0) due = std::min<uint64_t>(due, static_cast<uint64_t>(count));
    batch.clear();
    const int64_t written = RealtimeNanos();  // one clock read per batch
    for (; seq < due; ++seq) {
      batch.push_back(MakeFrame(static_cast<uint32_t>(seq), mix, dlc, fd));
      shared.send_times->Record(static_cast<uint32_t>(seq), written);
    }
    for (const CanFrame& f : batch) {
      if (target.vbus && !clients.sender) {
        while (!target.vbus->Inject(f)) std::this_thread::yield();  // backpressure, not loss
      } else if (clients.raw_writer && !clients.sender) {
        if (!clients.raw_writer->Write(f)) {
          return absl::UnavailableError("raw write to the interface failed");
        }
      }
    }
    if (clients.sender && !batch.empty()) RETURN_IF_ERROR(clients.sender->SendMany(batch));
    shared.sent.store(seq, std::memory_order_relaxed);
    if (rate > 0) absl::SleepFor(absl::Milliseconds(1));
    if (progress && absl::Now() >= next_progress) {
      next_progress += absl::Seconds(1);
      std::fprintf(stderr, "\r%s",
                   absl::StrFormat("  %.0f s: sent %d, client 0 received %d   ",
                                   absl::ToDoubleSeconds(absl::Now() - start), seq,
                                   shared.progress_received.load())
                       .c_str());
    }
  }
  if (progress) std::fprintf(stderr, "\r%80s\r", "");
  return seq;
}

// --- Report: what the server says about the run, beside what the clients measured.
void CollectServerFigures(RemoteServer& server, RunResult* result) {
  result->server_hop = HopOf(server.channel().delivery_latency());
  result->server_tx_wait = HopOf(server.channel().tx_wait_latency());
  result->server_drops =
      server.channel().counters().ring_drops.Get() + server.channel().counters().kernel_drops.Get();
}

absl::StatusOr<RunResult> RunOnce(int clients_per_protocol, const std::string& kind) {
  const std::string protocol = absl::GetFlag(FLAGS_protocol);
  const int v5 = protocol == "socketcand" ? 0 : clients_per_protocol;
  const int sc = protocol == "v5" ? 0 : clients_per_protocol;
  RunResult result;
  result.target = kind;
  result.clients = v5 + sc;
  result.per_client.resize(static_cast<size_t>(result.clients));

  ASSIGN_OR_RETURN(std::unique_ptr<Target> target, StartTarget(kind, sc > 0));
  ASSIGN_OR_RETURN(Clients clients, ConnectClients(*target, v5, sc, &result));
  absl::SleepFor(absl::Milliseconds(200));  // subscriptions settle
  const absl::Duration cpu_before = target->Cpu();
  Shared shared;
  {
    Readers readers(clients, shared, result);
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(result.sent, Load(*target, clients, shared));
    result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    result.offered_fps = static_cast<double>(result.sent) / result.seconds;
    readers.Join();
  }
  result.server_cpu_s = absl::ToDoubleSeconds(target->Cpu() - cpu_before);
  if (target->server) CollectServerFigures(*target->server, &result);
  target->Stop();
  return result;
}

// All clients together: frames and loss summed, frames/s summed, latency over every frame.
struct Totals {
  uint64_t received = 0;
  uint64_t lost = 0;
  uint64_t reordered = 0;
  double fps = 0;
  LatencyHistogram latency;
  LatencyHistogram from_write;
  LatencyHistogram to_bus;
  uint64_t unmatched = 0;
};

Totals Total(const RunResult& r) {
  Totals t;
  for (const ClientResult& c : r.per_client) {
    t.received += c.received;
    t.lost += Lost(c, r.sent);
    t.reordered += c.reordered;
    t.fps += Fps(c);
    t.latency.Merge(c.latency);
    t.from_write.Merge(c.from_write);
    t.to_bus.Merge(c.to_bus);
    t.unmatched += c.unmatched;
  }
  return t;
}

std::string Row(const std::string& name, uint64_t received, uint64_t lost, uint64_t reordered,
                double fps, const LatencyHistogram& latency) {
  return absl::StrFormat("%-10s %10d %10d %8d %11.0f %8.1f %8.1f %8.1f %8.1f %9.1f", name, received,
                         lost, reordered, fps, latency.PercentileUs(0.5), latency.PercentileUs(0.9),
                         latency.PercentileUs(0.99), latency.PercentileUs(0.999), latency.MaxUs());
}

std::string Row(const std::string& name, const ClientResult& r, uint64_t sent) {
  return Row(name, r.received, Lost(r, sent), r.reordered, Fps(r), r.latency);
}

// Server CPU per frame offered to the bus, in µs (a frame to N clients counts once).
double CpuUsPerFrame(const RunResult& r) {
  return r.sent > 0 ? r.server_cpu_s * 1e6 / static_cast<double>(r.sent) : 0;
}

// --source client into canserver: where the time goes, hop by hop (p50 / p99 over the frames):
// canbench's write → on the bus from the receivers' frames (their bus time is when the server
// wrote them to the bus), of which the server's own decode → on the bus (its transmit wait);
// then on the bus → written to a receiver's socket (the server) and → decoded by the receiver.
void PrintClientPathHops(const RunResult& r, const Totals& t) {
  std::printf(
      "%s",
      absl::StrFormat(
          "client path hops, p50 / p99 µs: canbench's write → on the bus %.0f / %.0f (in it, the "
          "server's decode → on the bus %.0f / %.0f, mean %.1f); on the bus → written to a "
          "receiver's socket %.0f / %.0f; on the bus → decoded by a receiver %.0f / %.0f\n",
          t.to_bus.PercentileUs(0.5), t.to_bus.PercentileUs(0.99), r.server_tx_wait.us[0],
          r.server_tx_wait.us[1], r.server_tx_wait.mean_us, r.server_hop.us[0], r.server_hop.us[1],
          t.latency.PercentileUs(0.5), t.latency.PercentileUs(0.99))
          .c_str());
}

void Print(const RunResult& r) {
  std::printf("%s",
              absl::StrFormat("\n%s, %d client(s): offered %d %sframes in %.2f s (%.0f frames/s)\n",
                              r.target, r.clients, r.sent,
                              absl::GetFlag(FLAGS_fd) ? "CAN FD (12..64-byte) " : "", r.seconds,
                              r.offered_fps)
                  .c_str());
  std::printf("%-10s %10s %10s %8s %11s %8s %8s %8s %8s %9s\n", "reader", "received", "lost",
              "reorder", "frames/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs");
  if (r.have_baseline) std::printf("%s\n", Row("raw", r.baseline, r.sent).c_str());
  for (size_t i = 0; i < r.per_client.size(); ++i) {
    std::printf("%s\n", Row(r.labels[i], r.per_client[i], r.sent).c_str());
  }
  const Totals t = Total(r);
  if (r.per_client.size() > 1) {
    std::printf("%s\n", Row("total", t.received, t.lost, t.reordered, t.fps, t.latency).c_str());
  }
  std::printf(
      "%s",
      absl::StrFormat(
          "from canbench's write to arrival, all clients: p50 %.1f, p90 "
          "%.1f, p99 %.1f, p99.9 %.1f, max %.1f µs%s\n",
          t.from_write.PercentileUs(0.5), t.from_write.PercentileUs(0.9),
          t.from_write.PercentileUs(0.99), t.from_write.PercentileUs(0.999), t.from_write.MaxUs(),
          t.unmatched == 0 ? "" : absl::StrFormat(" (%d frames too late to match)", t.unmatched))
          .c_str());
  if (r.have_baseline && r.baseline.received > 0) {
    double min_ratio = 1e9;
    for (const ClientResult& c : r.per_client)
      min_ratio = std::min(min_ratio, Fps(c) / Fps(r.baseline));
    std::printf("delivered rate per client vs raw reader: at least %.1f%%\n", 100 * min_ratio);
  }
  std::printf("%s",
              absl::StrFormat("server-side drops (ring + kernel): %d\n", r.server_drops).c_str());
  if (r.server_cpu_s > 0) {
    std::printf("%s",
                absl::StrFormat("%s threads' CPU: %.3f s = %.1f µs per frame (%.2f s per "
                                "million frames)%s\n",
                                r.target, r.server_cpu_s, CpuUsPerFrame(r), CpuUsPerFrame(r),
                                r.server_hop.mean_us > 0
                                    ? absl::StrFormat("; server hop bus → socket write: "
                                                      "mean %.1f, p50 %.0f, p99 %.0f, "
                                                      "p99.9 %.0f µs",
                                                      r.server_hop.mean_us, r.server_hop.us[0],
                                                      r.server_hop.us[1], r.server_hop.us[2])
                                    : "")
                    .c_str());
  }
  if (r.server_tx_wait.mean_us > 0 && t.to_bus.total() > 0) PrintClientPathHops(r, t);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// --baseline relay/relay2: per client count, the medians of the alternated runs of each target
// and canserver/floor (and, for the client path, canserver/relay1 for the record). Latency: the
// bus timestamp to the client's decode from the bus; from canbench's own write from a client
// (the floors have no bus).
void PrintFloorSummary(const std::vector<RunResult>& runs, const std::string& floor) {
  const bool from_client = floor == "relay2";
  std::vector<std::string> targets = {"canserver", floor};
  if (from_client) targets.push_back("relay1");
  std::vector<int> counts;
  for (const RunResult& r : runs) {
    if (std::find(counts.begin(), counts.end(), r.clients) == counts.end())
      counts.push_back(r.clients);
  }
  std::printf("\nmedians over alternated runs (all clients' frames; CPU per frame offered%s)\n",
              from_client ? "; latency from the sender's write" : "");
  std::printf("%-8s %-10s %5s %9s %9s %9s %10s %8s\n", "clients", "target", "runs", "p50 µs",
              "p99 µs", "p99.9 µs", "CPU µs/fr", "lost");
  for (int n : counts) {
    std::map<std::string, std::array<double, 4>> med;  // p50, p99, p99.9, CPU
    for (const std::string& target : targets) {
      std::vector<double> a, b, c, d;
      uint64_t lost = 0;
      for (const RunResult& r : runs) {
        if (r.clients != n || r.target != target) continue;
        const Totals t = Total(r);
        const LatencyHistogram& h = from_client ? t.from_write : t.latency;
        a.push_back(h.PercentileUs(0.5));
        b.push_back(h.PercentileUs(0.99));
        c.push_back(h.PercentileUs(0.999));
        d.push_back(CpuUsPerFrame(r));
        lost += t.lost;
      }
      med[target] = {Median(a), Median(b), Median(c), Median(d)};
      std::printf("%s", absl::StrFormat("%-8d %-10s %5d %9.1f %9.1f %9.1f %10.2f %8d\n", n, target,
                                        a.size(), med[target][0], med[target][1], med[target][2],
                                        med[target][3], lost)
                            .c_str());
    }
    auto ratio = [](double x, double base) { return base > 0 ? x / base : 0; };
    for (size_t f = 1; f < targets.size(); ++f) {
      const auto& x = med["canserver"];
      const auto& base = med[targets[f]];
      std::printf("%s",
                  absl::StrFormat("%-8d %-10s %5s %8.2fx %8.2fx %8.2fx %9.2fx\n", n,
                                  f == 1 ? "ratio" : "/" + targets[f], "", ratio(x[0], base[0]),
                                  ratio(x[1], base[1]), ratio(x[2], base[2]), ratio(x[3], base[3]))
                      .c_str());
    }
    std::vector<double> hop[3];
    for (const RunResult& r : runs) {
      if (r.clients != n || r.target != "canserver" || r.server_hop.mean_us <= 0) continue;
      for (int q = 0; q < 3; ++q) hop[q].push_back(r.server_hop.us[q]);
    }
    if (!hop[0].empty()) {
      std::printf("%s", absl::StrFormat("%-8d %-10s %5d %9.1f %9.1f %9.1f   (canserver's own "
                                        "hop: bus timestamp → socket write)\n",
                                        n, "hop", hop[0].size(), Median(hop[0]), Median(hop[1]),
                                        Median(hop[2]))
                            .c_str());
    }
  }
}

// The percentile fields of one histogram, for the JSON objects below.
std::string PercentilesJson(const LatencyHistogram& h) {
  return absl::StrFormat(
      R"("p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f)",
      h.PercentileUs(0.5), h.PercentileUs(0.9), h.PercentileUs(0.99), h.PercentileUs(0.999),
      h.MaxUs());
}

std::string Json(const std::vector<RunResult>& runs) {
  std::vector<std::string> items;
  auto client_json = [](const ClientResult& c, uint64_t sent) {
    return absl::StrFormat(
        R"({"received":%d,"lost":%d,"reordered":%d,"fps":%.1f,%s,"mean_us":%.2f,"from_write":{%s}})",
        c.received, Lost(c, sent), c.reordered, Fps(c), PercentilesJson(c.latency),
        c.latency.MeanUs(), PercentilesJson(c.from_write));
  };
  auto total_json = [](const Totals& t) {
    return absl::StrFormat(
        R"({"received":%d,"lost":%d,"reordered":%d,"fps":%.1f,%s,"mean_us":%.2f,"from_write":{%s,"unmatched":%d},"to_bus":{%s}})",
        t.received, t.lost, t.reordered, t.fps, PercentilesJson(t.latency), t.latency.MeanUs(),
        PercentilesJson(t.from_write), t.unmatched, PercentilesJson(t.to_bus));
  };
  for (const RunResult& r : runs) {
    std::vector<std::string> cs;
    for (const ClientResult& c : r.per_client) cs.push_back(client_json(c, r.sent));
    items.push_back(absl::StrFormat(
        R"({"target":"%s","clients":%d,"sent":%d,"seconds":%.3f,"offered_fps":%.1f,"server_drops":%d,"server_cpu_s":%.4f,"server_hop_mean_us":%.1f,"server_hop_p99_us":%.1f,"server_tx_wait_p50_us":%.1f,"server_tx_wait_p99_us":%.1f,"raw":%s,"per_client":[%s],"total":%s})",
        r.target, r.clients, r.sent, r.seconds, r.offered_fps, r.server_drops, r.server_cpu_s,
        r.server_hop.mean_us, r.server_hop.us[1], r.server_tx_wait.us[0], r.server_tx_wait.us[1],
        r.have_baseline ? client_json(r.baseline, r.sent) : "null", absl::StrJoin(cs, ","),
        total_json(Total(r))));
  }
  return absl::StrFormat(
      R"({"tool":"canbench","clock":"CLOCK_REALTIME, bus timestamp to client decode, same host","backend":"%s","server":"%s","source":"%s","rate":%.1f,"mix":"%s","dlc":"%s","runs":[%s]})",
      absl::GetFlag(FLAGS_server).empty() ? absl::GetFlag(FLAGS_backend) : "external",
      absl::GetFlag(FLAGS_server), absl::GetFlag(FLAGS_source), absl::GetFlag(FLAGS_rate),
      absl::GetFlag(FLAGS_mix), absl::GetFlag(FLAGS_dlc), absl::StrJoin(items, ","));
}

void Plot(const std::vector<RunResult>& runs, const std::string& prefix, const std::string& csv) {
  const std::string script = prefix + ".gnuplot";
  std::ofstream g(script);
  g << "set terminal png size 900,500\nset grid\n";
  g << "set output '" << prefix
    << "-latency.png'\nset title 'canbench: latency, bus time to client'\n"
    << "set xlabel 'latency (µs)'\nset ylabel 'frames'\nset logscale y\n"
    << "plot '" << csv << "' using 1:2 with impulses title 'last run, all clients'\n";
  if (runs.size() > 1) {
    const std::string data = prefix + "-throughput.dat";
    std::ofstream d(data);
    for (const RunResult& r : runs) {
      double total = 0;
      double min_fps = 1e18;
      for (const ClientResult& c : r.per_client) {
        total += Fps(c);
        min_fps = std::min(min_fps, Fps(c));
      }
      d << r.clients << " " << total << " " << min_fps << "\n";
    }
    g << "unset logscale y\nset output '" << prefix << "-throughput.png'\n"
      << "set title 'canbench: delivered frames/s against clients'\nset xlabel 'clients'\n"
      << "set ylabel 'frames/s'\nplot '" << data << "' using 1:2 with linespoints title 'total', '"
      << data << "' using 1:3 with linespoints title 'slowest client'\n";
  }
  g.close();
  if (std::system(("gnuplot " + script).c_str()) != 0) {
    std::fprintf(stderr, "canbench: gnuplot failed (apt-get install gnuplot-nox)\n");
  }
}

// canbench --senders: the client->bus benchmark (tools/tx_bench.h).
int RunSenders() {
  TxBenchOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.backend = absl::GetFlag(FLAGS_backend);
  o.channel = absl::GetFlag(FLAGS_channel);
  o.io_threads = absl::GetFlag(FLAGS_threads);
  o.client_rcvbuf = ClientRcvbufFlag();
  o.virtual_bitrate = absl::GetFlag(FLAGS_virtual_bitrate);
  o.bitrate =
      absl::GetFlag(FLAGS_bus_bitrate) > 0 ? absl::GetFlag(FLAGS_bus_bitrate) : o.virtual_bitrate;
  o.raw_baseline = absl::GetFlag(FLAGS_raw_baseline);
  if (absl::GetFlag(FLAGS_count) > 0)
    o.frames_per_sender = static_cast<uint32_t>(absl::GetFlag(FLAGS_count));
  std::vector<TxBenchRun> all;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_senders), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1) {
      std::fprintf(stderr, "canbench: --senders wants positive counts, e.g. 1,4\n");
      return 1;
    }
    absl::StatusOr<std::vector<TxBenchRun>> runs = RunTxBench(o, n);
    if (!runs.ok()) {
      std::fprintf(stderr, "canbench: %s\n", std::string(runs.status().message()).c_str());
      return 1;
    }
    std::printf("\n%s", FormatTxBench(*runs, o.bitrate).c_str());
    all.insert(all.end(), runs->begin(), runs->end());
  }
  if (!absl::GetFlag(FLAGS_json).empty())
    std::ofstream(absl::GetFlag(FLAGS_json)) << TxBenchJson(all, o.bitrate) << "\n";
  return 0;
}

}  // namespace
}  // namespace canserver

int main(int argc, char** argv) {
  using namespace canserver;
  absl::SetProgramUsageMessage("load and latency harness for canserver; see docs/benchmarks.md");
  SetUsageConfig("canbench");
  std::vector<std::string> args = NormalizeArgs(argc, argv);
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  g_log_verbosity = -1;
  if (const std::string p = absl::GetFlag(FLAGS_protocol);
      p != "v5" && p != "socketcand" && p != "both") {
    std::fprintf(stderr, "canbench: --protocol is v5, socketcand or both (got '%s')\n", p.c_str());
    return 1;
  }
  if (!ParseDlc(absl::GetFlag(FLAGS_dlc)).has_value()) {
    std::fprintf(stderr, "canbench: --dlc wants N or A-B within 0..8, e.g. 8 or 0-8 (got '%s')\n",
                 absl::GetFlag(FLAGS_dlc).c_str());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_senders).empty()) return RunSenders();
  const std::string floor = absl::GetFlag(FLAGS_baseline);
  if (!floor.empty()) {
    if (floor != "relay" && floor != "relay2") {
      std::fprintf(stderr, "canbench: --baseline is 'relay' or 'relay2' (got '%s')\n",
                   floor.c_str());
      return 1;
    }
    const std::string source = floor == "relay" ? "bus" : "client";
    if (!absl::GetFlag(FLAGS_server).empty() || absl::GetFlag(FLAGS_source) != source ||
        absl::GetFlag(FLAGS_protocol) != "v5" || absl::GetFlag(FLAGS_fd)) {
      std::fprintf(stderr,
                   "canbench: --baseline %s runs in this process from %s to v5 clients: "
                   "--source %s, no --server, --protocol socketcand/both or --fd\n",
                   floor.c_str(), floor == "relay" ? "the bus" : "a sending client",
                   source.c_str());
      return 1;
    }
  }
  std::vector<int> counts = {absl::GetFlag(FLAGS_clients)};
  if (!absl::GetFlag(FLAGS_sweep).empty()) {
    counts.clear();
    for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_sweep), ',')) {
      int n;
      if (!absl::SimpleAtoi(s, &n) || n < 1) {
        std::fprintf(stderr, "canbench: --sweep wants positive client counts, e.g. 1,2,4\n");
        return 1;
      }
      counts.push_back(n);
    }
  }
  std::printf(
      "latency: CLOCK_REALTIME when the client decodes a frame minus the frame's bus time (the "
      "kernel's\nSO_TIMESTAMPNS on SocketCAN, the injection time on the virtual bus); one host, "
      "one clock, no offset.\n");
  const int repeat = absl::GetFlag(FLAGS_repeat) > 0 ? absl::GetFlag(FLAGS_repeat)
                     : !floor.empty()                ? 5
                                                     : 1;
  std::vector<RunResult> runs;
  for (int n : counts) {
    for (int i = 0; i < repeat; ++i) {
      // Alternated, floor first on even runs and last on odd ones, so a drift in the machine's
      // load over the minute falls on both alike.
      std::vector<std::string> order = {"canserver"};
      if (!floor.empty()) order.push_back(floor);
      if (floor == "relay2") order.push_back("relay1");
      if (i % 2 == 1) std::reverse(order.begin(), order.end());
      for (const std::string& kind : order) {
        absl::StatusOr<RunResult> r = RunOnce(n, kind);
        if (!r.ok()) {
          std::fprintf(stderr, "canbench: %s\n", std::string(r.status().message()).c_str());
          return 1;
        }
        Print(*r);
        runs.push_back(*std::move(r));
      }
    }
  }
  if (!floor.empty()) PrintFloorSummary(runs, floor);
  if (!absl::GetFlag(FLAGS_json).empty())
    std::ofstream(absl::GetFlag(FLAGS_json)) << Json(runs) << "\n";
  std::string csv = absl::GetFlag(FLAGS_csv);
  if (csv.empty() && !absl::GetFlag(FLAGS_plot).empty())
    csv = absl::GetFlag(FLAGS_plot) + "-latency.csv";
  if (!csv.empty()) {
    LatencyHistogram all;
    for (const ClientResult& c : runs.back().per_client) all.Merge(c.latency);
    std::ofstream out(csv);
    out << "# latency_us count\n";
    for (size_t i = 0; i < all.counts().size(); ++i) {
      if (all.counts()[i] != 0) out << (i + 1) << " " << all.counts()[i] << "\n";
    }
  }
  if (!absl::GetFlag(FLAGS_plot).empty()) Plot(runs, absl::GetFlag(FLAGS_plot), csv);
  return 0;
}
