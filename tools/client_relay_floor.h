// ClientRelayFloor: the floor of the path a test script's frame takes — one client sends, the
// others receive it — that `canbench --source client --baseline relay2` measures canserver
// against. v5 clients connect; after a client's handshake (answered, its requests ignored), every
// whole CanMessage/CanFdMessage it sends is copied to every other client. No bus, filters, queues
// with bounds, counters or CAN semantics. Two shapes:
//
//   threads 1: one epoll thread reads the senders and writes the others (the least any relay
//              does: canbench prints it for the record);
//   threads 2: thread A reads the senders and hands whole messages to thread B through a buffer
//              and an eventfd; B writes them to every other client. It pays the one cross-thread
//              wake-up that canserver's io thread → CAN thread hand-off pays, so it is the floor
//              of canserver's shape.
//
//   auto relay = ClientRelayFloor::Start(2);   // serves 127.0.0.1:relay->port()
//   absl::Duration cpu = relay->CpuTime();     // both threads
//
// Threads: its own; Start, port and CpuTime from any thread. Output a client does not take at
// once waits in that client's buffer, unbounded (a benchmark tool, not a server).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/thread_util.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"

namespace canserver {

class ClientRelayFloor {
 public:
  static absl::StatusOr<std::unique_ptr<ClientRelayFloor>> Start(int threads);
  ~ClientRelayFloor();

  uint16_t port() const { return port_; }
  absl::Duration CpuTime();

 private:
  // Bytes for the clients other than `from` (a connection's fd number; -1: for `to` alone).
  struct Message {
    int from = -1;
    int to = -1;
    std::string bytes;
  };
  class Writer;
  ClientRelayFloor(UniqueFd listener, Wakeup stop, Wakeup handoff, int threads);
  // Thread A (or the only one): accepts, reads, decodes; hands messages to the writer.
  void Read(std::stop_token stop);
  // Thread B: writes what thread A handed over.
  void Write(std::stop_token stop);
  void Deliver(Message m);

  UniqueFd listener_;
  uint16_t port_ = 0;
  Wakeup stop_wakeup_;
  Wakeup handoff_wakeup_;  // threads 2: A → B
  const int threads_;
  std::unique_ptr<Writer> writer_;  // the writing side, B's (or A's with one thread)
  std::mutex mu_;
  std::vector<Message> handed_;  // guarded by mu_: A → B
  // The clients' sockets: accepted by A, written by B, closed only once both threads have ended
  // (the members go after the destructor's joins).
  std::vector<UniqueFd> fds_;
  std::jthread reader_;
  std::jthread writer_thread_;
};

}  // namespace canserver
