// The machine's CAN network devices as sysfs describes them (canserver --list, and python-can
// interface names: core/python_can_names.h).
//
// Reads files only; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/python_can_names.h"

namespace canserver {

// Every netdev of type CAN (ARPHRD_CAN, 280) under `sysfs_root` ("/sys"; tests pass a tree of
// their own): its driver, its device's path (symbolic links resolved), the port on the device,
// the USB serial number where the device has one, whether it is up, its MTU.
std::vector<CanNetdev> ScanCanNetdevs(const std::string& sysfs_root = "/sys");

// The one netdev `name`, if it is CAN.
std::optional<CanNetdev> ReadCanNetdev(const std::string& name,
                                       const std::string& sysfs_root = "/sys");

// "kvaser_usb, serial 0012345": what drives netdev `name`, for the BusResponse and /api/status;
// "" where it has no device (vcan) or is not there.
std::string DescribeCanDevice(const std::string& name, const std::string& sysfs_root = "/sys");

}  // namespace canserver
