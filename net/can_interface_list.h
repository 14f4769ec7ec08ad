// canserver --list: every CAN interface on the machine with its netdev, driver, the python-can
// interface and channel that select it, bit rates, CAN FD, up or down — like python-can's
// detect_available_configs — as a table for people or JSON (--json) for scripts.
//
// Any thread (sysfs reads and one netlink round trip per interface).
#pragma once

#include <string>
#include <vector>

#include "core/python_can_names.h"
#include "io/can_backend.h"

namespace canserver {

struct ListedInterface {
  CanNetdev netdev;
  PythonCanName python_can;
  BusTiming timing;
};

// The interfaces under `sysfs_root`, in python-can's order (core/python_can_names.h); bit
// timing and state from the kernel (netlink) when `query_kernel`.
std::vector<ListedInterface> ListCanInterfaces(const std::string& sysfs_root = "/sys",
                                               bool query_kernel = true);

// One line a header then one line an interface; or a JSON array of objects with the fields
// netdev, driver, python_can_interface, python_can_channel, up, fd, bitrate, data_bitrate,
// state, serial, device.
std::string FormatCanInterfaces(const std::vector<ListedInterface>& interfaces, bool json);

}  // namespace canserver
