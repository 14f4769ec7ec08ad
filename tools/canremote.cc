// canremote: can-utils style tools for a bus on a canserver.
//
//   canremote dump [-c host:port] [-t a|A|d|z] [-x] [-L] [-n count] [FILTER ...]   candump's output
//   canremote send [-c host:port] FRAME ...                                  cansend syntax
//   canremote log  [-c host:port] -f FILE [-n count] [-T seconds]            candump -L log file
//   canremote lease [-c host:port] SECONDS -- CMD [ARGS]     CMD runs while this holds the bus
//
// The bus comes from -c/-i/-b, else CAN_CHANNEL/CAN_INTERFACE/CAN_BITRATE, else the [default]
// section of ./can.ini, ~/can.ini or ~/.canrc (as python-can reads them).
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/pcapng.h"
#include "core/text_format.h"
#include "core/version.h"
#include "net/client_config.h"
#include "net/remote_bus.h"

namespace canserver {
namespace {

volatile sig_atomic_t g_stop = 0;  // set by SIGINT/SIGTERM; this tool is single-threaded

constexpr char kUsage[] =
    "usage: canremote dump|send|log|lease [options] [args]   (options before or after the "
    "command)\n"
    "  common:  -c, --channel host[:port]   canserver to use (default: CAN_CHANNEL, can.ini, "
    "~/.canrc)\n"
    "           -i, --interface remote      only 'remote' (the bus is reached through canserver)\n"
    "           -b, --bitrate BPS           bit rate the bus must run at (default: any)\n"
    "           --tls-ca FILE               TLS: verify canserver's certificate against this CA\n"
    "           --tls-cert FILE --tls-key FILE  this client's certificate, where canserver asks\n"
    "                                       (tls_ca, tls_cert, tls_key in ~/.canrc too)\n"
    "  dump [FILTER ...]  print frames as they arrive, as candump prints them; FILTER is\n"
    "                      candump's <id>:<mask> in hex\n"
    "           -t a|A|d|z timestamps: absolute, absolute with date, delta, zero-based\n"
    "           -x         candump's extra message info (RX and the CAN FD flags)\n"
    "           --pcap FILE  write pcapng for Wireshark instead (- : stdout), e.g.\n"
    "                      canremote dump -c rig1 --pcap - | wireshark -k -i -\n"
    "           -L         log-line format: (seconds) ifname frame, as candump -L writes\n"
    "           -n COUNT   exit after COUNT frames\n"
    "  send FRAME ...      send frames in cansend syntax: 123#DEADBEEF, 1ABCDEF0#11.22, 123#R;\n"
    "                      CAN FD as 123##1DEADBEEF (digit after ##: 1 bit rate switch, 2 ESI)\n"
    "  log -f FILE         write the bus to FILE in candump -L format (canplayer, log2asc and\n"
    "                      python-can read it); a progress line on stderr, a summary at the end\n"
    "           -n COUNT   stop after COUNT frames;  -T SECONDS  stop after SECONDS\n"
    "  lease SECONDS -- CMD [ARGS]  take the bus's exclusive transmit lease, run CMD, release\n"
    "                      it when CMD ends (renewed meanwhile); other clients may not transmit\n"
    "                      and their periodic jobs pause. CMD's own canserver clients join the\n"
    "                      lease through CANSERVER_LEASE (canremote, the python plugin). Exits\n"
    "                      with CMD's status; 1 if the lease was refused (its holder named)\n"
    "  dump, log: --reconnect SECONDS  when the connection breaks (a blip, a restarted\n"
    "                      server), say so on stderr and reconnect for up to SECONDS (default\n"
    "                      60; 0: exit with the error): the same session if canserver still\n"
    "                      keeps it (--resume-grace; the frames of the gap arrive), else a new\n"
    "                      one with the same filters\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "canremote: %s\n", message.c_str());
  return 1;
}

struct Options {
  ClientConfigOverrides config;
  char timestamps = 0;
  bool log_format = false;
  bool extra = false;  // candump -x
  std::string pcap;    // --pcap FILE ("-": stdout): pcapng for Wireshark instead of text
  std::optional<uint64_t> count;
  std::optional<double> seconds;
  double reconnect = 60;  // dump, log: seconds to keep trying after the connection broke
  std::string file;
  std::vector<std::string> args;
};

std::optional<Options> Parse(int argc, char** argv, std::string* error) {
  Options o;
  static const option kLong[] = {
      {"channel", required_argument, nullptr, 'c'}, {"interface", required_argument, nullptr, 'i'},
      {"bitrate", required_argument, nullptr, 'b'}, {"help", no_argument, nullptr, 'h'},
      {"pcap", required_argument, nullptr, 'P'},    {"reconnect", required_argument, nullptr, 'R'},
      {"tls-ca", required_argument, nullptr, 'A'},  {"tls-cert", required_argument, nullptr, 'C'},
      {"tls-key", required_argument, nullptr, 'K'}, {nullptr, 0, nullptr, 0}};
  optind = 1;
  opterr = 0;
  int c;
  // Options before or after the command and its arguments, as users type them
  // ("canremote -c rig1 dump", "canremote dump -c rig1"): getopt permutes.
  while ((c = getopt_long(argc, argv, "c:i:b:t:xLn:f:T:h", kLong, nullptr)) != -1) {
    switch (c) {
      case 'c':
        o.config.channel = optarg;
        break;
      case 'i':
        o.config.interface = optarg;
        break;
      case 'b': {
        int32_t b;
        if (!absl::SimpleAtoi(optarg, &b) || b <= 0) {
          *error = absl::StrFormat("-b %s: not a positive bitrate", optarg);
          return std::nullopt;
        }
        o.config.bitrate = b;
        break;
      }
      case 't':
        if (std::string(optarg).size() != 1 ||
            std::string("aAdz").find(optarg[0]) == std::string::npos) {
          *error = absl::StrFormat(
              "-t %s: use a (absolute), A (absolute with date), d (delta) or z (zero-based)",
              optarg);
          return std::nullopt;
        }
        o.timestamps = optarg[0];
        break;
      case 'L':
        o.log_format = true;
        break;
      case 'x':
        o.extra = true;
        break;
      case 'P':
        o.pcap = optarg;
        break;
      case 'n': {
        uint64_t n;
        if (!absl::SimpleAtoi(optarg, &n) || n == 0) {
          *error = absl::StrFormat("-n %s: not a positive count", optarg);
          return std::nullopt;
        }
        o.count = n;
        break;
      }
      case 'T': {
        double s;
        if (!absl::SimpleAtod(optarg, &s) || s <= 0) {
          *error = absl::StrFormat("-T %s: not a positive number of seconds", optarg);
          return std::nullopt;
        }
        o.seconds = s;
        break;
      }
      case 'f':
        o.file = optarg;
        break;
      case 'R': {
        double s;
        if (!absl::SimpleAtod(optarg, &s) || s < 0) {
          *error = absl::StrFormat("--reconnect %s: not a number of seconds (0: off)", optarg);
          return std::nullopt;
        }
        o.reconnect = s;
        break;
      }
      case 'A':
        o.config.tls_ca = optarg;
        break;
      case 'C':
        o.config.tls_cert = optarg;
        break;
      case 'K':
        o.config.tls_key = optarg;
        break;
      case 'h':
        *error = "";
        return std::nullopt;
      default:
        *error = absl::StrFormat("unknown or incomplete option '%s'", argv[optind - 1]);
        return std::nullopt;
    }
  }
  for (int i = optind; i < argc; ++i) o.args.push_back(argv[i]);
  return o;
}

// `keep`: a long-running reader (dump, log) that keeps its session across a broken connection
// for up to --reconnect seconds (RemoteBusOptions::reconnect).
absl::StatusOr<std::unique_ptr<RemoteBus>> Open(const Options& o, std::vector<CanFilter> filters,
                                                bool keep = false) {
  absl::StatusOr<ClientConfig> config = LoadClientConfig(o.config);
  if (!config.ok()) return config.status();
  RemoteBusOptions opts;
  opts.channel = config->channel;
  opts.bitrate = config->bitrate;
  opts.filters = std::move(filters);
  opts.tls = {config->tls_ca, config->tls_cert, config->tls_key};
  if (keep && o.reconnect > 0) {
    opts.reconnect = absl::Seconds(o.reconnect);
    opts.on_break = [seconds = o.reconnect](const absl::Status& why) {
      std::fprintf(stderr, "canremote: %s; reconnecting (for up to %g s)\n",
                   std::string(why.message()).c_str(), seconds);
    };
  }
  // Started by `canremote lease`: transmit under its lease.
  if (const char* token = std::getenv("CANSERVER_LEASE")) opts.lease_token = token;
  absl::StatusOr<std::unique_ptr<RemoteBus>> bus = RemoteBus::Connect(opts);
  if (bus.ok() && !(*bus)->lease_note().empty()) {
    std::fprintf(stderr, "canremote: CANSERVER_LEASE not joined: %s\n",
                 (*bus)->lease_note().c_str());
  }
  return bus;
}

// Tells stderr when the reader's connection broke and came back (RemoteBus reconnects by
// itself with --reconnect): resumed, with the server's count of frames lost, or a new session
// that missed what the bus carried meanwhile.
class ReconnectReporter {
 public:
  void Check(const RemoteBus& bus) {
    const ReconnectStatus now = bus.reconnect_status();
    if (now.breaks == breaks_) return;
    breaks_ = now.breaks;
    std::fprintf(stderr, "canremote: %s\n", now.last.c_str());
  }

 private:
  uint64_t breaks_ = 0;
};

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Dump(const Options& o) {
  std::vector<CanFilter> filters;
  for (const std::string& f : o.args) {
    absl::StatusOr<CanFilter> filter = ParseFilter(f);
    if (!filter.ok()) return Fail(std::string(filter.status().message()));
    filters.push_back(*filter);
  }
  auto bus = Open(o, filters, /*keep=*/true);
  if (!bus.ok()) return Fail(std::string(bus.status().message()));
  const std::string ifname = ChannelNameFromInfo((*bus)->channel_info());
  InstallSignalHandlers();
  ReconnectReporter reconnects;
  uint64_t seen = 0;
  CandumpFormat screen(o.timestamps, o.extra, ifname);
  std::FILE* pcap = nullptr;
  if (!o.pcap.empty()) {
    pcap = o.pcap == "-" ? stdout : std::fopen(o.pcap.c_str(), "wb");
    if (pcap == nullptr) return Fail(absl::StrFormat("cannot write '%s'", o.pcap));
    const std::string head =
        pcapng::SectionHeader() +
        pcapng::InterfaceDescription(ifname, BitrateFromInfo((*bus)->channel_info()));
    std::fwrite(head.data(), 1, head.size(), pcap);
    std::fflush(pcap);
  }
  while (!g_stop && (!o.count || seen < *o.count)) {
    auto got = (*bus)->Recv(absl::Milliseconds(200));
    if (!got.ok()) return Fail(std::string(got.status().message()));
    reconnects.Check(**bus);
    if (!got->has_value()) continue;
    const CanFrame& f = **got;
    ++seen;
    if (pcap != nullptr) {
      const std::string block = pcapng::Packet(0, f);
      if (std::fwrite(block.data(), 1, block.size(), pcap) != block.size()) {
        return Fail("writing the capture failed (the reader went away?)");
      }
      std::fflush(pcap);  // a live capture: Wireshark shows each frame as it comes
      continue;
    }
    if (o.log_format) {
      std::printf("%s\n", FormatLogLine(f, ifname).c_str());
    } else {
      std::printf("%s\n", screen.Line(f).c_str());
    }
    std::fflush(stdout);
  }
  if (pcap != nullptr && pcap != stdout) std::fclose(pcap);
  return 0;
}

int Send(const Options& o) {
  if (o.args.empty()) return Fail("send: give at least one frame, e.g. 123#DEADBEEF");
  std::vector<CanFrame> frames;
  for (const std::string& text : o.args) {
    absl::StatusOr<CanFrame> f = ParseCansend(text);
    if (!f.ok()) return Fail(std::string(f.status().message()));
    frames.push_back(*f);
  }
  auto bus = Open(o, {});
  if (!bus.ok()) return Fail(std::string(bus.status().message()));
  for (const CanFrame& f : frames) {
    if (absl::Status s = (*bus)->Send(f); !s.ok()) return Fail(std::string(s.message()));
  }
  // A refused frame is reported right away by the server; wait briefly to tell the user.
  auto got = (*bus)->Recv(absl::Milliseconds(100));
  if (!got.ok()) return Fail(std::string(got.status().message()));
  if ((*bus)->transmit_failures() > 0) {
    return Fail(absl::StrFormat("the bus refused %d of %d frames (TransmitFail)",
                                (*bus)->transmit_failures(), frames.size()));
  }
  return 0;
}

int Log(const Options& o) {
  if (o.file.empty()) return Fail("log: give the output file with -f FILE");
  std::ofstream out(o.file, std::ios::trunc);
  if (!out) return Fail(absl::StrFormat("cannot write '%s'", o.file));
  auto bus = Open(o, {}, /*keep=*/true);
  if (!bus.ok()) return Fail(std::string(bus.status().message()));
  const std::string ifname = ChannelNameFromInfo((*bus)->channel_info());
  InstallSignalHandlers();
  ReconnectReporter reconnects;
  const absl::Time start = absl::Now();
  const absl::Time end = o.seconds ? start + absl::Seconds(*o.seconds) : absl::InfiniteFuture();
  absl::Time next_progress = start + absl::Seconds(1);
  uint64_t written = 0;
  uint64_t at_last_progress = 0;
  const bool tty = isatty(STDERR_FILENO);
  std::string error;
  while (!g_stop && absl::Now() < end && (!o.count || written < *o.count)) {
    auto got = (*bus)->Recv(std::min(absl::Milliseconds(200), end - absl::Now()));
    if (!got.ok()) {
      error = std::string(got.status().message());
      break;
    }
    reconnects.Check(**bus);
    if (got->has_value()) {
      out << FormatLogLine(**got, ifname) << '\n';
      ++written;
    }
    if (absl::Now() >= next_progress) {
      std::fprintf(stderr, "%s",
                   absl::StrFormat("%s%d frames, %d frames/s%s", tty ? "\r" : "", written,
                                   written - at_last_progress, tty ? "   " : "\n")
                       .c_str());
      at_last_progress = written;
      next_progress += absl::Seconds(1);
    }
  }
  out.flush();
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::fprintf(stderr, "%s",
               absl::StrFormat("%slogged %d frames in %.1f s to %s\n", tty ? "\r" : "", written,
                               secs, o.file)
                   .c_str());
  if (!error.empty()) return Fail(error);
  return out ? 0 : Fail(absl::StrFormat("writing '%s' failed", o.file));
}

int Lease(const Options& o) {
  double seconds = 0;
  if (o.args.size() < 2 || !absl::SimpleAtod(o.args[0], &seconds) || seconds <= 0) {
    return Fail("lease: give the seconds and the command: canremote lease 30 -- CMD [ARGS]");
  }
  // A filter almost nothing passes: the holder only keeps the lease, it does not listen.
  auto bus = Open(o, {CanFilter{0, 0x1FFFFFFF, true}});
  if (!bus.ok()) return Fail(std::string(bus.status().message()));
  const absl::Duration length = absl::Seconds(seconds);
  absl::StatusOr<LeaseGrant> grant = (*bus)->Lease(length);
  if (!grant.ok()) return Fail(absl::StrCat("lease refused: ", grant.status().message()));
  std::fprintf(stderr, "canremote: %s leased for %s (renewed while %s runs)\n",
               (*bus)->channel_info().c_str(), absl::FormatDuration(grant->remaining).c_str(),
               o.args[1].c_str());
  setenv("CANSERVER_LEASE", grant->token.c_str(), 1);
  std::vector<char*> argv;
  for (size_t i = 1; i < o.args.size(); ++i) argv.push_back(const_cast<char*>(o.args[i].c_str()));
  argv.push_back(nullptr);
  pid_t child = 0;
  if (const int rc = posix_spawnp(&child, argv[0], nullptr, nullptr, argv.data(), environ);
      rc != 0) {
    (void)(*bus)->Lease(absl::ZeroDuration());
    return Fail(absl::StrFormat("cannot run '%s': %s", argv[0], std::strerror(rc)));
  }
  InstallSignalHandlers();
  const absl::Duration renew_every = std::max(length / 2, absl::Milliseconds(500));
  absl::Time renew_at = absl::Now() + renew_every;
  bool held = true;
  int status = 0;
  bool forwarded = false;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (g_stop && !forwarded) {
      kill(child, SIGTERM);  // Ctrl-C: the command ends first, then the lease
      forwarded = true;
    }
    if (held) {
      absl::StatusOr<std::optional<CanFrame>> got = (*bus)->Recv(absl::Milliseconds(100));
      if (got.ok() && absl::Now() >= renew_at) {
        absl::StatusOr<LeaseGrant> again = (*bus)->Lease(length);
        if (!again.ok()) got = again.status();
        renew_at = absl::Now() + renew_every;
      }
      if (!got.ok()) {
        std::fprintf(stderr, "canremote: the lease is lost (%s); %s goes on without it\n",
                     std::string(got.status().message()).c_str(), o.args[1].c_str());
        held = false;
      }
    } else {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  if (held) (void)(*bus)->Lease(absl::ZeroDuration());
  (*bus)->Shutdown();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace
}  // namespace canserver

int main(int argc, char** argv) {
  using namespace canserver;
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("canremote %s\n", kVersion);
    return 0;
  }
  std::string error;
  std::optional<Options> options = Parse(argc, argv, &error);
  if (!options) {
    if (error.empty()) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    return Fail(error + " (see canremote --help)");
  }
  if (options->args.empty())
    return Fail("give a command: dump, send, log or lease (see canremote --help)");
  const std::string command = options->args.front();
  options->args.erase(options->args.begin());
  if (command == "dump") return Dump(*options);
  if (command == "send") return Send(*options);
  if (command == "log") return Log(*options);
  if (command == "lease") return Lease(*options);
  return Fail(absl::StrFormat("unknown command '%s': use dump, send, log or lease", command));
}
