#include "net/admission.h"

#include "absl/strings/str_format.h"

namespace canserver {

absl::StatusOr<std::unique_ptr<Admission::Ticket>> Admission::Admit(const std::string& address,
                                                                    size_t channel) {
  std::lock_guard<std::mutex> lock(mu_);
  if (limits_.max_clients > 0 && connections_ >= limits_.max_clients) {
    ++refused_[static_cast<size_t>(Refusal::kFull)];
    return absl::ResourceExhaustedError(
        absl::StrFormat("server full (%d clients; canserver --max-clients)", limits_.max_clients));
  }
  const auto known = per_address_.find(address);
  const size_t mine = known == per_address_.end() ? 0 : known->second;
  if (limits_.max_per_address > 0 && mine >= limits_.max_per_address) {
    ++refused_[static_cast<size_t>(Refusal::kPerAddress)];
    return absl::ResourceExhaustedError(
        absl::StrFormat("too many connections from %s (%d; canserver --max-clients-per-address)",
                        address, limits_.max_per_address));
  }
  if (limits_.max_handshakes > 0 && handshakes_ >= limits_.max_handshakes) {
    ++refused_[static_cast<size_t>(Refusal::kHandshakes)];
    return absl::ResourceExhaustedError(absl::StrFormat(
        "too many connections still in their handshake (%d; canserver --max-handshakes); try "
        "again in a moment",
        limits_.max_handshakes));
  }
  if (channel != kNoChannel) {
    if (absl::Status room = ChannelHasRoom(channel); !room.ok()) return room;
  }
  ++per_address_[address];
  ++connections_;
  ++handshakes_;
  auto ticket = std::unique_ptr<Ticket>(new Ticket(this, address));
  ticket->channel_ = channel;
  if (channel != kNoChannel) ++per_channel_[channel];
  return ticket;
}

absl::Status Admission::ChannelHasRoom(size_t channel) {
  if (limits_.max_per_channel > 0 && per_channel_[channel] >= limits_.max_per_channel) {
    ++refused_[static_cast<size_t>(Refusal::kChannel)];
    return absl::ResourceExhaustedError(
        absl::StrFormat("this channel is full (%d clients; canserver --max-clients-per-channel)",
                        limits_.max_per_channel));
  }
  return absl::OkStatus();
}

absl::Status Admission::Ticket::Open(size_t channel) {
  std::lock_guard<std::mutex> lock(owner_->mu_);
  if (channel_ == kNoChannel) {
    if (absl::Status room = owner_->ChannelHasRoom(channel); !room.ok()) return room;
    channel_ = channel;
    ++owner_->per_channel_[channel];
  }
  if (handshaking_) {
    handshaking_ = false;
    --owner_->handshakes_;
  }
  return absl::OkStatus();
}

Admission::Ticket::~Ticket() {
  std::lock_guard<std::mutex> lock(owner_->mu_);
  owner_->Release(*this);
}

void Admission::Release(Ticket& ticket) {
  --connections_;
  if (ticket.handshaking_) --handshakes_;
  if (ticket.channel_ != kNoChannel) --per_channel_[ticket.channel_];
  auto it = per_address_.find(ticket.address_);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

size_t Admission::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

uint64_t Admission::refused(Refusal why) const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_[static_cast<size_t>(why)];
}

size_t Admission::handshakes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return handshakes_;
}

}  // namespace canserver
