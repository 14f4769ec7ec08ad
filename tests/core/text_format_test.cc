#include "core/text_format.h"

#include <stdlib.h>
#include <time.h>

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

TEST(FormatTest, FiltersReadForPeople) {
  EXPECT_EQ(ReadableFilters(""), "everything");
  EXPECT_EQ(ReadableFilters("100:800007FF"), "100:7FF standard");
  EXPECT_EQ(ReadableFilters("9ABCDEF0:9FFFFFFF"), "1ABCDEF0:1FFFFFFF extended");
  EXPECT_EQ(ReadableFilters("100:700 200:800007FF"), "100:700 either type, 200:7FF standard");
  // Round trip from the filters a client sent.
  FilterSet set(
      {{0x123, 0x7FF, false}, {0x1ABCDEF0, 0x1FFFFFFF, true}, {0x100, 0x700, std::nullopt}});
  EXPECT_EQ(ReadableFilters(FormatFilters(set)),
            "123:7FF standard, 1ABCDEF0:1FFFFFFF extended, 100:700 either type");
  EXPECT_EQ(ReadableFilters("zz"), "zz");
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

// Golden lines: what can-utils 2020.11's candump (Debian 12) prints for the same frames, from its
// candump.c and lib.c (sprint_long_canframe): " " [timestamp " "] " " ifname "  " frame.
CanFrame At(CanFrame f, int64_t sec, int64_t usec) {
  f.timestamp_ns = sec * 1'000'000'000 + usec * 1000;
  return f;
}

TEST(CandumpFormatTest, ClassicFdRemoteAndErrorFramesAsCandumpPrintsThem) {
  CandumpFormat c(0, false, "can0");
  EXPECT_EQ(c.Line(At(CanFrame::Classic(0x123, {0x11, 0x22, 0x33}), 1, 0)),
            "  can0  123   [3]  11 22 33");
  CanFrame rtr = CanFrame::Classic(0x7FF, {});
  rtr.flags |= kCanFlagRemote;
  rtr.len = 4;
  EXPECT_EQ(c.Line(rtr), "  can0  7FF   [4]  remote request");
  EXPECT_EQ(c.Line(CanFrame::Classic(0x5, {})), "  can0  005   [0] ");
  CanFrame fd = *ParseCansend("123##1000102030405060708090A0B");
  EXPECT_EQ(c.Line(fd), "  can0  123  [12]  00 01 02 03 04 05 06 07 08 09 0A 0B");
  EXPECT_EQ(c.Line(*ParseCansend("123##0112233")), "  can0  123  [03]  11 22 33");
  // After an extended frame, standard ids are indented to line up.
  EXPECT_EQ(c.Line(CanFrame::Classic(0x1ABCDEF0, {0xFF}, true)), "  can0  1ABCDEF0   [1]  FF");
  EXPECT_EQ(c.Line(CanFrame::Classic(0x123, {1})), "  can0       123   [1]  01");
  CanFrame err = CanFrame::Classic(0x004, {0, 4, 0, 0, 0, 0, 0, 0});
  err.flags |= kCanFlagError;
  EXPECT_EQ(c.Line(err), "  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME");
  err.len = 2;
  EXPECT_EQ(c.Line(err), "  can0  20000004   [2]  00 04                     ERRORFRAME");
}

TEST(CandumpFormatTest, TimestampsAndExtraInfo) {
  CandumpFormat a('a', false, "vcan0");
  EXPECT_EQ(a.Line(At(CanFrame::Classic(0x1, {}), 1700000000, 123456)),
            " (1700000000.123456)  vcan0  001   [0] ");
  CandumpFormat d('d', false, "vcan0");
  EXPECT_EQ(d.Line(At(CanFrame::Classic(0x1, {}), 100, 500)), " (000.000000)  vcan0  001   [0] ");
  EXPECT_EQ(d.Line(At(CanFrame::Classic(0x1, {}), 101, 400)), " (000.999900)  vcan0  001   [0] ");
  EXPECT_EQ(d.Line(At(CanFrame::Classic(0x1, {}), 101, 500)), " (000.000100)  vcan0  001   [0] ");
  CandumpFormat z('z', false, "vcan0");
  (void)z.Line(At(CanFrame::Classic(0x1, {}), 100, 0));
  (void)z.Line(At(CanFrame::Classic(0x1, {}), 101, 0));
  EXPECT_EQ(z.Line(At(CanFrame::Classic(0x1, {}), 112, 5)), " (012.000005)  vcan0  001   [0] ");
  setenv("TZ", "UTC", 1);
  tzset();
  CandumpFormat date('A', false, "can0");
  EXPECT_EQ(date.Line(At(CanFrame::Classic(0x1, {}), 1700000000, 42)),
            " (2023-11-14 22:13:20.000042)  can0  001   [0] ");
  CandumpFormat x(0, true, "can0");
  EXPECT_EQ(x.Line(CanFrame::Classic(0x1, {7})), "  can0  RX - -  001   [1]  07");
  CanFrame brs = *ParseCansend("123##311");
  EXPECT_EQ(x.Line(brs), "  can0  RX B E  123  [01]  11");
}

}  // namespace
}  // namespace canserver
