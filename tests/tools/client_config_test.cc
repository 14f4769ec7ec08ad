#include "net/client_config.h"

#include <cstdio>
#include <fstream>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

class ClientConfigTest : public ::testing::Test {
 protected:
  ConfigSources Sources() {
    ConfigSources s;
    s.getenv = [this](const char* name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    s.files = files_;
    return s;
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  std::map<std::string, std::string> env_;
  std::vector<std::string> files_;
};

TEST_F(ClientConfigTest, ArgumentsWinOverEnvironmentOverFiles) {
  WriteFile("canrc-a", "[default]\ninterface = remote\nchannel = file:1\nbitrate = 250000\n");
  env_["CAN_CHANNEL"] = "env:2";
  ClientConfigOverrides args;
  args.channel = "arg:3";
  auto c = LoadClientConfig(args, Sources());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->channel, "arg:3");
  EXPECT_EQ(c->bitrate, 250000);
  c = LoadClientConfig({}, Sources());
  EXPECT_EQ(c->channel, "env:2");
  EXPECT_EQ(c->source, "CAN_CHANNEL");
  env_.clear();
  c = LoadClientConfig({}, Sources());
  EXPECT_EQ(c->channel, "file:1");
  EXPECT_THAT(c->source, HasSubstr("[default] channel"));
}

TEST_F(ClientConfigTest, TheFirstFileThatSetsAKeyWins) {
  WriteFile("can-first.ini", "[default]\nbitrate = 125000\n");
  WriteFile("can-second.ini", "[default]\nchannel = second:54701\nbitrate = 1000000\n");
  auto c = LoadClientConfig({}, Sources());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->channel, "second:54701");
  EXPECT_EQ(c->bitrate, 125000);
}

TEST_F(ClientConfigTest, OtherInterfacesAndBadBitratesAreExplained) {
  WriteFile("canrc-b", "[default]\nbustype = socketcan\nchannel = can0\n");
  auto c = LoadClientConfig({}, Sources());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("interface 'socketcan'"));
  env_["CAN_INTERFACE"] = "remote";
  env_["CAN_BITRATE"] = "fast";
  c = LoadClientConfig({}, Sources());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("bitrate 'fast' (from CAN_BITRATE)"));
}

TEST_F(ClientConfigTest, NoChannelAnywhereSaysWhereToPutOne) {
  auto c = LoadClientConfig({}, Sources());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("~/.canrc"));
}

TEST_F(ClientConfigTest, SyntaxErrorsNameTheFileAndLine) {
  const std::string path = WriteFile("broken.ini", "[default]\nchannel = x\nthis is not ini\n");
  auto c = LoadClientConfig({}, Sources());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(path + ": syntax error on line 3"));
}

}  // namespace
}  // namespace canserver
