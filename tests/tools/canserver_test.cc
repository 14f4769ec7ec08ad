// The canserver program: flags, one-line errors, and shutdown on SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/unique_fd.h"
#include "net/remote_bus.h"
#include "net/socket_util.h"
#include "net/test_server.h"
#include "process_util.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestServer;

std::string Bin() { return testing::BuildDir() + "/tools/canserver"; }
std::pair<std::string, int> Shell(const std::string& cmd) { return testing::RunShell(cmd); }

// canserver on the virtual bus as a child process, its stderr in a file.
class Child {
 public:
  explicit Child(std::vector<std::string> extra = {}) {
    static int count = 0;
    log_ =
        absl::StrCat(::testing::TempDir(), "/canserver-child-", ::getpid(), "-", ++count, ".log");
    std::remove(log_.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      (void)::freopen(log_.c_str(), "w", stderr);
      const std::string bin = Bin();
      std::vector<std::string> args = {bin,      "--interface",        "virtual",
                                       "--host", "127.0.0.1",          "--port",
                                       "0",      "--socketcand-port=0"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      const std::string text = Log();
      // The channel's line ("serving … on 127.0.0.1:PORT"), not --http's, which may come first.
      const size_t serving = text.find("serving ");
      const size_t at =
          serving == std::string::npos ? serving : text.find("on 127.0.0.1:", serving);
      const size_t end = at == std::string::npos ? at : text.find_first_of(" \n", at + 13);
      if (end != std::string::npos) {
        address_ = text.substr(at + 3, end - at - 3);
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // Sends `sig` and returns the exit status and how long the exit took.
  std::pair<int, absl::Duration> Signal(int sig) {
    const absl::Time start = absl::Now();
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), absl::Now() - start};
  }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // The port of "serving socketcand clients on 127.0.0.1:PORT" in the log; 0 if none.
  uint16_t socketcand_port() const {
    const std::string text = Log();
    const std::string key = "socketcand clients on 127.0.0.1:";
    const size_t at = text.find(key);
    return at == std::string::npos
               ? 0
               : static_cast<uint16_t>(std::atoi(text.c_str() + at + key.size()));
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
  std::string address_;
};

class CanserverSignalTest : public ::testing::TestWithParam<int> {};

TEST_P(CanserverSignalTest, StopsAcceptingTellsClientsAndExitsZero) {
  Child child;
  ASSERT_FALSE(child.address().empty()) << child.Log();
  RemoteBusOptions opts;
  opts.channel = child.address();
  auto a = RemoteBus::Connect(opts);
  auto b = RemoteBus::Connect(opts);
  ASSERT_TRUE(a.ok() && b.ok());
  auto [rc, took] = child.Signal(GetParam());
  EXPECT_EQ(rc, 0) << child.Log();
  EXPECT_LT(took, absl::Seconds(5));
  for (auto* bus : {a->get(), b->get()}) {
    auto got = bus->Recv(absl::Seconds(2));
    ASSERT_FALSE(got.ok());
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("server shutting down"));
  }
  EXPECT_THAT(child.Log(), HasSubstr("shutting down"));
  EXPECT_FALSE(RemoteBus::Connect(opts).ok()) << "still accepting after the signal";
}

INSTANTIATE_TEST_SUITE_P(TermAndInt, CanserverSignalTest, ::testing::Values(SIGTERM, SIGINT));

TEST(CanserverFlagsTest, BadFlagsAreOneLineErrors) {
  for (const char* args :
       {"--threads 0", "--port 70000", "--interface carrier-pigeon", "--allow 10.0.0.0/40",
        "--ring-size -1", "--tx-timeout -1s", "--client-tx-queue 0", "--virtual-bitrate -5",
        "--interface socketcan --virtual-bitrate 500000", "--interface virtual --allow=",
        "--interface virtual --allow=,", "--interface virtual --allow 10.0.0.1,,10.0.0.2",
        "--interface virtual --max-clients-per-address -1", "--interface virtual --min-period 10us",
        "--interface virtual --client-sndbuf 100 --port 0 --socketcand-port 0"}) {
    auto [out, rc] = Shell(absl::StrCat(Bin(), " ", args));
    EXPECT_EQ(rc, 1) << args;
    std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
    EXPECT_EQ(lines.size(), 1u) << args << ":\n" << out;
  }
}

TEST(CanserverFlagsTest, PythonCanInterfaceNamesGetOneLineAnswers) {
  // This machine has no CAN adapters: the seed's command line says so plainly; interfaces
  // without a Linux driver and unknown ones are named as such (the mapping itself:
  // tests/core/python_can_names_test.cc, on a real kernel: VM scenario 35).
  const std::pair<const char*, const char*> cases[] = {
      {"--interface kvaser --channel 0 --port 54702", "no Kvaser adapter with a SocketCAN driver"},
      {"--channel pcan:PCAN_USBBUS1:54703", "no PEAK-System adapter"},
      {"--interface vector", "Vector's XL library has no Linux driver"},
      {"--interface slcan", "give the adapter's serial device: --channel /dev/ttyACM0@115200"},
      {"--interface slcan --channel /dev/null@115200 --bitrate 500000",
       "/dev/null is not a serial device"},
      {"--interface slcan --channel /dev/ttyS0@123", "'123' is not a serial baud rate"},
      {"--interface frobnicator", "--interface frobnicator: unknown"},
  };
  for (const auto& [args, says] : cases) {
    auto [out, rc] = Shell(absl::StrCat(Bin(), " ", args, " 2>&1"));
    EXPECT_EQ(rc, 1) << args;
    EXPECT_THAT(out, HasSubstr(says)) << args;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ":\n" << out;
  }
  auto [json, rc] = Shell(absl::StrCat(Bin(), " --list --json"));
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(json.front(), '[') << json;
}

TEST(CanserverFlagsTest, HelpExplainsEveryFlagWithItsDefault) {
  auto [out, rc] = Shell(Bin() + " --help");
  EXPECT_EQ(rc, 0);
  for (const char* flag : {"--interface", "--channel", "--host", "--port", "--threads", "--bitrate",
                           "--error-frames", "--ring-size", "--output-buffer", "--max-clients",
                           "--client-tx-queue", "--tx-timeout", "--virtual-bitrate", "--allow",
                           "--handshake-timeout", "--slow-client-timeout", "--config", "--http"}) {
    EXPECT_THAT(out, HasSubstr(std::string(flag) + " (default: "));
  }
  EXPECT_THAT(out, HasSubstr("--port (default: 54701)"));
  // Grouped by topic, every flag in one, and no path of the machine that built it.
  for (const char* topic :
       {"\nChannels:\n", "\nNetwork and access:\n", "\nLimits", "\nLogging:\n"}) {
    EXPECT_THAT(out, HasSubstr(topic));
  }
  EXPECT_THAT(out, Not(HasSubstr("\nOther:\n"))) << "a flag without a topic";
  EXPECT_THAT(out, Not(HasSubstr("Flags from")));
  EXPECT_THAT(out, Not(HasSubstr("/work/")));
  auto [version, vrc] = Shell(Bin() + " --version");
  EXPECT_EQ(vrc, 0);
  EXPECT_EQ(version, absl::StrCat("canserver ", kVersion, "\n"));
}

// Under systemd, stderr is the journal (JOURNAL_STREAM names it as device:inode): lines carry a
// syslog priority and no timestamp of their own; elsewhere they keep "I 12:00:00.123 ".
TEST(CanserverFlagsTest, LogLinesSuitTheJournalWhenStderrIsIt) {
  const std::string log = ::testing::TempDir() + "/journal-stream.log";
  const std::string run = absl::StrCat(
      "f=", log, "; : > $f; JOURNAL_STREAM=$(stat -c %d:%i $f) timeout -s TERM 1 ", Bin(),
      " --interface virtual --host 127.0.0.1 --port 0 --socketcand-port 0 2>>$f; cat $f");
  auto [journal, rc] = Shell(run);
  EXPECT_THAT(journal, HasSubstr("<6>serving virtual channel 'can0'"));
  EXPECT_THAT(journal, Not(HasSubstr("I ")));
  auto [plain, rc2] = Shell(
      absl::StrCat("JOURNAL_STREAM=1:1 timeout -s TERM 1 ", Bin(),
                   " --interface virtual --host 127.0.0.1 --port 0 --socketcand-port 0 2>&1"));
  EXPECT_THAT(plain, ::testing::ContainsRegex("I [0-9:.]+ serving virtual channel 'can0'"));
  // A fatal start-up error at priority err.
  auto [fatal, rc3] = Shell(absl::StrCat("f=", log, "; : > $f; JOURNAL_STREAM=$(stat -c %d:%i $f) ",
                                         Bin(), " --threads 0 2>>$f; cat $f"));
  EXPECT_EQ(fatal, "<3>canserver: --threads must be positive (got 0)\n");
}

// Type=notify: canserver tells systemd (NOTIFY_SOCKET) READY once bound, pings the watchdog
// (WATCHDOG_USEC) and says STOPPING on SIGTERM.
TEST(CanserverFlagsTest, NotifiesSystemdReadyWatchdogAndStopping) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/notify-", ::getpid());
  ::unlink(path.c_str());
  UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::thread server([&] {
    (void)Shell(absl::StrCat("NOTIFY_SOCKET=", path, " WATCHDOG_USEC=400000 timeout -s TERM 2 ",
                             Bin(),
                             " --interface virtual --host 127.0.0.1 --port 0 --socketcand-port 0"));
  });
  std::string messages;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && messages.find("STOPPING=1") == std::string::npos) {
    pollfd p{sock.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    const ssize_t n = ::recv(sock.get(), buf, sizeof buf, 0);
    if (n > 0) absl::StrAppend(&messages, absl::string_view(buf, static_cast<size_t>(n)), "|");
  }
  server.join();
  ::unlink(path.c_str());
  EXPECT_THAT(messages, HasSubstr("READY=1\nSTATUS=serving 1 channel(s)"));
  EXPECT_THAT(messages, HasSubstr("WATCHDOG=1"));
  EXPECT_THAT(messages, HasSubstr("STOPPING=1"));
  EXPECT_LT(messages.find("READY=1"), messages.find("STOPPING=1"));
}

// "serving virtual channel 'NAME' on 127.0.0.1:PORT" → NAME → "127.0.0.1:PORT".
std::map<std::string, std::string> Served(const std::string& log) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    const size_t q = line.find("channel '");
    const size_t on = line.find("' on ");
    if (!absl::StrContains(line, "serving") || q == line.npos || on == line.npos) continue;
    out[std::string(line.substr(q + 9, on - q - 9))] = std::string(line.substr(on + 5));
  }
  return out;
}

// Frames sent through one channel's port reach that channel's other client only.
void ExpectSeparateBuses(const std::map<std::string, std::string>& served) {
  std::vector<std::unique_ptr<RemoteBus>> senders, receivers;
  for (const auto& [name, address] : served) {
    RemoteBusOptions opts;
    opts.channel = address;
    auto s = RemoteBus::Connect(opts);
    auto r = RemoteBus::Connect(opts);
    ASSERT_TRUE(s.ok() && r.ok()) << name;
    EXPECT_THAT((*s)->channel_info(), HasSubstr("'" + name + "'"));
    senders.push_back(*std::move(s));
    receivers.push_back(*std::move(r));
  }
  absl::SleepFor(absl::Milliseconds(200));  // subscriptions settle
  for (size_t i = 0; i < senders.size(); ++i) {
    ASSERT_TRUE(senders[i]->Send(CanFrame::Classic(0x100 + static_cast<uint32_t>(i), {})).ok());
  }
  for (size_t i = 0; i < receivers.size(); ++i) {
    auto got = receivers[i]->Recv(absl::Seconds(5));
    ASSERT_TRUE(got.ok() && got->has_value()) << i;
    EXPECT_EQ((*got)->id, 0x100 + i);
    auto more = receivers[i]->Recv(absl::Milliseconds(200));
    ASSERT_TRUE(more.ok());
    EXPECT_FALSE(more->has_value()) << "channel " << i << " got another channel's frame";
  }
}

TEST(CanserverChannelsTest, RepeatedChannelFlagsServeEveryChannelInOneProcess) {
  Child child({"--channel", "body", "--channel=chassis", "--channel", "virtual:diag,powertrain"});
  ASSERT_FALSE(child.address().empty()) << child.Log();
  const auto served = Served(child.Log());
  EXPECT_EQ(served.size(), 4u) << child.Log();
  ExpectSeparateBuses(served);
}

TEST(CanserverChannelsTest, AConfigFileServesItsChannels) {
  const std::string conf = absl::StrCat(::testing::TempDir(), "/rig-", ::getpid(), ".conf");
  std::ofstream(conf) << "[canserver]\nthreads = 2\nslow-client-timeout = 5s\n\n"
                         "[vcan0]\n[vcan1]\nport = 0\n[vcan2]\n";
  Child child({"--config", conf});
  ASSERT_FALSE(child.address().empty()) << child.Log();
  const auto served = Served(child.Log());
  EXPECT_EQ(served.size(), 3u) << child.Log();
  ExpectSeparateBuses(served);
}

TEST(CanserverChannelsTest, ABadConfigFileIsOneLineAndExitTwo) {
  const std::string conf = absl::StrCat(::testing::TempDir(), "/bad-", ::getpid(), ".conf");
  for (const char* text : {"[can0]\nprot = 1\n", "[canserver]\nthreds = 2\n[can0]\n",
                           "[can0]\nport = 5000\n[can1]\nport = 5000\n", "[can0]\nport =\n",
                           "[canserver]\nthreads = many\n[can0]\n"}) {
    std::ofstream(conf) << text;
    auto [out, rc] = Shell(absl::StrCat(Bin(), " --config ", conf));
    EXPECT_EQ(rc, 2) << text << out;
    std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u) << text << ":\n" << out;
    EXPECT_THAT(lines[0], HasSubstr("canserver: " + conf)) << text;
  }
  // Where exactly (#25): a value the flag refuses, an unclosed section, an empty allow.
  for (auto [text, want] : {std::pair{"[canserver]\n\nthreads = x\n[can0]\n", ":3: threads = x: "},
                            std::pair{"[canserver\nthreads = 2\n[can0]\n",
                                      ":1: '[canserver' opens a section but has no closing ']'"},
                            std::pair{"[canserver]\nallow = \n[can0]\n", "has no value"},
                            std::pair{"[canserver]\nallow = ,\n[can0]\n", "empty entry"}}) {
    std::ofstream(conf) << text;
    auto [out, rc] = Shell(absl::StrCat(Bin(), " --config ", conf));
    EXPECT_NE(rc, 0) << text;
    EXPECT_THAT(out, HasSubstr(want)) << text;
  }
  auto [out, rc] = Shell(Bin() + " --config /nonexistent/canserver.conf");
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(out, HasSubstr("cannot read --config /nonexistent/canserver.conf"));
}

// The packaged /etc/canserver/canserver.conf is safe by default (#27): the rig computer itself
// may send and configure, every other client only receives.
TEST(CanserverConfigTest, ThePackagedConfigLetsOnlyThisComputerTransmit) {
  const std::string conf = testing::BuildDir() + "/../tools/systemd/canserver.conf";
  Child c({"--config", conf, "--channel", "bench", "--http", "127.0.0.1:0"});
  ASSERT_FALSE(c.address().empty()) << c.Log();
  // The roles line follows the channel's (a loaded machine may read the log between them).
  const std::string roles =
      "roles: local: 127.0.0.0/8 ::1 configure; all: * monitor; anyone else: monitor";
  EXPECT_TRUE(TestServer::WaitUntil([&] { return c.Log().find(roles) != std::string::npos; }))
      << c.Log();
}

TEST(CanserverFlagsTest, ATakenPortIsAOneLineError) {
  Child first;
  ASSERT_FALSE(first.address().empty());
  const std::string port = first.address().substr(first.address().find(':') + 1);
  auto [out, rc] =
      Shell(absl::StrCat(Bin(), " --interface virtual --socketcand-port 0 --host 127.0.0.1 --port ",
                         port, " 2>&1 | grep -v '^I '"));
  EXPECT_THAT(out, HasSubstr("canserver: bind(127.0.0.1:" + port + "): Address already in use"));
}

// CPU seconds the process has used (utime + stime).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(text.substr(paren + 2), ' ');
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  if (f.size() < 13) return 0;
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

size_t FdsOf(pid_t pid) {
  size_t n = 0;
  if (DIR* d = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n - 2;  // . and ..
}

// #24: with its descriptors used up, accept() failed with EMFILE in a busy loop at 100% of a core,
// logging up to a million lines a second, and new clients timed out without a word.
TEST(CanserverHostileTest, OutOfDescriptorsItRefusesWithAReasonAndDoesNotSpin) {
#if defined(__SANITIZE_ADDRESS__)
  // The ASan build includes UBSan, whose vptr check opens a pipe to test that it may read the
  // object it checks (libsanitizer's IsAccessibleMemoryRange): with no descriptor free it calls
  // every object invalid and stops the server. A report about itself, not about canserver.
  GTEST_SKIP() << "UBSan's vptr check needs a free descriptor";
#endif
  Child child({"--max-clients-per-address", "0"});
  ASSERT_FALSE(child.address().empty()) << child.Log();
  const rlim_t limit = FdsOf(child.pid()) + 6;  // a few connections, then none
  const rlimit lowered{limit, limit};
  ASSERT_EQ(::prlimit(child.pid(), RLIMIT_NOFILE, &lowered, nullptr), 0);
  const uint16_t port = static_cast<uint16_t>(
      std::atoi(child.address().substr(child.address().rfind(':') + 1).c_str()));
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 40; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    idle.push_back(std::move(fd));
  }
  absl::SleepFor(absl::Milliseconds(500));
  const double cpu_before = CpuSeconds(child.pid());
  absl::SleepFor(absl::Seconds(2));
  const double cpu = CpuSeconds(child.pid()) - cpu_before;
  std::printf("out of descriptors: %.3f s of CPU in 2 s\n", cpu);
  EXPECT_LT(cpu, 0.2) << "more than 10% of a core while starved";
  RemoteBusOptions opts;
  opts.channel = child.address();
  auto refused = RemoteBus::Connect(opts);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("out of file descriptors"))
      << child.Log();
  idle.clear();  // the starving connections go; a client is served again
  bool served = false;
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!served && absl::Now() < end) {
    served = RemoteBus::Connect(opts).ok();
    if (!served) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(served) << child.Log();
  const std::string log = child.Log();
  const std::vector<std::string> lines = absl::StrSplit(log, '\n');
  const auto accept_lines = std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("accept: ") != std::string::npos;
  });
  std::printf("%ld log lines about accept over the whole test\n", static_cast<long>(accept_lines));
  EXPECT_GE(accept_lines, 1) << log;
  EXPECT_LE(accept_lines, 11) << "the log is rate-limited";
}

// #24: 64 socketcand jobs of 1 µs wedged an io thread and SIGTERM did not finish in 12 s.
TEST(CanserverHostileTest, SigtermEndsItWithinTwoSecondsWhilePeriodicJobsRun) {
  uint16_t free_port = 0;
  {
    UniqueFd probe = *ListenTcp(HostPort{"127.0.0.1", 0});
    free_port = LocalPort(probe.get());
  }
  Child child({absl::StrCat("--socketcand-port=", free_port)});
  const uint16_t port = child.socketcand_port();
  ASSERT_EQ(port, free_port) << child.Log();
  UniqueFd fd = *ConnectTcp(HostPort{"127.0.0.1", port}, absl::Seconds(5));
  std::string jobs = "< open can0 >";
  for (int i = 0; i < 64; ++i)
    jobs += absl::StrFormat("< add 0 %d %X 8 1 2 3 4 5 6 7 8 >", i % 2, 0x100 + i);
  ASSERT_EQ(::send(fd.get(), jobs.data(), jobs.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(jobs.size()));
  absl::SleepFor(absl::Seconds(1));
  auto [rc, took] = child.Signal(SIGTERM);
  EXPECT_EQ(rc, 0);
  EXPECT_LT(took, absl::Seconds(2));
}

}  // namespace
}  // namespace canserver
