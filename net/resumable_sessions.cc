#include "net/resumable_sessions.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "core/channel_lease.h"

namespace canserver {

std::string ResumeIdentity::Mismatch(const ResumeIdentity& other) const {
  if (!certificate.empty() && other.certificate != certificate) {
    return absl::StrFormat(
        "the session belongs to certificate '%s', this connection %s", certificate,
        other.certificate.empty() ? std::string("has none")
                                  : absl::StrFormat("is certificate '%s'", other.certificate));
  }
  if (certificate.empty() && other.address != address) {
    return absl::StrFormat("the session belongs to %s, this connection comes from %s", address,
                           other.address);
  }
  return "";
}

std::string ResumableSessions::Enter(uint64_t session, ResumeIdentity who, Deliver deliver) {
  std::string token = ChannelLease::NewToken();
  std::lock_guard<std::mutex> lock(mu_);
  entries_[token] = Entry{session, std::move(who), std::move(deliver)};
  return token;
}

void ResumableSessions::Detached(absl::string_view token, absl::Time expires) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(token); it != entries_.end()) it->second.expires = expires;
}

void ResumableSessions::Attached(absl::string_view token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(token); it != entries_.end()) {
    it->second.expires = absl::InfiniteFuture();
    it->second.claimed = false;
  }
}

absl::StatusOr<ResumableSessions::Deliver> ResumableSessions::Claim(absl::string_view token,
                                                                    const ResumeIdentity& who,
                                                                    absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(token);
  if (it == entries_.end() || now >= it->second.expires) {
    return absl::NotFoundError(
        "resume refused: no session to resume with this token: it ended (ConnectionClosed), its "
        "--resume-grace "
        "ran out, or the server restarted; open a new session");
  }
  Entry& entry = it->second;
  if (const std::string why = entry.who.Mismatch(who); !why.empty()) {
    return absl::PermissionDeniedError(
        absl::StrFormat("resume refused: %s; only the client that opened a session may resume "
                        "it, so open a new session",
                        why));
  }
  if (entry.claimed) {
    return absl::FailedPreconditionError(
        "resume refused: another connection is resuming this session right now; try again in a "
        "moment");
  }
  entry.claimed = true;
  return entry.deliver;
}

bool ResumableSessions::Expire(absl::string_view token, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return true;
  if (it->second.claimed || now < it->second.expires) return false;
  entries_.erase(it);
  return true;
}

void ResumableSessions::Remove(absl::string_view token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(token); it != entries_.end()) entries_.erase(it);
}

size_t ResumableSessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

size_t ResumableSessions::detached() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [token, entry] : entries_) n += entry.expires != absl::InfiniteFuture();
  return n;
}

}  // namespace canserver
