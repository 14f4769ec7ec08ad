#include "core/counters.h"

#include "absl/strings/str_format.h"

namespace canserver {

std::string SessionCounters::Summary() const {
  return absl::StrFormat(
      "to_client=%d from_client=%d bytes_out=%d bytes_in=%d drops_ring_full=%d "
      "drops_unsupported=%d tx_written=%d tx_failed=%d tx_timeout=%d tx_bus_error=%d "
      "tx_no_fd=%d tx_wait_max_us=%d tx_paused=%d",
      frames_to_client.Get(), frames_from_client.Get(), bytes_to_client.Get(),
      bytes_from_client.Get(), drops_ring_full.Get(), drops_unsupported.Get(), tx_written.Get(),
      tx_failed.Get(), tx_timeout.Get(), tx_bus_error.Get(), tx_no_fd.Get(), tx_wait_max_us.Get(),
      tx_paused.Get());
}

std::string ChannelCounters::Summary() const {
  return absl::StrFormat(
      "bus_rx=%d bus_tx=%d bus_tx_failed=%d tx_timeout=%d tx_bus_error=%d tx_no_fd=%d tx_busy=%d "
      "tx_wait_max_us=%d tx_wait_mean_us=%d kernel_drops=%d ring_drops=%d state_changes=%d "
      "bus_off=%d",
      bus_rx.Get(), bus_tx.Get(), bus_tx_failed.Get(), tx_timeout.Get(), tx_bus_error.Get(),
      tx_no_fd.Get(), tx_busy.Get(), tx_wait_max_us.Get(),
      bus_tx.Get() == 0 ? 0 : tx_wait_total_us.Get() / bus_tx.Get(), kernel_drops.Get(),
      ring_drops.Get(), state_changes.Get(), bus_off.Get());
}

}  // namespace canserver
