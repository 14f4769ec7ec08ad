#include "io/can_netdevs.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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

std::optional<CanNetdev> ReadCanNetdev(const std::string& name, const std::string& sysfs_root) {
  const fs::path dir = fs::path(sysfs_root) / "class" / "net" / name;
  if (IntAttribute(dir / "type", -1) != 280) return std::nullopt;  // ARPHRD_CAN
  CanNetdev d;
  d.name = name;
  d.mtu = IntAttribute(dir / "mtu", 16);
  d.up = (IntAttribute(dir / "flags", 0) & 0x1) != 0;  // IFF_UP
  const int dev_port = IntAttribute(dir / "dev_port", 0);
  d.port = dev_port != 0 ? dev_port : IntAttribute(dir / "dev_id", 0);
  std::error_code ec;
  const fs::path device = fs::canonical(dir / "device", ec);
  if (ec) return d;  // no device: vcan, and slcan
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
  return d;
}

std::vector<CanNetdev> ScanCanNetdevs(const std::string& sysfs_root) {
  std::vector<CanNetdev> found;
  std::error_code ec;
  for (const fs::directory_entry& entry :
       fs::directory_iterator(fs::path(sysfs_root) / "class" / "net", ec)) {
    if (std::optional<CanNetdev> d = ReadCanNetdev(entry.path().filename().string(), sysfs_root)) {
      found.push_back(*std::move(d));
    }
  }
  return found;
}

std::string DescribeCanDevice(const std::string& name, const std::string& sysfs_root) {
  const std::optional<CanNetdev> d = ReadCanNetdev(name, sysfs_root);
  if (!d.has_value() || d->driver.empty()) return "";
  return d->serial.empty() ? d->driver : absl::StrCat(d->driver, ", serial ", d->serial);
}

}  // namespace canserver
