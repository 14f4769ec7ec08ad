#include "core/python_can_names.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace canserver {
namespace {

struct Family {
  absl::string_view interface;
  absl::string_view vendor;  // for messages
  std::vector<absl::string_view> drivers;
};

const std::vector<Family>& Families() {
  static const auto* families = new std::vector<Family>{
      {"kvaser", "Kvaser", {"kvaser_usb", "kvaser_pciefd", "kvaser_pci"}},
      {"pcan", "PEAK-System", {"peak_usb", "peak_pci", "peak_pciefd", "peak_pcmcia"}},
      {"gs_usb", "gs_usb (candleLight, CANtact)", {"gs_usb"}},
      {"usb2can", "8devices", {"usb_8dev"}},
      {"ixxat", "IXXAT", {"ixx_usb", "ixx_pci"}},
  };
  return *families;
}

// python-can names for the same family.
absl::string_view Canonical(absl::string_view interface) {
  if (interface == "candle" || interface == "cantact") return "gs_usb";
  return interface;
}

// python-can interfaces with no SocketCAN driver in Linux, and what to do instead.
absl::string_view NoLinuxDriver(absl::string_view interface) {
  static const auto* advice = new std::vector<std::pair<absl::string_view, absl::string_view>>{
      {"vector", "Vector's XL library has no Linux driver"},
      {"neovi", "Intrepid's neoVI has no SocketCAN driver in Linux"},
      {"nican", "NI-CAN has no Linux driver"},
      {"nixnet", "NI-XNET has no SocketCAN driver"},
      {"iscan", "isCAN has no Linux driver"},
      {"etas", "ETAS BOA has no Linux driver"},
      {"canalystii", "CANalyst-II has no SocketCAN driver in Linux"},
      {"systec", "SYS TEC's USB-CANmodul needs its own SocketCAN driver (not in Linux)"},
  };
  for (const auto& [name, why] : *advice) {
    if (name == interface) return why;
  }
  return "";
}

const Family* FamilyOf(absl::string_view driver) {
  for (const Family& f : Families()) {
    if (std::find(f.drivers.begin(), f.drivers.end(), driver) != f.drivers.end()) return &f;
  }
  return nullptr;
}

}  // namespace

bool IsPythonCanHardwareInterface(absl::string_view interface) {
  const absl::string_view name = Canonical(interface);
  for (const Family& f : Families()) {
    if (f.interface == name) return true;
  }
  return !NoLinuxDriver(name).empty();
}

std::vector<std::pair<CanNetdev, PythonCanName>> NamePythonCanChannels(
    std::vector<CanNetdev> netdevs) {
  // Hardware by its place on the bus (the same port, the same number, whatever the plug order),
  // then netdevs without a device (vcan, slcan) by name.
  std::sort(netdevs.begin(), netdevs.end(), [](const CanNetdev& a, const CanNetdev& b) {
    return std::forward_as_tuple(a.device_path.empty(), a.device_path, a.port, a.name) <
           std::forward_as_tuple(b.device_path.empty(), b.device_path, b.port, b.name);
  });
  std::vector<std::pair<CanNetdev, PythonCanName>> named;
  std::vector<std::pair<absl::string_view, int>> counters;  // per family (and pcan's kinds)
  const auto next = [&counters](absl::string_view key) {
    for (auto& [k, n] : counters) {
      if (k == key) return n++;
    }
    counters.emplace_back(key, 1);
    return 0;
  };
  for (CanNetdev& d : netdevs) {
    PythonCanName name{"socketcan", d.name};
    if (const Family* f = FamilyOf(d.driver)) {
      name.interface = std::string(f->interface);
      if (f->interface == "pcan") {
        const bool usb = d.driver == "peak_usb";
        name.channel = absl::StrCat(usb ? "PCAN_USBBUS" : "PCAN_PCIBUS",
                                    next(usb ? "pcan-usb" : "pcan-pci") + 1);
      } else {
        name.channel = absl::StrCat(next(f->interface));
      }
    }
    named.emplace_back(std::move(d), std::move(name));
  }
  return named;
}

absl::StatusOr<std::string> ResolvePythonCanChannel(absl::string_view interface,
                                                    absl::string_view channel,
                                                    const std::vector<CanNetdev>& netdevs) {
  const std::string lower = absl::AsciiStrToLower(interface);
  const absl::string_view name = Canonical(lower);
  if (const absl::string_view why = NoLinuxDriver(name); !why.empty()) {
    return absl::UnimplementedError(absl::StrFormat(
        "--interface %s: %s, so canserver cannot serve it here; use an adapter with a SocketCAN "
        "driver (canserver --list shows those on this machine), or serve this one with python -m "
        "canserver_remote on a machine where its vendor's library runs",
        interface, why));
  }
  const Family* family = nullptr;
  for (const Family& f : Families()) {
    if (f.interface == name) family = &f;
  }
  if (family == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--interface %s: unknown; canserver serves socketcan, virtual and python-can's kvaser, "
        "pcan, gs_usb (candle, cantact), usb2can and ixxat adapters through their Linux drivers",
        interface));
  }
  const std::vector<std::pair<CanNetdev, PythonCanName>> named = NamePythonCanChannels(netdevs);
  std::vector<std::string> mine;  // "kvaser 0 = can0"
  for (const auto& [d, n] : named) {
    if (n.interface == family->interface) {
      mine.push_back(absl::StrFormat("%s %s = %s", n.interface, n.channel, d.name));
    }
  }
  if (mine.empty()) {
    return absl::NotFoundError(absl::StrFormat(
        "--interface %s: no %s adapter with a SocketCAN driver (%s) is here; canserver --list "
        "shows the CAN interfaces there are",
        interface, family->vendor, absl::StrJoin(family->drivers, ", ")));
  }
  // pcan takes PCAN_USBBUSn/PCAN_PCIBUSn, or like the others a number counting its channels.
  int index = -1;
  const std::string want = absl::AsciiStrToUpper(channel);
  if (!absl::SimpleAtoi(channel, &index)) index = -1;
  int position = 0;
  for (const auto& [d, n] : named) {
    if (n.interface != family->interface) continue;
    if (n.channel == want || position == index) return d.name;
    ++position;
  }
  return absl::NotFoundError(
      absl::StrFormat("--interface %s --channel %s: no such channel; here: %s", interface, channel,
                      absl::StrJoin(mine, ", ")));
}

}  // namespace canserver
