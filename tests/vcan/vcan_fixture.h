// The vcan scenarios' fixture: a server on a real kernel's vcan0/vcan1 (natively or in the qemu VM
// of scripts/vcan-vm.sh), with candump and raw sockets as independent oracles of the bus.
#pragma once

#include <net/if.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "io/socketcan_backend.h"
#include "net/test_server.h"
#include "process_util.h"
#include "raw_can.h"

namespace canserver::testing {

class VcanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::if_nametoindex("vcan0") == 0 || ::if_nametoindex("vcan1") == 0) {
      GTEST_SKIP() << "no vcan0/vcan1 here: run through scripts/vcan-vm.sh (ctest -L vcan)";
    }
    (void)std::system("ip link set vcan0 up; ip link set vcan1 up");
  }

  static std::unique_ptr<TestServer> Serve(const std::string& ifname, bool error_frames = false,
                                           ServerOptions options = {}) {
    auto backend = SocketCanBackend::Open({ifname, error_frames});
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return nullptr;
    return std::make_unique<TestServer>(options, error_frames,
                                        std::shared_ptr<CanBackend>(*std::move(backend)));
  }

  static std::optional<CanFrame> Recv(RemoteBus& bus, absl::Duration t = absl::Seconds(10)) {
    auto got = bus.Recv(t);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::nullopt;
  }
};

// build/tools/canserver as a child process with `args`, its stderr in a log file.
class CanserverProcess {
 public:
  CanserverProcess(const std::string& name, std::vector<std::string> args) {
    log_ = absl::StrCat("/tmp/canserver-", name, "-", ::getpid(), ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string bin = BuildDir() + "/tools/canserver";
      (void)::freopen(log_.c_str(), "w", stderr);
      // socketcand's fixed default port would collide between servers; scenarios that use it
      // give their own --socketcand-port (a later flag wins).
      args.insert(args.begin(), "--socketcand-port=0");
      args.insert(args.begin(), bin);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~CanserverProcess() {
    if (pid_ > 0) Stop(SIGKILL);
  }
  pid_t pid() const { return pid_; }
  // Sends `sig`, waits, and returns the exit code (128 + signal when killed by one).
  int Stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// Runs a shell command and returns what it printed (stdout and stderr).
inline std::string Shell(const std::string& cmd) { return RunShell(cmd).first; }

// candump -L in the background for the duration of a scenario. Its socket buffer is forced to
// 64 MiB (-r; the kernel doubles it, and uses it only while candump falls behind): vcan delivers
// bursts at once, and a smaller candump drops them itself (8 MiB lost 701 of 80,000 unshaped
// frames once in CI, scenario 13, the emulated VM starving candump for a moment).
class Candump {
 public:
  Candump(const std::string& ifname, int count, int timeout_s = 30) {
    file_ = absl::StrCat("/tmp/candump-", ::getpid(), "-", ifname, ".log");
    const int before = Receivers(ifname);
    (void)std::system(absl::StrCat("timeout ", timeout_s, " candump -L -r 67108864 -n ", count, " ",
                                   ifname, " > ", file_, " 2>&1 &")
                          .c_str());
    // candump must be listening before traffic starts. The kernel lists every CAN receiver in
    // /proc/net/can/rcvlist_all: wait for candump's to appear there (starting it in the emulated
    // VM can take over a second), then a moment for its other socket options.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (before >= 0 && Receivers(ifname) <= before && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    absl::SleepFor(before >= 0 ? absl::Milliseconds(200) : absl::Seconds(1));
  }
  // Lines naming `ifname` in the kernel's receiver list; -1 if it cannot be read.
  static int Receivers(const std::string& ifname) {
    std::ifstream in("/proc/net/can/rcvlist_all");
    if (!in) return -1;
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.find(" " + ifname + " ") != std::string::npos) ++n;
    }
    return n;
  }
  // Lines like "(1700000000.123456) vcan0 123#DEADBEEF", waiting up to `wait` for `count`.
  std::vector<std::string> Lines(size_t count, absl::Duration wait = absl::Seconds(10)) {
    return ReadLines(file_, count, wait);
  }
  // The lines of the file at `path`, waiting up to `wait` for `count` of them.
  static std::vector<std::string> ReadLines(const std::string& path, size_t count,
                                            absl::Duration wait = absl::Seconds(10)) {
    std::vector<std::string> lines;
    const absl::Time deadline = absl::Now() + wait;
    while (absl::Now() < deadline) {
      lines.clear();
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) lines.push_back(line);
      if (lines.size() >= count) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return lines;
  }
  // The "ID#DATA" part of each line.
  std::vector<std::string> Frames(size_t count) {
    std::vector<std::string> out;
    for (const std::string& l : Lines(count)) {
      std::vector<std::string> parts = absl::StrSplit(l, ' ');
      if (parts.size() == 3) out.push_back(parts[2]);
    }
    return out;
  }

 private:
  std::string file_;
};

}  // namespace canserver::testing
