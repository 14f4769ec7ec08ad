// BcmPeriodicJobs: a session's periodic jobs on SocketCAN, timed by the kernel's broadcast manager
// (CAN_BCM). One BCM socket per session, connected when the first job starts to the interface as
// it is then; if the interface went away since (the kernel dropped its jobs with it), the socket
// is connected anew to its successor. A BCM socket is a socket of its own, so every client of
// the channel, the job's owner included, receives the job's frames.
//
// Owning io thread only (SocketCanBackend::CreatePeriodicJobs).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "io/can_backend.h"

namespace canserver {

// `ifindex`: the backend's current interface index (0: gone), which outlives every session.
std::unique_ptr<PeriodicJobs> MakeBcmPeriodicJobs(const std::atomic<int>* ifindex,
                                                  std::string interface);

}  // namespace canserver
