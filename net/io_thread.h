// IoThread: one epoll loop owning a set of sessions (`canserver --threads N` runs N of them),
// of any of the server's channels.
//
// Each pass it reads what clients sent, drains the sessions' rings into their output buffers and
// writes, flushing before it sleeps. It sleeps only once every session has armed its wakeup gate,
// so the CAN thread wakes it (one eventfd write) only on a ring's empty→non-empty edge.
//
// Thread-safety: Adopt(), session_count() and RequestStop() are thread-safe; everything else runs
// on the io thread itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "io/can_channel.h"
#include "io/event_loop.h"
#include "io/thread_util.h"
#include "io/unique_fd.h"
#include "io/wakeup.h"
#include "net/admission.h"
#include "net/server_options.h"
#include "net/session.h"

namespace canserver {

class IoThread {
 public:
  // `channels`: every channel of the server (socketcand clients open one by name); they outlive
  // the thread.
  static absl::StatusOr<std::unique_ptr<IoThread>> Create(int index, const ServerOptions& options,
                                                          std::vector<CanChannel*> channels);
  ~IoThread();

  void Start();
  // Hands a freshly accepted connection to this thread: a v5 client of `channel`, or a socketcand
  // client (channel nullptr) that names its channel later. Thread-safe.
  void Adopt(uint64_t session_id, UniqueFd fd, const FrontEnd& front_end, CanChannel* channel,
             std::unique_ptr<Admission::Ticket> ticket);
  // Hands a connection that resumes session `session_id` of this thread to it (or closes it if
  // that session has ended meanwhile). Thread-safe.
  void Reattach(uint64_t session_id, Handoff handoff);
  // Tells every session "server shutting down", flushes for up to the shutdown grace and stops.
  // Thread-safe; returns once the thread has finished.
  void Stop();
  // Sessions alive on this thread (handshaking or open). Thread-safe.
  size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  // CPU time the thread has used; call between Start and Stop.
  absl::Duration CpuTime() { return ThreadCpuTime(thread_); }
  // Loop passes so far; the housekeeping tick makes at least ten a second. Thread-safe.
  uint64_t passes() const noexcept { return passes_.load(std::memory_order_relaxed); }
  int index() const { return index_; }

 private:
  struct Adopted {
    uint64_t id;
    UniqueFd fd;
    const FrontEnd* front_end;
    CanChannel* channel;
    std::unique_ptr<Admission::Ticket> ticket;
  };
  IoThread(int index, const ServerOptions& options, std::vector<CanChannel*> channels,
           std::unique_ptr<EventLoop> loop, std::shared_ptr<Wakeup> wakeup, UniqueFd timer);
  void Run(std::stop_token stop);
  void TakeAdopted();
  void Housekeeping();
  void ReapClosed();
  void ShutdownSessions();

  const int index_;
  const ServerOptions& options_;
  const std::vector<CanChannel*> channels_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<Wakeup> wakeup_;
  UniqueFd timer_;

  std::mutex adopt_mu_;
  std::vector<Adopted> adopted_;                          // guarded by adopt_mu_
  std::vector<std::pair<uint64_t, Handoff>> reattached_;  // guarded by adopt_mu_

  std::map<uint64_t, std::unique_ptr<Session>> sessions_;  // io thread only
  PassClock clock_;                                        // io thread only
  std::atomic<size_t> session_count_{0};
  absl::Time last_stats_;
  std::atomic<uint64_t> passes_{0};
  std::jthread thread_;
};

}  // namespace canserver
