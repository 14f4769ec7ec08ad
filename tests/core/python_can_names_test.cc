// python-can interface names over CAN netdevs: several adapters of several vendors, replugged in
// another order, and the interfaces Linux has no driver for.
#include "core/python_can_names.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

CanNetdev Dev(std::string name, std::string driver, std::string path, int port = 0) {
  return {std::move(name), std::move(driver), std::move(path), port, "", true, 16};
}

// A rig: a two-port Kvaser Leaf Pro on USB port 3, a one-port Kvaser on port 1, a PEAK PCAN-USB
// on port 2, a PEAK PCIe card, a candleLight, and vcan0.
std::vector<CanNetdev> Rig() {
  return {
      Dev("can0", "kvaser_usb", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0", 0),
      Dev("can1", "kvaser_usb", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0", 1),
      Dev("can2", "kvaser_usb", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0", 0),
      Dev("can3", "peak_usb", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0", 0),
      Dev("can4", "peak_pciefd", "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0", 0),
      Dev("can5", "gs_usb", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0", 0),
      Dev("vcan0", "", ""),
  };
}

TEST(PythonCanNamesTest, EachAdapterGetsPythonCansNameInBusOrder) {
  std::vector<std::string> got;
  for (const auto& [d, n] : NamePythonCanChannels(Rig())) {
    got.push_back(d.name + "=" + n.interface + ":" + n.channel);
  }
  EXPECT_THAT(got, ::testing::ElementsAre("can2=kvaser:0", "can3=pcan:PCAN_USBBUS1",
                                          "can0=kvaser:1", "can1=kvaser:2", "can5=gs_usb:0",
                                          "can4=pcan:PCAN_PCIBUS1", "vcan0=socketcan:vcan0"));
}

TEST(PythonCanNamesTest, ReplugOrderDoesNotRenumber) {
  // The kernel named them in another order (can0 is now the one on port 1): python-can's
  // numbers follow the ports, not the netdev names.
  std::vector<CanNetdev> replugged = Rig();
  std::swap(replugged[0].name, replugged[2].name);
  EXPECT_EQ(*ResolvePythonCanChannel("kvaser", "0", replugged), "can0");
  EXPECT_EQ(*ResolvePythonCanChannel("kvaser", "0", Rig()), "can2");
}

TEST(PythonCanNamesTest, EveryChannelFormResolves) {
  const std::vector<CanNetdev> rig = Rig();
  EXPECT_EQ(*ResolvePythonCanChannel("kvaser", "2", rig), "can1");
  EXPECT_EQ(*ResolvePythonCanChannel("pcan", "PCAN_USBBUS1", rig), "can3");
  EXPECT_EQ(*ResolvePythonCanChannel("pcan", "pcan_pcibus1", rig), "can4");
  EXPECT_EQ(*ResolvePythonCanChannel("pcan", "1", rig), "can4") << "a number counts every PEAK one";
  EXPECT_EQ(*ResolvePythonCanChannel("gs_usb", "0", rig), "can5");
  EXPECT_EQ(*ResolvePythonCanChannel("candle", "0", rig), "can5");
  EXPECT_EQ(*ResolvePythonCanChannel("cantact", "0", rig), "can5");
  EXPECT_EQ(*ResolvePythonCanChannel("Kvaser", "0", rig), "can2");
}

TEST(PythonCanNamesTest, MistakesAreOneLineThatSaysWhatExists) {
  const std::vector<CanNetdev> rig = Rig();
  absl::StatusOr<std::string> r = ResolvePythonCanChannel("kvaser", "3", rig);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "--interface kvaser --channel 3: no such channel; here: kvaser 0 = can2, kvaser 1 = "
            "can0, kvaser 2 = can1");
  r = ResolvePythonCanChannel("pcan", "PCAN_USBBUS2", rig);
  EXPECT_THAT(r.status().message(), HasSubstr("here: pcan PCAN_USBBUS1 = can3, pcan PCAN_PCIBUS1"));
  r = ResolvePythonCanChannel("ixxat", "0", rig);
  EXPECT_THAT(r.status().message(),
              HasSubstr("no IXXAT adapter with a SocketCAN driver (ixx_usb, ixx_pci) is here"));
  r = ResolvePythonCanChannel("usb2can", "0", {});
  EXPECT_THAT(r.status().message(), HasSubstr("no 8devices adapter"));
  r = ResolvePythonCanChannel("vector", "0", rig);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(r.status().message(), HasSubstr("Vector's XL library has no Linux driver"));
  EXPECT_THAT(r.status().message(), HasSubstr("use an adapter with a SocketCAN driver"));
  r = ResolvePythonCanChannel("neovi", "1", rig);
  EXPECT_THAT(r.status().message(), HasSubstr("no SocketCAN driver in Linux"));
  r = ResolvePythonCanChannel("frobnicator", "0", rig);
  EXPECT_THAT(r.status().message(), HasSubstr("--interface frobnicator: unknown"));
  EXPECT_TRUE(IsPythonCanHardwareInterface("kvaser"));
  EXPECT_TRUE(IsPythonCanHardwareInterface("vector"));
  EXPECT_FALSE(IsPythonCanHardwareInterface("socketcan"));
  EXPECT_FALSE(IsPythonCanHardwareInterface("virtual"));
}

}  // namespace
}  // namespace canserver
