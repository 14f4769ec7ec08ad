// canserver: shares the rig's CAN channels with many TCP clients speaking the remote CAN protocol
// v5 (python-can's `remote` interface). See README.md and docs/.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/bitrate_policy.h"
#include "core/channel_spec.h"
#include "core/log.h"
#include "core/python_can_names.h"
#include "core/server_config.h"
#include "core/socketcand_codec.h"
#include "core/version.h"
#include "io/can_netdevs.h"
#include "io/slcan_attachment.h"
#include "io/socketcan_backend.h"
#include "io/virtual_bus.h"
#include "net/can_interface_list.h"
#include "net/http_server.h"
#include "net/remote_server.h"
#include "tools/cli_args.h"

namespace {
int DefaultThreads() {
  // io threads beside the CAN thread; more than 4 rarely helps one channel.
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}
}  // namespace

ABSL_FLAG(std::string, interface, "socketcan",
          "CAN backend: 'socketcan' (a Linux CAN interface by name), 'virtual' (an in-process bus "
          "for machines without CAN hardware), 'slcan' (a serial-line adapter, --channel "
          "/dev/ttyACM0@115200 with --bitrate: canserver attaches it, needs CAP_NET_ADMIN), or "
          "python-can's name for the adapter — kvaser, "
          "pcan, gs_usb (candle, cantact), usb2can, ixxat — with --channel counted as python-can "
          "counts it (0, 1, … or PCAN_USBBUS1): the netdev its Linux driver made is served "
          "(canserver --list shows them)");
ABSL_FLAG(std::vector<std::string>, channel, {"can0"},
          "channel to serve, NAME[:PORT], repeatable (or comma-separated): a CAN interface "
          "(socketcan) or a bus name (virtual); 'virtual:NAME' or 'socketcan:NAME' overrides "
          "--interface for that channel. Channels without a port get the next free one counting "
          "from --port: --channel can0 --channel can1 serves can0 on 54701, can1 on 54702");
ABSL_FLAG(std::string, config, "",
          "read settings and channels from this INI file: [canserver] takes any flag without "
          "its dashes, each other [section] is a channel (keys: port, interface); flags on the "
          "command line win, and --channel there replaces the file's channels");
ABSL_FLAG(std::string, host, "0.0.0.0", "address to listen on ('::' for all IPv6 addresses)");
ABSL_FLAG(int, port, 54701,
          "TCP port of the first channel; further channels count up from it (0: any free port)");
ABSL_FLAG(int, socketcand_port, 29536,
          "TCP port for socketcand's ASCII protocol (python-can's 'socketcand' interface, "
          "SavvyCAN, Kayak): one port for every channel, the client opens one by name "
          "(0: off)");
ABSL_FLAG(int, capture_port, 0,
          "serve each channel's traffic as pcapng for Wireshark on this TCP port and up (the first "
          "channel here, the next on PORT+1, …): wireshark -k -i TCP@rig1:PORT, or dumpcap; a "
          "monitor, it never transmits (0: off)");
ABSL_FLAG(bool, beacon, false,
          "announce the socketcand port and every channel with socketcand's UDP beacon "
          "(port 42000, every 2 s) on each interface's broadcast address");
ABSL_FLAG(std::vector<std::string>, beacon_to, {},
          "with --beacon, also send it to these HOST:PORT addresses (unicast; port default "
          "42000), e.g. a PC on another subnet");
ABSL_FLAG(int, threads, DefaultThreads(),
          "io threads serving clients (default: CPU count, at most 4)");
ABSL_FLAG(std::string, cpu_affinity, "",
          "CAN_CPUS/IO_CPUS: pin each channel's CAN thread to one CPU of the first list and each "
          "io thread to one of the second, in turn (e.g. 0/1, 0/1-3; either side may be empty). "
          "Default: the kernel places them; on 2 cores that measured as good or better "
          "(docs/benchmarks.md)");
ABSL_FLAG(bool, direct_write, true,
          "let the CAN thread write frames straight to a v5/v6 client's socket while its io "
          "thread sleeps with nothing queued for it: one thread hand-off fewer per frame on a "
          "quiet bus; frames stay in bus order (false: always through the io thread)");
ABSL_FLAG(int, bitrate, 0,
          "set every channel that has bit timing to this bit/s at start (socketcan: needs "
          "CAP_NET_ADMIN); on a bus without bit timing (vcan, virtual) the rate BusResponse "
          "reports. 0: leave the buses as they are");
ABSL_FLAG(std::string, bitrate_policy, "check",
          "a client asking for another bit rate than its bus runs at: 'check' refuses it with "
          "a RemoteException naming both rates, 'ignore' lets it in, 'apply' sets the bus to "
          "its rate when no other client is on that channel (needs CAP_NET_ADMIN). Rate 0 and "
          "buses without bit timing always pass");
ABSL_FLAG(bool, error_frames, false, "deliver CAN error frames to clients");
ABSL_FLAG(int, restart_ms, -1,
          "socketcan channels with bit timing: restart the controller this many ms after "
          "bus-off (0: stay bus-off; -1: leave the interface's setting); needs CAP_NET_ADMIN");
ABSL_FLAG(bool, list, false,
          "print every CAN interface on this machine — netdev, driver, the python-can interface "
          "and channel that select it (--interface kvaser --channel 0), link, CAN FD, bit rate, "
          "serial number — and exit");
ABSL_FLAG(bool, json, false, "with --list: print JSON, for scripts");
ABSL_FLAG(bool, wait_for_interface, false,
          "socketcan: start even when an interface does not exist yet, and serve it once it "
          "appears (an interface that disappears later is always waited for)");
ABSL_FLAG(int, rcvbuf, 4 << 20,
          "receive buffer of the CAN socket in bytes (socketcan; forced past rmem_max when root)");
ABSL_FLAG(int, ring_size, 8192,
          "frames buffered per client before that client's frames are dropped (and counted); "
          "each frame takes 80 bytes");
ABSL_FLAG(int, output_buffer, 256 * 1024, "encoded bytes buffered per client socket");
ABSL_FLAG(int, max_clients, 256,
          "connections held at once, handshaking or open; the next gets 'server full'");
ABSL_FLAG(int, max_clients_per_address, 16,
          "connections from one address (a rig PC runs a handful: a test script, a logger, a "
          "dashboard, a flashing tool), so one host cannot take every slot; 0: no limit");
ABSL_FLAG(int, max_clients_per_channel, 64,
          "open sessions of one channel, so one channel's crowd cannot lock out another's "
          "clients; 0: only --max-clients");
ABSL_FLAG(int, max_handshakes, 64,
          "connections that have not opened a bus yet (silent ones close after "
          "--handshake-timeout); 0: no limit");
ABSL_FLAG(int, client_sndbuf, 64 * 1024,
          "kernel send buffer per client socket, bytes (SO_SNDBUF): bounds the kernel memory a "
          "client that stops reading holds (autotuning grows it to 4 MiB); 0: the kernel's "
          "autotuning; else at least 4096");
ABSL_FLAG(absl::Duration, min_period, absl::Milliseconds(1),
          "the shortest period a periodic job may have (v5 and socketcand alike)");
ABSL_FLAG(int, max_periodic_rate, 0,
          "frames per second all periodic jobs of one channel may add up to; 0: what the bus "
          "carries at its bit rate (bit rate / 50), or 10000 on a bus without bit timing");
ABSL_FLAG(int, client_tx_queue, 1024,
          "frames from one client waiting for the bus (80 bytes each); while it is full the "
          "client is not read, so TCP slows it to the bus rate — nothing is refused for it");
ABSL_FLAG(int, client_rcvbuf, 16 * 1024,
          "kernel receive buffer per client socket, bytes (SO_RCVBUF): bounds how far a "
          "sending client runs ahead of a busy bus before TCP holds it; 0: the kernel's "
          "autotuning (megabytes); else at least 4096");
ABSL_FLAG(absl::Duration, tx_timeout, absl::Seconds(1),
          "refuse waiting frames with TransmitFail once the bus has taken nothing for this long "
          "(bus-off, no node acking); 0: wait forever");
ABSL_FLAG(int, virtual_bitrate, 0,
          "virtual bus only: emulate a wire of this many bit/s (frames take their nominal bit "
          "time; a full device queue answers ENOBUFS like a real interface); 0: infinitely fast");
ABSL_FLAG(int, virtual_txqueuelen, 10,
          "virtual bus with --virtual-bitrate: frames the emulated device queue holds");
ABSL_FLAG(int, max_periodic_jobs, 64, "periodic transmit jobs per client");
ABSL_FLAG(absl::Duration, handshake_timeout, absl::Seconds(10),
          "close clients that do not complete the handshake within this time");
ABSL_FLAG(absl::Duration, slow_client_timeout, absl::Seconds(10),
          "disconnect a client whose buffer keeps overflowing this long (0: never, only drop)");
ABSL_FLAG(absl::Duration, keepalive, absl::Seconds(10),
          "find a client that vanished without a word (cable pulled, host off) dead within "
          "about this: TCP keepalive and TCP_USER_TIMEOUT (0: the kernel's defaults, minutes)");
ABSL_FLAG(absl::Duration, resume_grace, absl::Seconds(10),
          "keep the session of a v5/v6 client that asked for it (canremote, the python plugin "
          "with reconnect=, RemoteBus) this long after its connection breaks without a goodbye: "
          "its filters and periodic jobs go on, frames wait in its ring, and the client takes it "
          "back with its token (0: sessions end with their connection)");
ABSL_FLAG(int, resume_replay, 4096,
          "frames a resumable session keeps of what it sent, to send again what a broken "
          "connection lost in transit (80 B each)");
ABSL_FLAG(absl::Duration, stats_interval, absl::Seconds(10),
          "with -v, log every client's counters at this interval");
ABSL_FLAG(std::vector<std::string>, access, {},
          "who may do what, comma-separated rules, first match wins: '[NAME=]WHO ROLE "
          "[on CHANNEL...]' with WHO '*' or addresses, CIDR blocks and cert:NAME (a TLS client "
          "certificate's CN or subjectAltName), ROLE monitor (receive only), transmit (+ send, "
          "periodic jobs, ISO-TP, leases) or configure (+ bit rate), e.g. 'bench=127.0.0.0/8 "
          "configure,lab=10.1.0.0/16 transmit on can0'; a client no rule matches only "
          "receives; the config file's [access] section takes one rule per line. Default: no "
          "rules, every client may configure");
ABSL_FLAG(std::string, tls, "off",
          "TLS on the channels' ports, told from plain text by the client's first byte: off, "
          "optional (TLS and plain-text clients) or required (plain-text clients are refused "
          "with a message naming the fix); needs --tls-cert and --tls-key. SIGHUP re-reads the "
          "certificate files");
ABSL_FLAG(std::string, tls_cert, "", "PEM file: the server's certificate (and chain) for --tls");
ABSL_FLAG(std::string, tls_key, "", "PEM file: the private key of --tls-cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file: the CA(s) that sign client certificates; with it, clients are asked for a "
          "certificate, whose CN/subjectAltName --access rules can name as cert:NAME");
ABSL_FLAG(std::string, tls_client_cert, "optional",
          "with --tls-ca: none, optional (a client without one gets the role its address "
          "maps to) or required (the handshake fails without a valid one)");
ABSL_FLAG(std::vector<std::string>, allow, {},
          "comma-separated addresses or CIDR blocks allowed to connect, e.g. "
          "10.1.0.0/16,192.168.1.5,::1 (default: everyone); others are refused and logged");
ABSL_FLAG(int, v, 0, "verbosity: -v logs periodic summaries, -vv per-event detail");
ABSL_FLAG(std::string, http, "",
          "serve a status page (/), Prometheus metrics (/metrics) and JSON (/api/status) on "
          "ADDR:PORT, e.g. 127.0.0.1:9754 (default: off); --allow applies, and the page shows "
          "client addresses");

namespace {

// A CAN or io thread whose loop has not passed for this long is wedged (each passes at least
// once a second when idle).
constexpr absl::Duration kStallAfter = absl::Seconds(5);

// Raises the soft RLIMIT_NOFILE to the hard limit (systemd gives services 1,024 soft), then
// checks that the limits fit: each connection holds its socket and at most two more
// descriptors (its periodic jobs' timer or broadcast-manager socket, an ISO-TP socket), plus a
// fixed set per channel and thread and for HTTP. A configuration that cannot fit is refused at
// start instead of failing clients at 3 a.m.
absl::Status FitDescriptorBudget(const canserver::ServerOptions& options, size_t channels) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return absl::OkStatus();
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  const uint64_t needed = 64 + 8 * channels + 4 * static_cast<uint64_t>(options.io_threads) +
                          3 * static_cast<uint64_t>(options.max_clients);
  if (lim.rlim_cur != RLIM_INFINITY && needed > lim.rlim_cur) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "--max-clients %d needs about %d file descriptors, but this process may open %d "
        "(RLIMIT_NOFILE; raise LimitNOFILE= in the systemd unit, or ulimit -n)",
        options.max_clients, needed, static_cast<uint64_t>(lim.rlim_cur)));
  }
  return absl::OkStatus();
}

// Reads a config file (core/server_config.h) and applies its [canserver] settings to the flags;
// the command line, parsed afterwards, wins. Returns the file's channels.
absl::StatusOr<std::vector<canserver::ChannelSpec>> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrFormat("cannot read --config %s: %s", path, std::strerror(errno)));
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  absl::StatusOr<canserver::ServerConfigFile> config = canserver::ParseServerConfig(text, path);
  if (!config.ok()) return config.status();
  for (size_t i = 0; i < config->settings.size(); ++i) {
    const auto& [key, value] = config->settings[i];
    const std::string where = config->setting_lines[i] > 0
                                  ? absl::StrFormat("%s:%d", path, config->setting_lines[i])
                                  : path;
    absl::CommandLineFlag* flag = key == "channel" || key == "config" || key == "help"
                                      ? nullptr
                                      : absl::FindCommandLineFlag(key);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: unknown setting '%s' in [canserver]%s", where, key,
                          key == "channel" ? " (channels are sections: [can0])" : ""));
    }
    if (key == "allow" && absl::StripAsciiWhitespace(value).empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: 'allow =' is empty, which would let everyone in; list addresses or CIDR blocks, "
          "or remove the line to allow everyone",
          where));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s = %s: %s", where, key, value, error));
    }
  }
  if (!config->access_rules.empty()) {
    absl::SetFlag(&FLAGS_access, config->access_rules);
  }
  return config->channels;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace canserver;
  absl::SetProgramUsageMessage(
      "shares a rig's CAN channels with TCP clients (remote CAN protocol v5, python-can's\n"
      "'remote'), every channel on its own port, all in one process.\n"
      "  canserver --interface virtual                  # no CAN hardware: an in-process bus\n"
      "  canserver --channel can0 --threads 4           # a SocketCAN interface\n"
      "  canserver --channel can0 --channel can1:55000  # can0 on 54701, can1 on 55000\n"
      "  canserver --config /etc/canserver/canserver.conf\n"
      "Clients: python-can Bus('host:54701', interface='remote'), or any socketcand client on\n"
      "port 29536: Bus(interface='socketcand', host='host', port=29536, channel='can0').\n"
      "Flags also accept dashes (--error-frames) and -v/-vv.");
  SetUsageConfig("canserver");
  std::vector<std::string> args = NormalizeArgs(argc, argv);
  if (std::any_of(args.begin() + 1, args.end(),
                  [](const std::string& a) { return a == "--help" || a == "-h"; })) {
    PrintGroupedHelp(
        {{"Channels",
          {"interface", "channel", "list", "json", "config", "wait_for_interface", "error_frames",
           "rcvbuf", "virtual_bitrate", "virtual_txqueuelen"}},
         {"The bus's bit rate and controller", {"bitrate", "bitrate_policy", "restart_ms"}},
         {"Network and access", {"host", "port", "allow", "access", "http", "capture_port"}},
         {"TLS (v5/v6 clients)", {"tls", "tls_cert", "tls_key", "tls_ca", "tls_client_cert"}},
         {"Threads", {"threads", "cpu_affinity", "direct_write"}},
         {"socketcand clients (python-can 'socketcand', SavvyCAN, Kayak)",
          {"socketcand_port", "beacon", "beacon_to"}},
         {"Limits (memory, time, fairness)",
          {"ring_size", "output_buffer", "max_clients", "max_clients_per_address",
           "max_clients_per_channel", "max_handshakes", "client_tx_queue", "client_rcvbuf",
           "client_sndbuf", "tx_timeout", "max_periodic_jobs", "min_period", "max_periodic_rate",
           "handshake_timeout", "slow_client_timeout", "keepalive"}},
         {"Sessions that survive a broken connection", {"resume_grace", "resume_replay"}},
         {"Logging", {"v", "stats_interval"}}},
        "tools/canserver.cc");
    return 0;
  }
  // --channel may be repeated (abseil keeps only the last), --config is read before the flags.
  std::vector<std::string> channel_args;
  for (const std::string& value : TakeFlagValues(args, "channel")) {
    for (absl::string_view v : absl::StrSplit(value, ',', absl::SkipEmpty()))
      channel_args.emplace_back(v);
  }
  // --allow may be repeated too; an empty one would silently allow everyone, so it is an error.
  const std::vector<std::string> allow_args = TakeFlagValues(args, "allow");
  const std::vector<std::string> config_paths = TakeFlagValues(args, "config");
  std::vector<ChannelSpec> config_channels;
  if (!config_paths.empty()) {
    absl::StatusOr<std::vector<ChannelSpec>> loaded = LoadConfig(config_paths.back());
    if (!loaded.ok()) {
      std::fprintf(stderr, "canserver: %s\n", std::string(loaded.status().message()).c_str());
      return 2;
    }
    config_channels = *std::move(loaded);
  }
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  g_log_verbosity.store(absl::GetFlag(FLAGS_v));
  // One line; in the journal at priority err (<3>), so `journalctl -p err` finds why it stopped.
  auto fail = [](absl::string_view message) {
    std::fprintf(stderr, "%scanserver: %.*s\n", StderrIsJournal() ? "<3>" : "",
                 static_cast<int>(message.size()), message.data());
    return 1;
  };
  auto positive = [&](const char* name, int value) {
    return value > 0 ? std::string()
                     : absl::StrFormat("--%s must be positive (got %d)", name, value);
  };
  for (const std::string& err :
       {positive("ring_size", absl::GetFlag(FLAGS_ring_size)),
        positive("output_buffer", absl::GetFlag(FLAGS_output_buffer)),
        positive("max_clients", absl::GetFlag(FLAGS_max_clients)),
        positive("client_tx_queue", absl::GetFlag(FLAGS_client_tx_queue)),
        positive("virtual_txqueuelen", absl::GetFlag(FLAGS_virtual_txqueuelen)),
        positive("threads", absl::GetFlag(FLAGS_threads)),
        positive("rcvbuf", absl::GetFlag(FLAGS_rcvbuf)),
        positive("max_periodic_jobs", absl::GetFlag(FLAGS_max_periodic_jobs))}) {
    if (!err.empty()) return fail(err);
  }
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) return fail(absl::StrFormat("--port %d is not 0..65535", port));
  if (absl::GetFlag(FLAGS_bitrate) < 0) return fail("--bitrate must not be negative");

  const int socketcand_port = absl::GetFlag(FLAGS_socketcand_port);
  if (socketcand_port < 0 || socketcand_port > 65535) {
    return fail(absl::StrFormat("--socketcand-port %d is not 0..65535", socketcand_port));
  }

  const int capture_port = absl::GetFlag(FLAGS_capture_port);
  if (capture_port < 0 || capture_port > 65535) {
    return fail(absl::StrFormat("--capture-port %d is not 0..65535", capture_port));
  }

  ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  if (capture_port > 0) options.capture_port = static_cast<uint16_t>(capture_port);
  options.port = static_cast<uint16_t>(port);
  if (socketcand_port > 0) options.socketcand_port = static_cast<uint16_t>(socketcand_port);
  options.beacon = absl::GetFlag(FLAGS_beacon);
  for (const std::string& to : absl::GetFlag(FLAGS_beacon_to)) {
    absl::StatusOr<HostPort> address = ParseHostPort(to, socketcand::kBeaconPort);
    if (!address.ok()) return fail(absl::StrCat("--beacon-to: ", address.status().message()));
    options.beacon_to.push_back(*address);
  }
  if (!options.beacon_to.empty() && !options.beacon) return fail("--beacon-to needs --beacon");
  options.io_threads = absl::GetFlag(FLAGS_threads);
  absl::StatusOr<CpuAffinity> affinity = ParseCpuAffinity(absl::GetFlag(FLAGS_cpu_affinity));
  if (!affinity.ok()) return fail(std::string(affinity.status().message()));
  options.cpu_affinity = *std::move(affinity);
  options.direct_write = absl::GetFlag(FLAGS_direct_write);
  options.forced_bitrate = absl::GetFlag(FLAGS_bitrate);
  absl::StatusOr<BitratePolicy> policy = ParseBitratePolicy(absl::GetFlag(FLAGS_bitrate_policy));
  if (!policy.ok()) return fail(policy.status().message());
  options.bitrate_policy = *policy;
  options.ring_frames = static_cast<size_t>(absl::GetFlag(FLAGS_ring_size));
  options.output_buffer_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_output_buffer));
  options.max_clients = static_cast<size_t>(absl::GetFlag(FLAGS_max_clients));
  for (auto [name, value, field] :
       {std::tuple{"max-clients-per-address", absl::GetFlag(FLAGS_max_clients_per_address),
                   &options.max_clients_per_address},
        std::tuple{"max-clients-per-channel", absl::GetFlag(FLAGS_max_clients_per_channel),
                   &options.max_clients_per_channel},
        std::tuple{"max-handshakes", absl::GetFlag(FLAGS_max_handshakes), &options.max_handshakes},
        std::tuple{"client-sndbuf", absl::GetFlag(FLAGS_client_sndbuf),
                   &options.client_sndbuf_bytes}}) {
    if (value < 0) return fail(absl::StrFormat("--%s must not be negative (0: no limit)", name));
    *field = static_cast<size_t>(value);
  }
  options.min_periodic_period = absl::GetFlag(FLAGS_min_period);
  if (options.min_periodic_period < absl::Microseconds(100)) {
    return fail(absl::StrFormat("--min-period must be at least 100us (got %s)",
                                absl::FormatDuration(options.min_periodic_period)));
  }
  if (absl::GetFlag(FLAGS_max_periodic_rate) < 0) {
    return fail("--max-periodic-rate must not be negative (0: what the bus carries)");
  }
  options.max_periodic_rate = absl::GetFlag(FLAGS_max_periodic_rate);
  options.client_tx_frames = static_cast<size_t>(absl::GetFlag(FLAGS_client_tx_queue));
  if (absl::GetFlag(FLAGS_client_rcvbuf) < 0) return fail("--client-rcvbuf must not be negative");
  options.client_rcvbuf_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_client_rcvbuf));
  options.tx_timeout = absl::GetFlag(FLAGS_tx_timeout);
  if (options.tx_timeout < absl::ZeroDuration()) return fail("--tx-timeout must not be negative");
  if (absl::GetFlag(FLAGS_virtual_bitrate) < 0) {
    return fail("--virtual-bitrate must not be negative");
  }
  options.max_periodic_jobs = static_cast<size_t>(absl::GetFlag(FLAGS_max_periodic_jobs));
  options.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  options.slow_client_timeout = absl::GetFlag(FLAGS_slow_client_timeout);
  options.keepalive = absl::GetFlag(FLAGS_keepalive);
  options.resume_grace = absl::GetFlag(FLAGS_resume_grace);
  if (options.resume_grace < absl::ZeroDuration() || options.resume_grace > absl::Hours(1)) {
    return fail("--resume-grace must be between 0 (off) and 1h");
  }
  if (absl::GetFlag(FLAGS_resume_replay) < 1 || absl::GetFlag(FLAGS_resume_replay) > 1'000'000) {
    return fail("--resume-replay must be between 1 and 1000000 frames");
  }
  options.resume_replay_frames = static_cast<size_t>(absl::GetFlag(FLAGS_resume_replay));
  if (absl::GetFlag(FLAGS_v) > 0) options.stats_interval = absl::GetFlag(FLAGS_stats_interval);

  std::vector<std::string> allow_entries = absl::GetFlag(FLAGS_allow);  // the config file's
  if (!allow_args.empty()) {
    allow_entries.clear();
    for (const std::string& value : allow_args) {
      for (absl::string_view v : absl::StrSplit(value, ',')) allow_entries.emplace_back(v);
    }
  }
  absl::StatusOr<AccessList> allow = AccessList::Parse(allow_entries);
  if (!allow.ok()) return fail(allow.status().message());
  options.allow = *std::move(allow);
  absl::StatusOr<AccessRules> access = AccessRules::Parse(absl::GetFlag(FLAGS_access));
  if (!access.ok()) return fail(access.status().message());
  options.access = *std::move(access);
  if (const std::string tls = absl::GetFlag(FLAGS_tls); tls != "off") {
    if (tls != "optional" && tls != "required") {
      return fail(absl::StrFormat("--tls '%s' is not off, optional or required", tls));
    }
    TlsServerFiles files{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                         absl::GetFlag(FLAGS_tls_ca)};
    files.plain_allowed = tls == "optional";
    const std::string client_cert = absl::GetFlag(FLAGS_tls_client_cert);
    if (client_cert == "none") {
      files.client_certs = ClientCerts::kNone;
    } else if (client_cert == "required") {
      files.client_certs = ClientCerts::kRequired;
    } else if (client_cert != "optional") {
      return fail(
          absl::StrFormat("--tls-client-cert '%s' is not none, optional or required", client_cert));
    }
    absl::StatusOr<std::shared_ptr<TlsServer>> server = TlsServer::Create(std::move(files));
    if (!server.ok()) return fail(server.status().message());
    options.tls = *std::move(server);
  } else if (!absl::GetFlag(FLAGS_tls_cert).empty() || !absl::GetFlag(FLAGS_tls_ca).empty()) {
    return fail("--tls-cert/--tls-ca are given but --tls is off: add --tls required (or optional)");
  }

  if (absl::GetFlag(FLAGS_list)) {
    std::fputs(FormatCanInterfaces(ListCanInterfaces(), absl::GetFlag(FLAGS_json)).c_str(), stdout);
    return 0;
  }
  const std::string interface = absl::AsciiStrToLower(absl::GetFlag(FLAGS_interface));
  if (interface != "virtual" && interface != "socketcan" && interface != "slcan" &&
      !IsPythonCanHardwareInterface(interface)) {
    return fail(ResolvePythonCanChannel(interface, "", {}).status().message());
  }
  // Channels: the command line's, else the config file's, else --channel's default (can0).
  std::vector<ChannelSpec> specs = config_channels;
  if (!channel_args.empty() || specs.empty()) {
    specs.clear();
    // python-can's default channel for a hardware interface is its first: 0.
    std::vector<std::string> defaults = absl::GetFlag(FLAGS_channel);
    if (IsPythonCanHardwareInterface(interface) && defaults == std::vector<std::string>{"can0"}) {
      defaults = {"0"};
    }
    if (interface == "slcan" && channel_args.empty() && config_channels.empty()) {
      return fail(
          "--interface slcan: give the adapter's serial device: --channel "
          "/dev/ttyACM0@115200 --bitrate 500000");
    }
    for (const std::string& text : channel_args.empty() ? defaults : channel_args) {
      absl::StatusOr<ChannelSpec> spec = ParseChannelSpec(text);
      if (!spec.ok()) return fail(spec.status().message());
      specs.push_back(*spec);
    }
  }
  if (absl::Status ports = AssignPorts(specs, port); !ports.ok()) return fail(ports.message());
  const int virtual_bitrate = absl::GetFlag(FLAGS_virtual_bitrate);
  std::vector<ServedChannel> channels;
  // Serial adapters attached for slcan channels: detached (their netdevs gone) after the server
  // that serves them has stopped, being declared before it.
  std::vector<std::unique_ptr<SlcanAttachment>> slcan;
  bool any_virtual = false;
  for (ChannelSpec& spec : specs) {
    if (spec.backend.empty()) spec.backend = interface;
    std::shared_ptr<CanBackend> backend;
    if (spec.backend == "virtual") {
      any_virtual = true;
      auto bus = VirtualBus::Create(spec.name, 65536, virtual_bitrate,
                                    static_cast<size_t>(absl::GetFlag(FLAGS_virtual_txqueuelen)));
      if (!bus.ok()) return fail(bus.status().message());
      backend = *std::move(bus);
    } else {
      if (spec.backend == "slcan") {
        // canserver attaches the serial adapter itself; the netdev goes when canserver does.
        absl::StatusOr<std::unique_ptr<SlcanAttachment>> attached =
            SlcanAttachment::Attach(spec.name, absl::GetFlag(FLAGS_bitrate));
        if (!attached.ok()) return fail(attached.status().message());
        spec.name = (*attached)->netdev();
        slcan.push_back(*std::move(attached));
      }
      if (IsPythonCanHardwareInterface(spec.backend)) {
        // kvaser 0, pcan PCAN_USBBUS1, …: the netdev its Linux driver made.
        const std::vector<CanNetdev> netdevs = ScanCanNetdevs();
        absl::StatusOr<std::string> netdev =
            ResolvePythonCanChannel(spec.backend, spec.name, netdevs);
        if (!netdev.ok()) return fail(netdev.status().message());
        CS_LOG(kInfo, "%s %s is %s", spec.backend, spec.name, *netdev);
        spec.name = *netdev;
      }
      auto can = SocketCanBackend::Open({spec.name, absl::GetFlag(FLAGS_error_frames),
                                         absl::GetFlag(FLAGS_rcvbuf),
                                         absl::GetFlag(FLAGS_wait_for_interface)});
      if (!can.ok()) return fail(can.status().message());
      backend = *std::move(can);
    }
    if (const int32_t want = absl::GetFlag(FLAGS_bitrate); want > 0) {
      const BusTiming timing = backend->timing();
      if (timing.bitrate > 0 && timing.bitrate != want) {
        if (absl::Status set = backend->SetBitrate(want); !set.ok()) return fail(set.message());
      }
    }
    if (const int restart_ms = absl::GetFlag(FLAGS_restart_ms); restart_ms >= 0) {
      if (backend->timing().bitrate > 0) {
        if (absl::Status set = backend->SetRestartMs(static_cast<uint32_t>(restart_ms)); !set.ok())
          return fail(set.message());
      }
    }
    channels.push_back({std::move(backend), static_cast<uint16_t>(spec.port)});
  }
  if (virtual_bitrate != 0 && !any_virtual) {
    return fail("--virtual-bitrate applies to virtual channels only (a real bus has its own)");
  }

  // Block SIGINT/SIGTERM in every thread; one thread waits for them and shuts the server down.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // re-read the TLS certificate files
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::Status fds = FitDescriptorBudget(options, channels.size()); !fds.ok()) {
    return fail(fds.message());
  }
  auto server =
      RemoteServer::Create(options, std::move(channels), absl::GetFlag(FLAGS_error_frames));
  if (!server.ok()) return fail(server.status().message());
  std::unique_ptr<HttpServer> http;  // destroyed before the server it reports on
  if (const std::string http_flag = absl::GetFlag(FLAGS_http); !http_flag.empty()) {
    absl::StatusOr<HostPort> address = ParseHostPort(http_flag, 9754);
    if (!address.ok()) return fail(absl::StrCat("--http: ", address.status().message()));
    RemoteServer* s = server->get();
    std::optional<TlsServerFiles> https;
    if (options.tls != nullptr) https = options.tls->files();  // the same certificate as v5/v6
    auto started = HttpServer::Start(
        *address, options.allow, [s] { return s->Status(); }, std::move(https));
    if (!started.ok()) return fail(started.status().message());
    http = *std::move(started);
  }

  // systemd (Type=notify): ready once every listener is bound; the watchdog is pinged from this
  // thread while it runs, and STATUS says who is connected. Without systemd these are no-ops.
  const size_t channel_count = (*server)->channel_count();
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu channel(s), no clients yet", channel_count);
  uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  std::jthread signal_waiter([&](std::stop_token stop) {
    const timespec tick{0, 200'000'000};
    absl::Time last_ping = absl::Now();
    absl::Time last_status = absl::Now();
    size_t last_sessions = 0;
    while (!stop.stop_requested()) {
      const int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig == SIGHUP) {
        if (options.tls == nullptr) {
          CS_LOG(kInfo, "SIGHUP: nothing to reload (no --tls)");
        } else if (absl::Status reloaded = options.tls->Reload(); reloaded.ok()) {
          CS_LOG(kInfo, "SIGHUP: reloaded the TLS certificate files; new connections use them");
          if (http != nullptr) {
            if (absl::Status h = http->Reload(); !h.ok()) {
              CS_LOG(kError, "SIGHUP: the HTTP port keeps the old certificate: %s", h.message());
            }
          }
        } else {
          CS_LOG(kError, "SIGHUP: kept the old TLS certificates: %s", reloaded.message());
        }
        continue;
      }
      if (sig > 0) {
        CS_LOG(kInfo, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
        (*server)->Shutdown();
        return;
      }
      const absl::Time now = absl::Now();
      if (watchdog && now - last_ping >= absl::Microseconds(watchdog_usec / 2)) {
        // Only while every CAN and io thread makes progress: a wedged one gets us restarted.
        const std::vector<std::string> stalled = (*server)->StalledThreads(kStallAfter);
        if (stalled.empty()) {
          sd_notify(0, "WATCHDOG=1");
        } else {
          CS_LOG_LIMITED(kError, "watchdog: %s made no progress for %s; not pinging systemd",
                         absl::StrJoin(stalled, ", "), absl::FormatDuration(kStallAfter));
        }
        last_ping = now;
      }
      if (now - last_status >= absl::Seconds(2)) {
        const size_t sessions = (*server)->session_count();
        if (sessions != last_sessions) {
          sd_notifyf(0, "STATUS=serving %zu channel(s), %zu client(s)", channel_count, sessions);
          last_sessions = sessions;
        }
        last_status = now;
      }
    }
  });
  const absl::Status served = (*server)->ServeForever();
  signal_waiter.request_stop();
  signal_waiter.join();
  (*server)->ServerClose();
  if (!served.ok()) return fail(served.message());
  return 0;
}
