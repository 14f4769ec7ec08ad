#include "io/can_netdevs.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace canserver {
namespace {

namespace fs = std::filesystem;

// The first line of a sysfs attribute, trimmed; "" if it cannot be read.
std::string Attribute(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

int IntAttribute(const fs::path& path, int fallback) {
  const std::string text = Attribute(path);
  int value = 0;
  if (absl::SimpleAtoi(text, &value)) return value;
  if (text.rfind("0x", 0) == 0 && absl::SimpleHexAtoi(text.substr(2), &value)) return value;
  return fallback;
}

}  // namespace

std::vector<CanNetdev> ScanCanNetdevs(const std::string& sysfs_root) {
  std::vector<CanNetdev> found;
  std::error_code ec;
  const fs::path net = fs::path(sysfs_root) / "class" / "net";
  for (const fs::directory_entry& entry : fs::directory_iterator(net, ec)) {
    const fs::path dir = entry.path();
    if (IntAttribute(dir / "type", -1) != 280) continue;  // ARPHRD_CAN
    CanNetdev d;
    d.name = dir.filename().string();
    d.mtu = IntAttribute(dir / "mtu", 16);
    d.up = (IntAttribute(dir / "flags", 0) & 0x1) != 0;  // IFF_UP
    const int dev_port = IntAttribute(dir / "dev_port", 0);
    d.port = dev_port != 0 ? dev_port : IntAttribute(dir / "dev_id", 0);
    const fs::path device = fs::canonical(dir / "device", ec);
    if (!ec) {
      d.device_path = device.string();
      const fs::path driver = fs::read_symlink(dir / "device" / "driver", ec);
      if (!ec) d.driver = driver.filename().string();
      // A USB interface's serial number is its device's, one level up.
      for (const fs::path& p : {device, device.parent_path()}) {
        if (std::string serial = Attribute(p / "serial"); !serial.empty()) {
          d.serial = serial;
          break;
        }
      }
    }
    ec.clear();
    found.push_back(std::move(d));
  }
  return found;
}

}  // namespace canserver
