// Helpers for tests that run the project's programs or watch their own process.
#pragma once

#include <dirent.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

namespace canserver::testing {

// The build tree, found from this test binary's path (build/tests/<binary>).
inline std::string BuildDir() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  const std::string exe(path, n > 0 ? static_cast<size_t>(n) : 0);
  return exe.substr(0, exe.rfind("/tests/"));
}

// Runs a shell command; returns its stdout and stderr together, and its exit status.
inline std::pair<std::string, int> RunShell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {out, -1};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// This process's resident memory, from /proc/self/status.
inline int64_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      int64_t kb;
      status >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

// Bytes malloc has handed out and not had back, over every arena (glibc's mallinfo2). Unlike
// RSS it does not keep the high-water mark: a leak shows, a busy moment with many sessions alive
// at once does not. Meaningless under a sanitizer, whose allocator replaces malloc.
inline int64_t HeapInUseBytes() {
  const struct mallinfo2 m = ::mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

// This process's open file descriptors.
inline size_t OpenFds() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

}  // namespace canserver::testing
