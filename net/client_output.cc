#include "net/client_output.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>
#include <utility>

#include "core/log.h"

namespace canserver {
namespace {

constexpr size_t kPopBatch = 256;
static_assert(DirectSink::kMaxFrames <= kPopBatch);

// Sends what the socket takes now, without blocking: plain TCP, or kernel TLS (which encrypts
// plain send()s).
ssize_t SendSome(int fd, const void* data, size_t len) noexcept {
  ssize_t n;
  do {
    n = ::send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

// The one encode-and-count of a client's frames, for both writers: encodes `frames` at `out`
// with `encode` (ServerProtocol::Encoded encode(frame, out, &length)), counts what became bytes
// (frames_to_client) and what the client cannot be given (drops_unsupported), and records each
// encoded frame's latency from bus to now. Counted before the send: a client that has its frames
// must find them counted.
struct EncodedBatch {
  size_t bytes = 0;
  size_t frames = 0;
};
template <typename Encode>
EncodedBatch EncodeAndCount(const CanFrame* frames, size_t n, int64_t now_ns, uint8_t* out,
                            Encode&& encode, SessionCounters& counters, DeliveryLatency* latency,
                            SentFrames* sent) {
  size_t pos = 0;
  size_t encoded = 0;
  int64_t latency_ns[kPopBatch];
  for (size_t i = 0; i < n; ++i) {
    size_t len = 0;
    switch (encode(frames[i], out + pos, &len)) {
      case ServerProtocol::Encoded::kWritten:
        pos += len;
        latency_ns[encoded++] = now_ns - frames[i].timestamp_ns;
        if (sent != nullptr) sent->Add(frames[i]);
        break;
      case ServerProtocol::Encoded::kUnsupported:
        counters.drops_unsupported.Add();  // e.g. an FD frame for a version 5 client
        break;
      case ServerProtocol::Encoded::kNotWanted:
        break;  // the client's own receive rules (socketcand BCM filters) passed it over
    }
  }
  counters.frames_to_client.Add(encoded);
  if (latency != nullptr) latency->Record(latency_ns, encoded);
  return {pos, encoded};
}

}  // namespace

// The part of the output the CAN thread may use (see the header): shared with the channel, so it
// lives as long as either needs it.
class ClientOutput::Loan final : public DirectSink {
 public:
  enum State : uint8_t { kHeld, kLent, kWriting };

  Loan(int fd, SessionCounters* counters, DeliveryLatency* latency,
       std::shared_ptr<const Wakeup> io_wakeup)
      : fd_(fd), counters_(counters), latency_(latency), io_wakeup_(std::move(io_wakeup)) {}

  bool lent() const noexcept override { return state_.load(std::memory_order_relaxed) == kLent; }

  int TryWrite(const CanFrame* frames, size_t n, const FrameRing& ring,
               int64_t now_ns) noexcept override {
    uint8_t expected = kLent;
    if (!state_.compare_exchange_strong(expected, kWriting, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      return -1;  // the io thread took it back: the usual path
    }
    // Exact on this side (the only producer): frames pushed earlier and not yet taken go first.
    if (ring.size_approx() != 0) {
      state_.store(kLent, std::memory_order_release);
      return -1;
    }
    const StatelessEncodeFn encode = encode_;
    const EncodedBatch batch = EncodeAndCount(
        frames, n, now_ns, buffer_.get(),
        [encode](const CanFrame& f, uint8_t* out, size_t* length) {
          *length = encode(f, out);
          return *length > 0 ? ServerProtocol::Encoded::kWritten
                             : ServerProtocol::Encoded::kUnsupported;
        },
        *counters_, latency_, sent_);
    const size_t len = batch.bytes;
    const int encoded = static_cast<int>(batch.frames);
    const ssize_t sent = len > 0 ? SendSome(fd_, buffer_.get(), len) : 0;
    const size_t taken = sent > 0 ? static_cast<size_t>(sent) : 0;
    counters_->bytes_to_client.Add(taken);
    if (taken == len) {
      state_.store(kLent, std::memory_order_release);
      return encoded;
    }
    // A full socket buffer or an error: the io thread writes the rest (or meets the error
    // itself) and goes on the usual way, waiting for EPOLLOUT.
    unsent_.assign(reinterpret_cast<const char*>(buffer_.get() + taken), len - taken);
    state_.store(kHeld, std::memory_order_release);
    io_wakeup_->Notify();
    return encoded;
  }

  // Io thread: kLent → kHeld. Returns the bytes the CAN thread could not write (to be sent first).
  std::string TakeBack() {
    uint8_t state = kLent;
    // kWriting: a direct write is under way (one send); kHeld: the CAN thread handed it back.
    while (!state_.compare_exchange_weak(state, kHeld, std::memory_order_acquire,
                                         std::memory_order_acquire) &&
           state != kHeld) {
      if (state == kWriting) std::this_thread::yield();
      state = kLent;
    }
    return std::exchange(unsent_, std::string());
  }
  // Io thread, holding it: the socket to write to, the frames to keep for a resume.
  void Rebind(int fd) { fd_ = fd; }
  void set_sent(SentFrames* sent) { sent_ = sent; }
  // Io thread, holding it: lends it, encoding with `encode` (fixed by the first loan; the store
  // publishes it and the buffer to the CAN thread).
  void Lend(StatelessEncodeFn encode, size_t max_frame_bytes) {
    if (encode_ == nullptr) {
      encode_ = encode;
      buffer_ = std::make_unique<uint8_t[]>(kMaxFrames * max_frame_bytes);
    }
    state_.store(kLent, std::memory_order_release);
  }

 private:
  std::atomic<uint8_t> state_{kHeld};
  // The holder's (Rebind and set_sent while the io thread holds it; the loan publishes them).
  int fd_;
  SentFrames* sent_ = nullptr;
  SessionCounters* const counters_;  // the subscriber's, which holds this object
  DeliveryLatency* const latency_;   // the channel's
  const std::shared_ptr<const Wakeup> io_wakeup_;
  // Set before the first loan, constant afterwards.
  StatelessEncodeFn encode_ = nullptr;
  std::unique_ptr<uint8_t[]> buffer_;  // the holder's: one batch, encoded
  std::string unsent_;                 // the holder's (see the header)
};

ClientOutput::ClientOutput(int fd, size_t cap_bytes, SessionCounters* counters,
                           std::shared_ptr<const Wakeup> io_wakeup)
    : fd_(fd), cap_bytes_(cap_bytes), counters_(counters), io_wakeup_(std::move(io_wakeup)) {}

ClientOutput::~ClientOutput() { Hold(); }

void ClientOutput::Bind(SessionCounters* counters, DeliveryLatency* latency) {
  counters_ = counters;
  latency_ = latency;
  out_.reserve(cap_bytes_ + 1024);
  loan_ = std::make_shared<Loan>(fd_, counters, latency, io_wakeup_);
}

std::shared_ptr<DirectSink> ClientOutput::sink() const { return loan_; }

void ClientOutput::Hold() {
  if (!lent_) return;
  lent_ = false;
  std::string unsent = loan_->TakeBack();
  // The buffer was empty when it was lent, and nothing was added since.
  if (!unsent.empty()) {
    out_.assign(unsent);  // keeps the capacity reserved at Bind
    head_ = 0;
  }
}

size_t ClientOutput::pending() {
  Hold();
  return out_.size() - head_;
}

void ClientOutput::Append(absl::string_view bytes) {
  Hold();
  out_.append(bytes.data(), bytes.size());
}

size_t ClientOutput::EncodeFrom(FrameRing& ring, ServerProtocol& protocol, size_t budget_bytes,
                                PassClock& clock) {
  Hold();
  // Room is reserved for the largest event a frame can become (a CanFdMessage is 79 bytes, a
  // socketcand element up to 192) and the buffer cut back to what was encoded.
  const size_t max_event = protocol.max_frame_bytes();
  CanFrame frames[kPopBatch];
  size_t encoded_bytes = 0;
  while (encoded_bytes < budget_bytes && out_.size() - head_ + max_event <= cap_bytes_) {
    const size_t room = (cap_bytes_ - (out_.size() - head_)) / max_event;
    const size_t n = ring.PopBulk(frames, std::min(kPopBatch, room));
    if (n == 0) break;
    if (head_ > 0 && head_ == out_.size()) {
      out_.clear();
      head_ = 0;
    }
    const size_t pos = out_.size();
    out_.resize(pos + n * max_event);
    const size_t len = EncodeAndCount(
                           frames, n, clock.Now(n), reinterpret_cast<uint8_t*>(&out_[pos]),
                           [&protocol](const CanFrame& f, uint8_t* out, size_t* length) {
                             return protocol.EncodeFrame(f, out, length);
                           },
                           *counters_, latency_, sent_.get())
                           .bytes;
    out_.resize(pos + len);
    encoded_bytes += len;
  }
  return encoded_bytes;
}

ssize_t ClientOutput::Send(const char* data, size_t len) {
  if (tls_ != nullptr && !tls_->kernel_send()) return tls_->Write(data, len);
  return SendSome(fd_, data, len);
}

int ClientOutput::Flush(size_t budget) {
  Hold();
  size_t written = 0;
  int error = 0;
  while (head_ < out_.size() && written < budget) {
    const size_t len = std::min(out_.size() - head_, budget - written);
    const ssize_t n = Send(out_.data() + head_, len);
    if (n < 0) {
      if (errno != EAGAIN) error = errno;
      break;
    }
    head_ += static_cast<size_t>(n);
    written += static_cast<size_t>(n);
    counters_->bytes_to_client.Add(static_cast<uint64_t>(n));
  }
  Compact();
  want_write_ = error == 0 && head_ < out_.size();
  return error;
}

void ClientOutput::Compact() {
  if (head_ == out_.size()) {
    out_.clear();
    head_ = 0;
  } else if (head_ > out_.size() / 2) {
    out_.erase(0, head_);  // keeps the buffer within its cap without growing
    head_ = 0;
  }
}

void ClientOutput::Rebind(int fd, TlsStream* tls) {
  Discard();
  fd_ = fd;
  tls_ = tls;
  if (loan_ != nullptr) loan_->Rebind(fd);
}

void ClientOutput::KeepSent(size_t frames) {
  Hold();
  if (sent_ != nullptr) return;
  sent_ = std::make_unique<SentFrames>(frames);
  if (loan_ != nullptr) loan_->set_sent(sent_.get());
}

SentFrames::Resumed ClientOutput::ResumeFrom(uint64_t received) {
  Hold();
  return sent_ != nullptr ? sent_->Resume(received) : SentFrames::Resumed{};
}

void ClientOutput::Replay(size_t count, ServerProtocol& protocol) {
  Hold();
  // Encoded again, not counted again: frames_to_client counted them when they were first sent.
  const size_t max_event = protocol.max_frame_bytes();
  for (size_t i = 0; i < count; ++i) {
    const size_t pos = out_.size();
    out_.resize(pos + max_event);
    size_t len = 0;
    if (protocol.EncodeFrame(sent_->Last(count, i), reinterpret_cast<uint8_t*>(&out_[pos]), &len) !=
        ServerProtocol::Encoded::kWritten) {
      len = 0;
    }
    out_.resize(pos + len);
  }
}

void ClientOutput::Discard() {
  Hold();
  out_.clear();
  head_ = 0;
  want_write_ = false;
}

bool ClientOutput::Lend(StatelessEncodeFn encode, size_t max_frame_bytes) {
  if (lent_ || loan_ == nullptr || encode == nullptr || out_.size() != head_) return false;
  if (tls_ != nullptr && !tls_->kernel_send()) return false;  // SSL_write: the io thread's alone
  loan_->Lend(encode, max_frame_bytes);
  lent_ = true;
  return true;
}

bool ClientOutput::FinishForClose(bool not_reading) {
  Hold();
  if (fd_ < 0) {  // no connection (a detached session)
    Discard();
    return false;
  }
  if (head_ < out_.size()) {
    const ssize_t n = Send(out_.data() + head_, out_.size() - head_);
    if (n > 0) {
      head_ += static_cast<size_t>(n);
      counters_->bytes_to_client.Add(static_cast<uint64_t>(n));
    }
  }
  int unsent = 0;
  int unacked = 0;
  // Bytes merely not acknowledged yet (SIOCOUTQ) are the normal end of a reply, so they get a
  // FIN, unless the client is closed for not reading: then they are more of what it won't read.
  return head_ < out_.size() || (::ioctl(fd_, SIOCOUTQNSD, &unsent) == 0 && unsent > 0) ||
         (not_reading && ::ioctl(fd_, SIOCOUTQ, &unacked) == 0 && unacked > 0);
}

}  // namespace canserver
