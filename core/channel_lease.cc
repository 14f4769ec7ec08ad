#include "core/channel_lease.h"

#include <sys/random.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canserver {
namespace {

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.0f s",
                         std::max(0.0, absl::ToDoubleSeconds(absl::Ceil(d, absl::Seconds(1)))));
}

}  // namespace

std::string ChannelLease::NewToken() {
  char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);  // EINTR: again; getrandom(2) has no other error here
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof bytes));
}

void ChannelLease::Expire(absl::Time now) {
  if (holder_ != 0 && now >= until_) End();
}

void ChannelLease::End() {
  holder_ = 0;
  who_.clear();
  token_.clear();
  members_.clear();
  active_.store(false, std::memory_order_release);
}

std::string ChannelLease::HeldBy(absl::Time now) const {
  return absl::StrFormat("leased by %s for %s more", who_, Seconds(until_ - now));
}

ChannelLease::Outcome ChannelLease::Take(uint64_t session, absl::string_view who,
                                         absl::Duration length, absl::Time now, std::string token) {
  std::lock_guard lock(mu_);
  Expire(now);
  if (holder_ != 0 && holder_ != session) {
    return {false, until_ - now, "", HeldBy(now)};
  }
  if (holder_ == 0) {
    holder_ = session;
    who_ = std::string(who);
    token_ = std::move(token);
    members_.clear();
    active_.store(true, std::memory_order_release);
  }
  until_ = now + std::min(length, kMaxLength);
  return {true, until_ - now, token_, who_};
}

ChannelLease::Outcome ChannelLease::Join(uint64_t session, absl::string_view token,
                                         absl::Time now) {
  std::lock_guard lock(mu_);
  Expire(now);
  if (holder_ == 0) return {false, absl::ZeroDuration(), "", "no lease is in force to join"};
  if (token != token_) {
    return {false, until_ - now, "",
            absl::StrCat("the token is not that of the lease in force (", HeldBy(now), ")")};
  }
  if (session != holder_) members_.insert(session);
  return {true, until_ - now, token_, who_};
}

bool ChannelLease::Release(uint64_t session) {
  std::lock_guard lock(mu_);
  if (holder_ == session && session != 0) {
    End();
    return true;
  }
  members_.erase(session);
  return false;
}

std::optional<std::string> ChannelLease::BlockedFor(uint64_t session, absl::Time now) {
  if (!active_.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard lock(mu_);
  Expire(now);
  if (holder_ == 0 || holder_ == session || members_.contains(session)) return std::nullopt;
  return HeldBy(now);
}

std::optional<ChannelLease::Holder> ChannelLease::Current(absl::Time now) {
  if (!active_.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard lock(mu_);
  Expire(now);
  if (holder_ == 0) return std::nullopt;
  return Holder{holder_, who_, until_, members_.size()};
}

}  // namespace canserver
