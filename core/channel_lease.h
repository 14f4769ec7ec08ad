// ChannelLease: one channel's exclusive transmit lease (docs/security.md, "Leases").
//
// A transmit-role session takes the channel for a while (renewable); while the lease runs, only
// its holder and the sessions that joined it with its token may transmit: everyone else's new
// frames, periodic jobs and ISO-TP sends are refused with the holder's name and the time left,
// and their running periodic jobs pause until the lease ends (net::Session). The lease ends when
// its holder releases it, lets it lapse or disconnects.
//
//   ChannelLease lease;
//   ChannelLease::Outcome got = lease.Take(7, "session 7 (10.0.0.5:41234)", absl::Seconds(30),
//                                          absl::Now());
//   std::optional<std::string> why = lease.BlockedFor(8, absl::Now());  // "leased by …"
//
// Thread-safe: every session of the channel, on any io thread, and the status readers call it.
// BlockedFor() is on the transmit path: without a lease it reads one atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace canserver {

class ChannelLease {
 public:
  // The longest one request may take the channel for; a holder renews to keep it longer.
  static constexpr absl::Duration kMaxLength = absl::Hours(1);

  struct Outcome {
    bool granted = false;
    absl::Duration remaining;  // of the lease in force (this client's, or the holder's)
    std::string token;         // granted: what other sessions join it with
    std::string text;          // granted: the holder; refused: why, naming the holder
  };
  struct Holder {
    uint64_t session = 0;
    std::string who;  // "session 7 (10.0.0.5:41234, cert flasher-1)"
    absl::Time until;
    size_t members = 0;  // sessions that joined with the token
  };

  // Takes the lease for `length` (capped at kMaxLength), or renews it if `session` holds it.
  // Refused while another session holds an unexpired lease. `token`: the new lease's token
  // (16 random bytes in hex from NewToken(); a renewal keeps the old one).
  Outcome Take(uint64_t session, absl::string_view who, absl::Duration length, absl::Time now,
               std::string token = NewToken());
  // Joins the lease whose token is `token`: `session` may transmit while it runs.
  Outcome Join(uint64_t session, absl::string_view token, absl::Time now);
  // The holder ends the lease (for its members too); a member leaves it. Anyone else: nothing.
  // Returns true if `session` held the lease.
  bool Release(uint64_t session);
  // nullopt if `session` may transmit now; else why not, with the holder and the time left.
  std::optional<std::string> BlockedFor(uint64_t session, absl::Time now);
  // False while no lease is in force: the transmit path's one atomic read.
  bool active() const { return active_.load(std::memory_order_acquire); }
  // The lease in force, if any (expired leases end here too).
  std::optional<Holder> Current(absl::Time now);

  // 128 random bits from the kernel, as 32 hex digits.
  static std::string NewToken();

 private:
  // These three with mu_ held. Ends an expired lease.
  void Expire(absl::Time now);
  // Ends the lease in force, for its members too.
  void End();
  // "leased by session 7 (10.0.0.5:41234) for 23 s more".
  std::string HeldBy(absl::Time now) const;

  std::atomic<bool> active_{false};  // a lease may be in force: BlockedFor takes the lock
  // std::mutex, not absl::Mutex: Debian's abseil is not built with ThreadSanitizer, which would
  // then not see its locking.
  std::mutex mu_;        // guards everything below
  uint64_t holder_ = 0;  // 0: none
  std::string who_;
  std::string token_;
  absl::Time until_;
  std::set<uint64_t> members_;
};

}  // namespace canserver
