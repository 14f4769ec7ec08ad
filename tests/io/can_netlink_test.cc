// The CAN FD data bit rate out of an RTM_NEWLINK message, built here as the kernel nests it:
// ifinfomsg, IFLA_LINKINFO { IFLA_INFO_KIND "can", IFLA_INFO_DATA { IFLA_CAN_BITTIMING,
// IFLA_CAN_DATA_BITTIMING } }.
#include "io/can_netlink.h"

#include <linux/can/netlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace canserver {
namespace {

// Appends an attribute (header + payload, padded) and returns its offset.
size_t Attr(std::vector<uint8_t>& m, unsigned short type, const void* data, size_t len) {
  const size_t at = m.size();
  rtattr a{};
  a.rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  a.rta_type = type;
  m.resize(at + RTA_SPACE(len));
  std::memcpy(m.data() + at, &a, sizeof a);
  if (len > 0) std::memcpy(m.data() + at + RTA_LENGTH(0), data, len);
  return at;
}
void CloseNest(std::vector<uint8_t>& m, size_t at) {
  rtattr a;
  std::memcpy(&a, m.data() + at, sizeof a);
  a.rta_len = static_cast<unsigned short>(m.size() - at);
  std::memcpy(m.data() + at, &a, sizeof a);
}

std::vector<uint8_t> LinkMessage(int32_t bitrate, int32_t data_bitrate) {
  std::vector<uint8_t> m(NLMSG_LENGTH(sizeof(ifinfomsg)), 0);
  const char name[] = "can0";
  Attr(m, IFLA_IFNAME, name, sizeof name);
  const size_t linkinfo = Attr(m, IFLA_LINKINFO | NLA_F_NESTED, nullptr, 0);
  const char kind[] = "can";
  Attr(m, IFLA_INFO_KIND, kind, sizeof kind);
  const size_t data = Attr(m, IFLA_INFO_DATA | NLA_F_NESTED, nullptr, 0);
  can_bittiming bt{};
  bt.bitrate = static_cast<__u32>(bitrate);
  Attr(m, IFLA_CAN_BITTIMING, &bt, sizeof bt);
  if (data_bitrate > 0) {
    can_bittiming dbt{};
    dbt.bitrate = static_cast<__u32>(data_bitrate);
    Attr(m, IFLA_CAN_DATA_BITTIMING, &dbt, sizeof dbt);
  }
  CloseNest(m, data);
  CloseNest(m, linkinfo);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<__u32>(m.size());
  h.nlmsg_type = RTM_NEWLINK;
  std::memcpy(m.data(), &h, sizeof h);
  return m;
}

TEST(CanNetlinkTest, FindsTheDataBitrateOfAnFdInterface) {
  const std::vector<uint8_t> m = LinkMessage(500000, 2000000);
  EXPECT_EQ(DataBitrateFromLinkMessage(m.data(), m.size()), 2000000);
}

TEST(CanNetlinkTest, AClassicInterfaceHasNone) {
  const std::vector<uint8_t> m = LinkMessage(500000, 0);
  EXPECT_EQ(DataBitrateFromLinkMessage(m.data(), m.size()), 0);
}

TEST(CanNetlinkTest, TruncatedOrForeignMessagesGiveZero) {
  std::vector<uint8_t> m = LinkMessage(500000, 2000000);
  EXPECT_EQ(DataBitrateFromLinkMessage(m.data(), 10), 0);
  EXPECT_EQ(DataBitrateFromLinkMessage(m.data(), m.size() - 8), 0) << "nlmsg_len past the end";
  nlmsghdr h;
  std::memcpy(&h, m.data(), sizeof h);
  h.nlmsg_type = NLMSG_ERROR;
  std::memcpy(m.data(), &h, sizeof h);
  EXPECT_EQ(DataBitrateFromLinkMessage(m.data(), m.size()), 0);
}

}  // namespace
}  // namespace canserver
