// ClientOutput: the one owner of what goes to one client.
//
// It holds the bytes waiting for the client's socket, the socket's sending side, and the loan of
// that socket to the channel's CAN thread (DirectSink, io/direct_sink.h); frames are encoded and
// counted in one place (EncodeAndCount in client_output.cc) whichever thread writes them. The
// buffer is bounded by its owner: frames are encoded into it only while it has room
// (EncodeFrom), so a client that stops reading makes its ring fill and overflow (counted), never
// the server's memory grow.
//
// The loan. While the io thread sleeps with nothing pending for the client, the CAN thread may
// write a batch to the socket itself. The socket has one writer at a time, which a state names:
//
//   io thread, Lend():        nothing pending, the ring empty  →  kLent (release)
//   CAN thread, TryWrite():   CAS kLent → kWriting (acquire); the ring still empty (exact on the
//                             producer side); encode, count, send; → kLent (release), or on a
//                             short write or an error: the rest kept, → kHeld, wake the io thread
//   io thread, every method:  CAS kLent → kHeld first (yielding while kWriting), and the rest
//                             the CAN thread kept becomes the start of the buffer
//
// So a client's bytes stay in bus order, and no caller has to remember to take the socket back:
// every method of this class does it. Counters of the client's output (frames_to_client,
// bytes_to_client, drops_unsupported) are written by whoever holds the socket; the hand-over
// orders those writes.
//
// Threads: the session's io thread for every method; the DirectSink (sink()) as io/direct_sink.h
// says. The sink outlives this object while the channel holds it, and never writes once this
// object has taken the socket back for good (Close, the destructor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "core/counters.h"
#include "core/queues.h"
#include "core/server_protocol.h"
#include "io/clock.h"
#include "io/direct_sink.h"
#include "io/wakeup.h"
#include "net/sent_frames.h"
#include "net/tls.h"

namespace canserver {

// The wall clock for one pass of an io thread over its sessions, read once and shared, and read
// again only after kFramesPerRead frames so a long pass under load stays accurate. Without a vDSO
// clock every read is a syscall (docs/benchmarks.md). Io thread only.
class PassClock {
 public:
  static constexpr size_t kFramesPerRead = 256;
  // A new pass: the next Now() reads the clock.
  void Reset() noexcept { frames_ = kFramesPerRead; }
  // The time to stamp `frames` frames being encoded now with (bus time → socket latency).
  int64_t Now(size_t frames) noexcept {
    if (frames_ >= kFramesPerRead) {
      now_ = RealtimeNanos();
      frames_ = 0;
    }
    frames_ += frames;
    return now_;
  }

 private:
  size_t frames_ = kFramesPerRead;
  int64_t now_ = 0;
};

class ClientOutput {
 public:
  // `fd`: the client's socket, owned by the caller and open for this object's life.
  // `cap_bytes`: frames are encoded only while the buffer holds less than this.
  // `counters`: where bytes sent are counted until Bind().
  ClientOutput(int fd, size_t cap_bytes, SessionCounters* counters,
               std::shared_ptr<const Wakeup> io_wakeup);
  ~ClientOutput();
  ClientOutput(const ClientOutput&) = delete;
  ClientOutput& operator=(const ClientOutput&) = delete;

  // The connection is TLS from now on (after its handshake, before anything is appended): writes
  // go through `tls`, which outlives this object; without kernel TLS the socket is never lent.
  void UseTls(TlsStream* tls) { tls_ = tls; }

  // The bus is open: counts go to `counters` from now on, frames' delivery latency to `latency`.
  // Once.
  void Bind(SessionCounters* counters, DeliveryLatency* latency);
  // What the channel holds of this output (Subscriber::sink). After Bind.
  std::shared_ptr<DirectSink> sink() const;

  // Bytes waiting for the socket.
  size_t pending();
  // Whether the socket took less than was pending (wait for EPOLLOUT).
  bool want_write() const { return want_write_; }
  // Whether `frame_bytes` more fit under the cap.
  bool has_room(size_t frame_bytes) { return pending() + frame_bytes <= cap_bytes_; }

  // Appends a reply (any size: replies are never lost; their owner bounds them).
  void Append(absl::string_view bytes);
  // Encodes frames popped from `ring` while the buffer has room for `protocol`'s largest event,
  // until about `budget_bytes` were encoded. Returns the bytes encoded.
  size_t EncodeFrom(FrameRing& ring, ServerProtocol& protocol, size_t budget_bytes,
                    PassClock& clock);
  // Writes what the socket takes now, up to `budget` bytes. Returns 0, or the errno of a send
  // that failed (the connection is broken: EPIPE, ECONNRESET…).
  int Flush(size_t budget);
  // Throws away everything pending (the client is gone).
  void Discard();

  // Resuming sessions (net/resumable_sessions.h). The connection changed: from now on the
  // output goes to `fd` (through `tls` if not null); -1 while the session has none. What was
  // pending for the old connection is dropped (SentFrames keeps what a resume sends again).
  void Rebind(int fd, TlsStream* tls);
  // Keeps the last `frames` frames written to the client from now on. Once.
  void KeepSent(size_t frames);
  // The client received `received` frames of its stream: how many of the rest are kept to be
  // sent again (Replay them next, after the resume's reply) and how many are lost.
  SentFrames::Resumed ResumeFrom(uint64_t received);
  // Queues the last `count` frames kept, encoded again (not counted again).
  void Replay(size_t count, ServerProtocol& protocol);

  // Lends the socket to the CAN thread when nothing is pending (before the io thread sleeps with
  // the client's ring empty), the CAN thread to encode with `encode` (the front end's stateless
  // encoder; null: no loan), `max_frame_bytes` at most per frame. Returns whether it did.
  bool Lend(StatelessEncodeFn encode, size_t max_frame_bytes);

  // Closing: takes the socket back for good, makes one last non-blocking attempt to send what is
  // pending, and returns whether the connection should be reset rather than closed: bytes it did
  // not take (the client is not reading: a FIN behind them would leave an orphaned socket holding
  // the send buffer), or, when `not_reading`, anything not yet acknowledged.
  bool FinishForClose(bool not_reading);

 private:
  class Loan;
  // Takes the socket back from the CAN thread, with what it could not write.
  void Hold();
  void Compact();
  // Sends what the socket takes now, without blocking: like send().
  ssize_t Send(const char* data, size_t len);

  int fd_;
  TlsStream* tls_ = nullptr;  // userspace TLS unless tls_->kernel_send()
  const size_t cap_bytes_;
  SessionCounters* counters_;
  DeliveryLatency* latency_ = nullptr;
  const std::shared_ptr<const Wakeup> io_wakeup_;
  std::shared_ptr<Loan> loan_;        // null until Bind()
  std::unique_ptr<SentFrames> sent_;  // null unless the session may be resumed
  std::string out_;
  size_t head_ = 0;
  bool want_write_ = false;
  bool lent_ = false;
};

}  // namespace canserver
