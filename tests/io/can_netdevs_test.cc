// ScanCanNetdevs over a sysfs tree built the way the kernel lays one out: a two-port USB adapter
// with a serial number, a virtual CAN interface, and a netdev that is not CAN.
#include "io/can_netdevs.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

namespace fs = std::filesystem;

class CanNetdevsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/canserver-sysfs-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    root_ = dir;
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text << "\n";
  }
  // /sys/devices/<device>/net/<name> with its attributes, /sys/class/net/<name> pointing there,
  // and (for a device) net/<name>/device pointing back at the device.
  void Netdev(const std::string& device, const std::string& name, int type, int mtu, int flags,
              int dev_port, int dev_id) {
    const fs::path dir = fs::path(root_) / "devices" / device / "net" / name;
    Write(dir / "type", std::to_string(type));
    Write(dir / "mtu", std::to_string(mtu));
    Write(dir / "flags", "0x" + std::to_string(flags));
    Write(dir / "dev_port", std::to_string(dev_port));
    Write(dir / "dev_id", "0x" + std::to_string(dev_id));
    if (device.rfind("virtual", 0) != 0) fs::create_directory_symlink("../..", dir / "device");
    fs::create_directories(fs::path(root_) / "class" / "net");
    fs::create_directory_symlink(dir, fs::path(root_) / "class" / "net" / name);
  }
  std::string root_;
};

TEST_F(CanNetdevsTest, FindsCanNetdevsWithDriverPortSerialAndState) {
  const std::string usb = "pci0000:00/0000:00:14.0/usb1/1-3";
  Write(fs::path(root_) / "devices" / usb / "serial", "0123456");
  fs::create_directories(fs::path(root_) / "bus/usb/drivers/kvaser_usb");
  fs::create_directories(fs::path(root_) / "devices" / usb / "1-3:1.0");
  fs::create_directory_symlink(fs::path(root_) / "bus/usb/drivers/kvaser_usb",
                               fs::path(root_) / "devices" / usb / "1-3:1.0" / "driver");
  Netdev(usb + "/1-3:1.0", "can0", 280, 72, 1, 0, 0);  // up, CAN FD
  Netdev(usb + "/1-3:1.0", "can1", 280, 16, 0, 0, 1);  // down, port from dev_id
  Netdev("virtual", "vcan0", 280, 72, 1, 0, 0);
  Netdev("virtual", "lo", 772, 65536, 1, 0, 0);

  std::vector<CanNetdev> found = ScanCanNetdevs(root_);
  std::sort(found.begin(), found.end(),
            [](const CanNetdev& a, const CanNetdev& b) { return a.name < b.name; });
  ASSERT_EQ(found.size(), 3u) << "lo is not CAN";
  const std::string device = fs::canonical(fs::path(root_) / "devices" / usb / "1-3:1.0");
  EXPECT_EQ(found[0], (CanNetdev{"can0", "kvaser_usb", device, 0, "0123456", true, 72}));
  EXPECT_EQ(found[1], (CanNetdev{"can1", "kvaser_usb", device, 1, "0123456", false, 16}));
  EXPECT_EQ(found[2], (CanNetdev{"vcan0", "", "", 0, "", true, 72}));
  EXPECT_EQ(*ResolvePythonCanChannel("kvaser", "1", found), "can1");
  // What the BusResponse and /api/status say of the bus behind a name.
  EXPECT_EQ(DescribeCanDevice("can1", root_), "kvaser_usb, serial 0123456");
  EXPECT_EQ(DescribeCanDevice("vcan0", root_), "");
  EXPECT_EQ(DescribeCanDevice("lo", root_), "");
}

TEST_F(CanNetdevsTest, NoSysfsIsNoInterfaces) {
  EXPECT_TRUE(ScanCanNetdevs(root_ + "/missing").empty());
}

}  // namespace
}  // namespace canserver
