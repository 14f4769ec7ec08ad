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
  EXPECT_THAT(std::string(ParseCansend("123##1AA").status().message()), HasSubstr("CAN FD"));
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
}

TEST(FormatTest, CansendRoundTrips) {
  for (const char* text : {"123#DEADBEEF", "1ABCDEF0#1122", "000#", "7FF#R", "00000001#R8"}) {
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
