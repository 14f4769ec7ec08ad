// python-can's interface names and channels for a Linux machine's CAN network devices
// (canserver --list; --interface kvaser --channel 0): a python-can user thinks in `kvaser` 0,
// `pcan` PCAN_USBBUS1, `gs_usb` 0, not in netdev names that change with plug order.
//
// Each SocketCAN netdev is mapped by the driver that serves it:
//
//   kvaser   kvaser_usb, kvaser_pciefd, kvaser_pci     channel 0, 1, ... over every Kvaser port
//   pcan     peak_usb, peak_pci, peak_pciefd            PCAN_USBBUSn / PCAN_PCIBUSn (n from 1,
//                                                       USB and PCI counted apart), or 0, 1, ...
//   gs_usb   gs_usb (candleLight, CANtact, …)           0, 1, ...   (also as `candle`, `cantact`)
//   usb2can  usb_8dev (8devices)                        0, 1, ...
//   ixxat    ixx_usb, ixx_pci (IXXAT's SocketCAN)       0, 1, ...
//   socketcan  any netdev, by name                      can0, vcan0, slcan0
//
// Numbers count in a stable order: by the device's sysfs path (bus topology: the same port, the
// same number, whatever the plug order), then the port on the device (dev_port, else dev_id).
//
// Pure functions; io/can_netdevs.h reads the CanNetdevs from sysfs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canserver {

struct CanNetdev {
  std::string name;         // "can0"
  std::string driver;       // "kvaser_usb"; "" where the netdev has no device (vcan)
  std::string device_path;  // the device's sysfs path ("/sys/devices/pci0000:00/…/1-2:1.0"), or ""
  int port = 0;             // the port on the device: dev_port, else dev_id
  std::string serial;       // the USB device's serial number, where sysfs has one
  bool up = false;
  int mtu = 16;  // 72: CAN FD
  friend bool operator==(const CanNetdev&, const CanNetdev&) = default;
};

// How python-can selects a netdev: Bus(interface=…, channel=…).
struct PythonCanName {
  std::string interface;  // "kvaser", "pcan", "gs_usb", "usb2can", "ixxat" or "socketcan"
  std::string channel;    // "0", "PCAN_USBBUS1", or the netdev name for socketcan
  friend bool operator==(const PythonCanName&, const PythonCanName&) = default;
};

// Every netdev's python-can name, in the stable order above (socketcan by name last).
std::vector<std::pair<CanNetdev, PythonCanName>> NamePythonCanChannels(
    std::vector<CanNetdev> netdevs);

// The netdev that python-can's `interface` and `channel` select among `netdevs`. Errors are one
// line that says what exists instead, or, for an interface without a Linux driver (vector,
// neovi, …), what to do. `virtual` and `slcan` are not netdev lookups: callers handle them first.
absl::StatusOr<std::string> ResolvePythonCanChannel(absl::string_view interface,
                                                    absl::string_view channel,
                                                    const std::vector<CanNetdev>& netdevs);

// True for the names ResolvePythonCanChannel maps (not socketcan or virtual).
bool IsPythonCanHardwareInterface(absl::string_view interface);

}  // namespace canserver
