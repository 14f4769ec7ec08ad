#include "net/can_interface_list.h"

#include <net/if.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "io/can_netdevs.h"
#include "io/socketcan_backend.h"

namespace canserver {

std::vector<ListedInterface> ListCanInterfaces(const std::string& sysfs_root, bool query_kernel) {
  std::vector<ListedInterface> listed;
  for (auto& [netdev, name] : NamePythonCanChannels(ScanCanNetdevs(sysfs_root))) {
    BusTiming timing;
    if (query_kernel) {
      timing = QueryBusTiming(netdev.name, static_cast<int>(if_nametoindex(netdev.name.c_str())));
    }
    listed.push_back({std::move(netdev), std::move(name), std::move(timing)});
  }
  return listed;
}

std::string FormatCanInterfaces(const std::vector<ListedInterface>& interfaces, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const ListedInterface& i : interfaces) {
      out.push_back({{"netdev", i.netdev.name},
                     {"driver", i.netdev.driver},
                     {"python_can_interface", i.python_can.interface},
                     {"python_can_channel", i.python_can.channel},
                     {"up", i.netdev.up},
                     {"fd", i.netdev.mtu == 72},
                     {"bitrate", i.timing.bitrate},
                     {"data_bitrate", i.timing.data_bitrate},
                     {"state", i.timing.state},
                     {"serial", i.netdev.serial},
                     {"device", i.netdev.device_path}});
    }
    return out.dump(1) + "\n";
  }
  if (interfaces.empty()) {
    return "no CAN interfaces here (modprobe vcan; ip link add dev vcan0 type vcan for a virtual "
           "one, or canserver --interface virtual)\n";
  }
  std::string text = absl::StrFormat("%-10s %-14s %-26s %-5s %-4s %-22s %s\n", "netdev", "driver",
                                     "python-can", "link", "FD", "bit rate", "serial");
  for (const ListedInterface& i : interfaces) {
    std::string rate = "no bit timing";
    if (i.timing.bitrate > 0) {
      rate = absl::StrCat(i.timing.bitrate);
      if (i.timing.data_bitrate > 0) absl::StrAppend(&rate, "/", i.timing.data_bitrate);
      if (!i.timing.state.empty()) absl::StrAppend(&rate, " ", i.timing.state);
    }
    absl::StrAppendFormat(&text, "%-10s %-14s %-26s %-5s %-4s %-22s %s\n", i.netdev.name,
                          i.netdev.driver.empty() ? "-" : i.netdev.driver,
                          absl::StrCat(i.python_can.interface, " ", i.python_can.channel),
                          i.netdev.up ? "up" : "down", i.netdev.mtu == 72 ? "yes" : "no", rate,
                          i.netdev.serial.empty() ? "-" : i.netdev.serial);
  }
  return text;
}

}  // namespace canserver
