#include "core/counters.h"

#include "absl/strings/str_format.h"

namespace canserver {

std::string SessionCounters::Summary() const {
  return absl::StrFormat(
      "to_client=%d from_client=%d bytes_out=%d bytes_in=%d drops_ring_full=%d "
      "drops_unsupported=%d tx_failed=%d tx_queue_full=%d",
      frames_to_client.Get(), frames_from_client.Get(), bytes_to_client.Get(),
      bytes_from_client.Get(), drops_ring_full.Get(), drops_unsupported.Get(), tx_failed.Get(),
      tx_queue_full.Get());
}

std::string ChannelCounters::Summary() const {
  return absl::StrFormat("bus_rx=%d bus_tx=%d bus_tx_failed=%d kernel_drops=%d ring_drops=%d",
                         bus_rx.Get(), bus_tx.Get(), bus_tx_failed.Get(), kernel_drops.Get(),
                         ring_drops.Get());
}

}  // namespace canserver
