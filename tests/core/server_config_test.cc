// Channels on the command line (NAME[:PORT]), port assignment, and the config file.
#include "core/server_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ChannelSpecTest, NamesPortsAndBackendPrefixes) {
  EXPECT_EQ(*ParseChannelSpec("can0"), (ChannelSpec{"can0", "", -1}));
  EXPECT_EQ(*ParseChannelSpec("can1:54710"), (ChannelSpec{"can1", "", 54710}));
  EXPECT_EQ(*ParseChannelSpec("virtual:bench"), (ChannelSpec{"bench", "virtual", -1}));
  EXPECT_EQ(*ParseChannelSpec("socketcan:vcan2:55000"), (ChannelSpec{"vcan2", "socketcan", 55000}));
  EXPECT_EQ(*ParseChannelSpec("vcan0:0"), (ChannelSpec{"vcan0", "", 0})) << "any free port";
  // python-can's interface names with its channels (core/python_can_names.h).
  EXPECT_EQ(*ParseChannelSpec("kvaser:0"), (ChannelSpec{"0", "kvaser", -1}));
  EXPECT_EQ(*ParseChannelSpec("pcan:PCAN_USBBUS1:54703"),
            (ChannelSpec{"PCAN_USBBUS1", "pcan", 54703}));
  EXPECT_EQ(*ParseChannelSpec("gs_usb:1:0"), (ChannelSpec{"1", "gs_usb", 0}));
}

TEST(ChannelSpecTest, BadSpecsNameTheProblem) {
  EXPECT_THAT(Message(ParseChannelSpec("can0:70000").status()), HasSubstr("'70000' is not a port"));
  EXPECT_THAT(Message(ParseChannelSpec("can0:x").status()), HasSubstr("'x' is not a port"));
  EXPECT_THAT(Message(ParseChannelSpec("").status()), HasSubstr("want NAME[:PORT]"));
  EXPECT_THAT(Message(ParseChannelSpec(":54701").status()), HasSubstr("want NAME[:PORT]"));
  EXPECT_THAT(Message(ParseChannelSpec("averyveryverylongname").status()),
              HasSubstr("1..15 characters"));
}

TEST(AssignPortsTest, ChannelsWithoutAPortCountUpSkippingTakenOnes) {
  std::vector<ChannelSpec> specs = {
      {"vcan0", "", -1}, {"vcan1", "", 54702}, {"vcan2", "", -1}, {"vcan3", "", -1}};
  ASSERT_TRUE(AssignPorts(specs, 54701).ok());
  EXPECT_EQ(specs[0].port, 54701);
  EXPECT_EQ(specs[1].port, 54702);
  EXPECT_EQ(specs[2].port, 54703);
  EXPECT_EQ(specs[3].port, 54704);
}

TEST(AssignPortsTest, TheIssuesExample) {
  std::vector<ChannelSpec> specs = {*ParseChannelSpec("vcan0"), *ParseChannelSpec("vcan1"),
                                    *ParseChannelSpec("vcan2:55000")};
  ASSERT_TRUE(AssignPorts(specs, 54701).ok());
  EXPECT_EQ(specs[0].port, 54701);
  EXPECT_EQ(specs[1].port, 54702);
  EXPECT_EQ(specs[2].port, 55000);
}

TEST(AssignPortsTest, PortZeroMeansAnyFreePortForEveryChannel) {
  std::vector<ChannelSpec> specs = {{"a", "", -1}, {"b", "", -1}};
  ASSERT_TRUE(AssignPorts(specs, 0).ok());
  EXPECT_EQ(specs[0].port, 0);
  EXPECT_EQ(specs[1].port, 0);
}

TEST(AssignPortsTest, DuplicatesAreErrors) {
  std::vector<ChannelSpec> twice = {{"can0", "", -1}, {"can0", "", -1}};
  EXPECT_THAT(Message(AssignPorts(twice, 54701)), HasSubstr("'can0' is listed twice"));
  std::vector<ChannelSpec> port = {{"can0", "", 5000}, {"can1", "", 5000}};
  EXPECT_THAT(Message(AssignPorts(port, 54701)), HasSubstr("port 5000 is given to two channels"));
  std::vector<ChannelSpec> full = {{"can0", "", -1}, {"can1", "", -1}};
  EXPECT_THAT(Message(AssignPorts(full, 65535)), HasSubstr("no free port left"));
}

TEST(ServerConfigTest, SettingsAndChannelsInFileOrder) {
  auto config = ParseServerConfig(R"(
# a rig with three channels
[canserver]
threads = 4
error-frames = true   ; dashes or underscores

[can0]
[can1]
port = 54710
[bench]
interface = virtual
)",
                                  "rig.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->settings, (std::vector<std::pair<std::string, std::string>>{
                                  {"threads", "4"}, {"error_frames", "true"}}));
  EXPECT_EQ(
      config->channels,
      (std::vector<ChannelSpec>{{"can0", "", -1}, {"can1", "", 54710}, {"bench", "virtual", -1}}));
}

TEST(ServerConfigTest, ChannelsByPythonCansNames) {
  // A section is python-can's channel with its interface, as a prefix or as a key.
  auto config = ParseServerConfig(R"(
[kvaser:0]
port = 54702
[PCAN_USBBUS1]
interface = pcan
[slcan:/dev/ttyACM0@115200]
)",
                                  "rig.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->channels, (std::vector<ChannelSpec>{{"0", "kvaser", 54702},
                                                        {"PCAN_USBBUS1", "pcan", -1},
                                                        {"/dev/ttyACM0@115200", "slcan", -1}}));
}

TEST(ServerConfigTest, BadFilesAreOneClearErrorWithTheLine) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"[can0]\nprot = 1\n", "rig.conf:2: unknown key 'prot' in [can0]"},
      {"[can0]\nport =\n", "rig.conf:2: 'port' in [can0] has no value"},
      {"[can0]\nport = 99999\n", "rig.conf:2: port '99999' in [can0] is not 0..65535"},
      {"[can0]\ninterface = carrier-pigeon\n", "is not socketcan, virtual, slcan or one of"},
      {"[can0]\nport = 5000\n[can1]\nport = 5000\n",
       "rig.conf: port 5000 is given to two channels"},
      {"[canserver]\nthreads = 2\nthreads = 3\n[can0]\n", "rig.conf:3: 'threads' is given twice"},
      {"threads = 2\n[can0]\n", "rig.conf:1: a key before the first [section]"},
      {"[can0:54701]\n", "rig.conf:1: [can0:54701] is not a channel name"},
      {"[canserver]\nthreads = 2\n", "rig.conf: no channel"},
      {"[can0]\nthis is not ini\n", "rig.conf:2:"},
  };
  for (const auto& [text, want] : cases) {
    auto config = ParseServerConfig(text, "rig.conf");
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_THAT(Message(config.status()), HasSubstr(want)) << text;
  }
}

}  // namespace
}  // namespace canserver
