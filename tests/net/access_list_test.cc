#include "net/access_list.h"

#include <arpa/inet.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

sockaddr_storage V4(const char* text) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  in->sin_family = AF_INET;
  ::inet_pton(AF_INET, text, &in->sin_addr);
  return ss;
}
sockaddr_storage V6(const char* text) {
  sockaddr_storage ss{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  ::inet_pton(AF_INET6, text, &in6->sin6_addr);
  return ss;
}
bool Allows(const AccessList& l, sockaddr_storage ss) {
  return l.Allows(reinterpret_cast<const sockaddr*>(&ss));
}

TEST(AccessListTest, EmptyAllowsEveryone) {
  AccessList l = *AccessList::Parse({});
  EXPECT_TRUE(Allows(l, V4("8.8.8.8")));
  EXPECT_EQ(l.ToString(), "everyone");
}

TEST(AccessListTest, BlocksAndSingleAddresses) {
  AccessList l = *AccessList::Parse({"10.1.0.0/16", "192.168.1.5", "fd00::/8"});
  EXPECT_TRUE(Allows(l, V4("10.1.200.3")));
  EXPECT_FALSE(Allows(l, V4("10.2.0.1")));
  EXPECT_TRUE(Allows(l, V4("192.168.1.5")));
  EXPECT_FALSE(Allows(l, V4("192.168.1.6")));
  EXPECT_TRUE(Allows(l, V6("fd12::1")));
  EXPECT_FALSE(Allows(l, V6("fe80::1")));
  EXPECT_TRUE(Allows(l, V6("::ffff:10.1.0.9"))) << "IPv4 clients of an IPv6 listener";
}

TEST(AccessListTest, OddPrefixLengths) {
  AccessList l = *AccessList::Parse({"172.16.0.0/12"});
  EXPECT_TRUE(Allows(l, V4("172.31.255.255")));
  EXPECT_FALSE(Allows(l, V4("172.32.0.0")));
  EXPECT_TRUE(Allows(*AccessList::Parse({"0.0.0.0/0"}), V4("1.2.3.4")));
}

TEST(AccessListTest, BadEntriesAreExplained) {
  EXPECT_THAT(std::string(AccessList::Parse({"10.0.0.0/33"}).status().message()),
              ::testing::HasSubstr("prefix length must be 0..32"));
  EXPECT_THAT(std::string(AccessList::Parse({"rig1"}).status().message()),
              ::testing::HasSubstr("not an IPv4 or IPv6 address"));
}

}  // namespace
}  // namespace canserver
