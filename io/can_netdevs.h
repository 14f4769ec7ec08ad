// The machine's CAN network devices as sysfs describes them (canserver --list, and python-can
// interface names: core/python_can_names.h).
//
// Reads files only; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/python_can_names.h"

namespace canserver {

// Every netdev of type CAN (ARPHRD_CAN, 280) under `sysfs_root` ("/sys"; tests pass a tree of
// their own): its driver, its device's path (symbolic links resolved), the port on the device,
// the USB serial number where the device has one, whether it is up, its MTU.
std::vector<CanNetdev> ScanCanNetdevs(const std::string& sysfs_root = "/sys");

}  // namespace canserver
