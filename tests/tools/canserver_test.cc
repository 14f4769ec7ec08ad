// The canserver program: flags, one-line errors, and shutdown on SIGTERM/SIGINT.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/remote_bus.h"
#include "process_util.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

std::string Bin() { return testing::BuildDir() + "/tools/canserver"; }
std::pair<std::string, int> Shell(const std::string& cmd) { return testing::RunShell(cmd); }

// canserver on the virtual bus as a child process, its stderr in a file.
class Child {
 public:
  Child() {
    static int count = 0;
    log_ =
        absl::StrCat(::testing::TempDir(), "/canserver-child-", ::getpid(), "-", ++count, ".log");
    std::remove(log_.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      (void)::freopen(log_.c_str(), "w", stderr);
      const std::string bin = Bin();
      ::execl(bin.c_str(), bin.c_str(), "--interface", "virtual", "--host", "127.0.0.1", "--port",
              "0", nullptr);
      ::_exit(127);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      const std::string text = Log();
      const size_t at = text.find("on 127.0.0.1:");
      const size_t end = at == std::string::npos ? at : text.find(' ', at + 13);
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
        "--interface socketcan --virtual-bitrate 500000"}) {
    auto [out, rc] = Shell(absl::StrCat(Bin(), " ", args));
    EXPECT_EQ(rc, 1) << args;
    std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
    EXPECT_EQ(lines.size(), 1u) << args << ":\n" << out;
  }
}

TEST(CanserverFlagsTest, HelpExplainsEveryFlagWithItsDefault) {
  auto [out, rc] = Shell(Bin() + " --help");
  for (const char* flag :
       {"--interface", "--channel", "--host", "--port", "--threads", "--bitrate", "--error_frames",
        "--ring_size", "--output_buffer", "--max_clients", "--client_tx_queue", "--tx_timeout",
        "--virtual_bitrate", "--allow", "--handshake_timeout", "--slow_client_timeout"}) {
    EXPECT_THAT(out, HasSubstr(flag));
  }
  EXPECT_THAT(out, HasSubstr("default: 54701"));
}

TEST(CanserverFlagsTest, ATakenPortIsAOneLineError) {
  Child first;
  ASSERT_FALSE(first.address().empty());
  const std::string port = first.address().substr(first.address().find(':') + 1);
  auto [out, rc] = Shell(absl::StrCat(Bin(), " --interface virtual --host 127.0.0.1 --port ", port,
                                      " 2>&1 | grep -v '^I '"));
  EXPECT_THAT(out, HasSubstr("canserver: bind(127.0.0.1:" + port + "): Address already in use"));
}

}  // namespace
}  // namespace canserver
