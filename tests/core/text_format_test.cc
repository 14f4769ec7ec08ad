#include "core/text_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::HasSubstr;

TEST(ParseCansendTest, StandardExtendedRemoteAndSeparators) {
  EXPECT_EQ(*ParseCansend("123#DEADBEEF"), CanFrame::Classic(0x123, {0xDE, 0xAD, 0xBE, 0xEF}));
  EXPECT_EQ(*ParseCansend("1ABCDEF0#11.22.33"),
            CanFrame::Classic(0x1ABCDEF0, {0x11, 0x22, 0x33}, true));
  EXPECT_EQ(*ParseCansend("7FF#"), CanFrame::Classic(0x7FF, {}));
  CanFrame rtr = *ParseCansend("123#R");
  EXPECT_TRUE(rtr.remote());
  EXPECT_EQ(rtr.len, 0);
  EXPECT_EQ(ParseCansend("00000123#R8")->len, 8);
  EXPECT_TRUE(ParseCansend("00000123#R8")->extended());
}

TEST(ParseCansendTest, ErrorsSayWhatIsWrong) {
  EXPECT_THAT(std::string(ParseCansend("123").status().message()), HasSubstr("<can_id>#<data>"));
  EXPECT_THAT(std::string(ParseCansend("12#00").status().message()), HasSubstr("3 hex digits"));
  EXPECT_THAT(std::string(ParseCansend("800#00").status().message()), HasSubstr("over 7FF"));
  EXPECT_THAT(std::string(ParseCansend("3FFFFFFF#00").status().message()), HasSubstr("29 bits"));
  EXPECT_THAT(std::string(ParseCansend("123#0").status().message()), HasSubstr("odd number"));
  EXPECT_THAT(std::string(ParseCansend("123#0011223344556677889").status().message()),
              HasSubstr("odd"));
  EXPECT_THAT(std::string(ParseCansend("123#001122334455667788").status().message()),
              HasSubstr("more than 8"));
  EXPECT_THAT(std::string(ParseCansend("123#zz").status().message()), HasSubstr("not a hex digit"));
  EXPECT_THAT(std::string(ParseCansend("123##").status().message()), HasSubstr("##<flags>"));
  EXPECT_THAT(std::string(ParseCansend("123##8AA").status().message()), HasSubstr("flags digit"));
  EXPECT_THAT(std::string(ParseCansend("123##1" + std::string(130, '0')).status().message()),
              HasSubstr("more than 64 data bytes"));
}

TEST(ParseCansendTest, CanFdWithFlagsAndPadding) {
  CanFrame f = *ParseCansend("123##1112233");
  EXPECT_TRUE(f.fd());
  EXPECT_TRUE(f.flags & kCanFlagBrs);
  EXPECT_FALSE(f.flags & kCanFlagEsi);
  EXPECT_EQ(f.len, 3);
  EXPECT_EQ(f.data[2], 0x33);
  CanFrame esi = *ParseCansend("1ABCDEF0##3" + std::string(128, 'A'));
  EXPECT_TRUE(esi.extended() && (esi.flags & kCanFlagBrs) && (esi.flags & kCanFlagEsi));
  EXPECT_EQ(esi.len, 64);
  // 9 bytes are no CAN FD length: cansend pads to 12.
  CanFrame padded = *ParseCansend("123##0010203040506070809");
  EXPECT_EQ(padded.len, 12);
  EXPECT_EQ(padded.data[8], 0x09);
  EXPECT_EQ(padded.data[11], 0x00);
  EXPECT_FALSE(padded.flags & kCanFlagBrs);
  // FDF (4), which newer can-utils print, is accepted and implied.
  EXPECT_TRUE(ParseCansend("123##5AA")->fd());
}

TEST(FormatTest, LogLinesLookLikeCandumpL) {
  CanFrame f = CanFrame::Classic(0x123, {0xDE, 0xAD});
  f.timestamp_ns = 1'700'000'000'123'456'789;
  EXPECT_EQ(FormatLogLine(f, "can0"), "(1700000000.123456) can0 123#DEAD");
  CanFrame rtr = *ParseCansend("1ABCDEF0#R4");
  EXPECT_EQ(FormatCansend(rtr), "1ABCDEF0#R4");
  CanFrame err;
  err.flags = kCanFlagError;
  err.id = 0x4;
  err.len = 8;
  EXPECT_EQ(FormatCansend(err), "20000004#0000000000000000");
  CanFrame fd = *ParseCansend("123##1AABB");
  fd.timestamp_ns = 1'700'000'000'000'001'000;
  EXPECT_EQ(FormatLogLine(fd, "vcan0"), "(1700000000.000001) vcan0 123##1AABB");
}

TEST(FormatTest, CansendRoundTrips) {
  for (const char* text : {"123#DEADBEEF", "1ABCDEF0#1122", "000#", "7FF#R", "00000001#R8",
                           "123##1DEADBEEF", "1ABCDEF0##3", "7FF##0000102030405060708090A0B"}) {
    EXPECT_EQ(FormatCansend(*ParseCansend(text)), text);
  }
}

TEST(ParseFilterTest, CandumpSyntax) {
  EXPECT_EQ(*ParseFilter("123:7FF"), (CanFilter{0x123, 0x7FF, std::nullopt}));
  EXPECT_EQ(*ParseFilter("80000123:9FFFFFFF"), (CanFilter{0x123, 0x1FFFFFFF, true}));
  EXPECT_EQ(*ParseFilter("123:800007FF"), (CanFilter{0x123, 0x7FF, false}));
  EXPECT_FALSE(ParseFilter("123").ok());
  EXPECT_FALSE(ParseFilter("xyz:7FF").ok());
}

}  // namespace
}  // namespace canserver
