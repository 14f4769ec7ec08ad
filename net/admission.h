// Admission: how many connections the server holds, and from whom, so that no one host or
// channel can take the rig away from the others (docs/reliability.md, "A hostile network").
//
//   auto ticket = admission.Admit("10.1.2.3", channel);   // accept thread, before Adopt
//   if (!ticket.ok()) refuse with ticket.status().message()
//   ...
//   (*ticket)->Open(channel);     // the session opened its bus (io thread): the handshake is over
//   ticket.reset();               // the session ended: every slot it held is free again
//
// Limits (0: none): every connection together (--max-clients); connections from one address,
// handshaking or open (--max-clients-per-address); connections that have not opened a bus yet
// (--max-handshakes: silent connections cannot fill the server); open sessions of one channel
// (--max-clients-per-channel: one channel's crowd cannot lock out another's clients).
// Refusals name the limit and the flag that sets it.
//
// Thread-safe: one mutex; a connection costs a few map operations, at accept and at its end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace canserver {

struct AdmissionLimits {
  size_t max_clients = 256;
  size_t max_per_address = 16;
  size_t max_handshakes = 64;
  size_t max_per_channel = 0;
};

class Admission {
 public:
  // The channel of a connection not yet known (socketcand: named at open).
  static constexpr size_t kNoChannel = SIZE_MAX;

  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // The session opened `channel`'s bus: it leaves the handshakes and joins the channel's
    // sessions, unless the channel is full (the error says so; the ticket is unchanged).
    absl::Status Open(size_t channel);
    const std::string& address() const { return address_; }

   private:
    friend class Admission;
    Ticket(Admission* owner, std::string address) : owner_(owner), address_(std::move(address)) {}
    Admission* owner_;
    std::string address_;
    size_t channel_ = kNoChannel;  // counted in that channel's sessions once open
    bool handshaking_ = true;
  };

  Admission(AdmissionLimits limits, size_t channels) : limits_(limits), per_channel_(channels, 0) {}

  // A new connection from `address` (an IP address as text) to `channel`'s port, or kNoChannel.
  // The ticket must not outlive this object.
  absl::StatusOr<std::unique_ptr<Ticket>> Admit(const std::string& address, size_t channel);

  const AdmissionLimits& limits() const { return limits_; }
  size_t connections() const;
  size_t handshakes() const;
  // Connections refused so far, by the limit that refused them (/metrics).
  enum class Refusal { kFull, kPerAddress, kHandshakes, kChannel, kCount };
  uint64_t refused(Refusal why) const;

 private:
  // Under mu_.
  absl::Status ChannelHasRoom(size_t channel);
  void Release(Ticket& ticket);

  const AdmissionLimits limits_;
  mutable std::mutex mu_;
  size_t connections_ = 0;
  size_t handshakes_ = 0;
  std::map<std::string, size_t> per_address_;
  std::vector<size_t> per_channel_;
  uint64_t refused_[static_cast<size_t>(Refusal::kCount)] = {};
};

}  // namespace canserver
