#include "io/can_netlink.h"

#include <linux/can/netlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "io/unique_fd.h"

namespace canserver {
namespace {

constexpr size_t kHeader = NLMSG_ALIGN(sizeof(nlmsghdr));
constexpr size_t kAttrHeader = RTA_ALIGN(sizeof(rtattr));

struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// The payload of the attribute `type` among the attributes in `in`, or {} (walked with memcpy:
// netlink's macros cast, and the buffer need not be aligned).
Bytes Find(Bytes in, unsigned short type) {
  size_t at = 0;
  while (at + sizeof(rtattr) <= in.size) {
    rtattr a;
    std::memcpy(&a, in.data + at, sizeof a);
    if (a.rta_len < sizeof(rtattr) || at + a.rta_len > in.size) break;
    if ((a.rta_type & NLA_TYPE_MASK) == type) {
      return {in.data + at + kAttrHeader, a.rta_len - kAttrHeader};
    }
    at += RTA_ALIGN(a.rta_len);
  }
  return {};
}

}  // namespace

int32_t DataBitrateFromLinkMessage(const uint8_t* message, size_t length) {
  const size_t attrs_at = kHeader + NLMSG_ALIGN(sizeof(ifinfomsg));
  if (length < attrs_at) return 0;
  nlmsghdr header;
  std::memcpy(&header, message, sizeof header);
  if (header.nlmsg_type != RTM_NEWLINK || header.nlmsg_len > length ||
      header.nlmsg_len < attrs_at) {
    return 0;
  }
  const Bytes attrs{message + attrs_at, header.nlmsg_len - attrs_at};
  const Bytes linkinfo = Find(attrs, IFLA_LINKINFO);
  const Bytes data = Find(linkinfo, IFLA_INFO_DATA);
  const Bytes dbt = Find(data, IFLA_CAN_DATA_BITTIMING);
  if (dbt.size < sizeof(can_bittiming)) return 0;
  can_bittiming bt;
  std::memcpy(&bt, dbt.data, sizeof bt);
  return static_cast<int32_t>(bt.bitrate);
}

int32_t QueryDataBitrate(int ifindex) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid() || ifindex <= 0) return 0;
  struct {
    nlmsghdr header;
    ifinfomsg info;
  } request{};
  request.header.nlmsg_len = static_cast<__u32>(sizeof request);
  request.header.nlmsg_type = RTM_GETLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.info.ifi_family = AF_UNSPEC;
  request.info.ifi_index = ifindex;
  if (::send(fd.get(), &request, request.header.nlmsg_len, 0) < 0) return 0;
  timeval timeout{1, 0};  // the kernel answers at once; never hang a session's handshake
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  alignas(nlmsghdr) uint8_t answer[16384];
  const ssize_t n = ::recv(fd.get(), answer, sizeof answer, 0);
  return n > 0 ? DataBitrateFromLinkMessage(answer, static_cast<size_t>(n)) : 0;
}

}  // namespace canserver
