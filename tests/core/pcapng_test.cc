// pcapng blocks byte for byte (the layouts of draft-ietf-opsawg-pcapng and the kernel's
// can_frame/canfd_frame); tshark reading canremote's stream is in tests/tools/canremote_test.cc.
#include "core/pcapng.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

TEST(PcapngTest, SectionHeaderIsALittleEndianStreamSection) {
  EXPECT_EQ(Hex(pcapng::SectionHeader()),
            "0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000");
}

TEST(PcapngTest, InterfaceIsSocketcanWithNameNanosecondsAndSpeed) {
  EXPECT_EQ(Hex(pcapng::InterfaceDescription("can0", 500000)),
            "01000000"  // block type 1
            "34000000"  // 52 bytes
            "e3000000"
            "00000000"  // LINKTYPE_CAN_SOCKETCAN, snap length 0
            "02000400"
            "63616e30"  // if_name "can0"
            "09000100"
            "09000000"  // if_tsresol 9
            "08000800"
            "20a1070000000000"  // if_speed 500000
            "00000000"          // end of options
            "34000000");
}

TEST(PcapngTest, FramesAreTheKernelsCanFrameAndCanfdFrame) {
  CanFrame f = CanFrame::Classic(0x123, {0x11, 0x22});
  f.timestamp_ns = 0x0000000100000002;
  EXPECT_EQ(Hex(pcapng::Packet(0, f)),
            "06000000"
            "30000000"
            "00000000"  // EPB, 48 bytes, interface 0
            "01000000"
            "02000000"  // timestamp high, low
            "10000000"
            "10000000"  // 16 bytes captured and on the wire
            "00000123"
            "02000000"
            "1122000000000000"  // can_id big-endian, len, data
            "30000000");
  CanFrame ext = CanFrame::Classic(0x1ABCDEF0, {}, true);
  ext.flags |= kCanFlagRemote;
  ext.len = 4;
  EXPECT_EQ(Hex(pcapng::Packet(0, ext)).substr(56, 16), "dabcdef004000000")
      << "EFF and RTR flags in the id, the DLC kept, no data";
  CanFrame err = CanFrame::Classic(0x004, {0, 4, 0, 0, 0, 0, 0, 0});
  err.flags |= kCanFlagError;
  EXPECT_EQ(Hex(pcapng::Packet(0, err)).substr(56, 8), "20000004");
  CanFrame fd = CanFrame::Classic(0x321, {0xAA, 0xBB});
  fd.flags |= kCanFlagFd | kCanFlagBrs;
  const std::string block = pcapng::Packet(2, fd);
  EXPECT_EQ(block.size(), 12u + 20u + 72u);
  EXPECT_EQ(Hex(block).substr(16, 8), "02000000") << "interface 2";
  EXPECT_EQ(Hex(block).substr(56, 24), "0000032102050000aabb0000") << "FD: BRS and FDF flags";
}

}  // namespace
}  // namespace canserver
