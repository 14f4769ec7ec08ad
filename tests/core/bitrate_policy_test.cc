#include "core/bitrate_policy.h"

#include <linux/can/error.h>

#include "core/bus_state.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using Action = BitrateDecision::Action;
using ::testing::HasSubstr;

TEST(BitratePolicyTest, ParsesTheThreeNames) {
  EXPECT_EQ(*ParseBitratePolicy("check"), BitratePolicy::kCheck);
  EXPECT_EQ(*ParseBitratePolicy("ignore"), BitratePolicy::kIgnore);
  EXPECT_EQ(*ParseBitratePolicy("apply"), BitratePolicy::kApply);
  EXPECT_THAT(std::string(ParseBitratePolicy("force").status().message()),
              HasSubstr("'force' is not check, ignore or apply"));
}

TEST(BitratePolicyTest, RateZeroNoBitTimingOrTheSameRateAlwaysPass) {
  for (BitratePolicy p : {BitratePolicy::kCheck, BitratePolicy::kIgnore, BitratePolicy::kApply}) {
    EXPECT_EQ(DecideBitrate(p, 0, 500000, 3, "can0").action, Action::kAccept);
    EXPECT_EQ(DecideBitrate(p, 250000, 0, 3, "vcan0").action, Action::kAccept);
    EXPECT_EQ(DecideBitrate(p, 500000, 500000, 3, "can0").action, Action::kAccept);
  }
}

TEST(BitratePolicyTest, CheckRefusesAndNamesBothRates) {
  const BitrateDecision d = DecideBitrate(BitratePolicy::kCheck, 500000, 250000, 0, "can0");
  EXPECT_EQ(d.action, Action::kRefuse);
  EXPECT_THAT(d.reason, HasSubstr("asked for 500000 bit/s, but can0 runs at 250000 bit/s"));
}

TEST(BitratePolicyTest, IgnoreAccepts) {
  EXPECT_EQ(DecideBitrate(BitratePolicy::kIgnore, 500000, 250000, 2, "can0").action,
            Action::kAccept);
}

TEST(BitratePolicyTest, ApplyOnlyWhenAlone) {
  EXPECT_EQ(DecideBitrate(BitratePolicy::kApply, 500000, 250000, 0, "can0").action, Action::kApply);
  const BitrateDecision busy = DecideBitrate(BitratePolicy::kApply, 500000, 250000, 2, "can0");
  EXPECT_EQ(busy.action, Action::kRefuse);
  EXPECT_THAT(busy.reason, HasSubstr("2 other client(s) use it at 250000 bit/s"));
}

TEST(BitratePolicyTest, TheBusResponseTellsTheTruth) {
  EXPECT_EQ(DescribeBitrate(250000, 500000, 0), "250000 bit/s");
  EXPECT_EQ(DescribeBitrate(250000, 500000, 1000000), "250000 bit/s");
  EXPECT_EQ(DescribeBitrate(0, 500000, 0), "no bit timing (asked 500000 bit/s)");
  EXPECT_EQ(DescribeBitrate(0, 500000, 1000000), "1000000 bit/s (--bitrate)");
  EXPECT_EQ(DescribeBitrate(500000, 0, 0, 2000000), "500000 bit/s, data 2000000 bit/s");
}

CanFrame ErrorFrame(uint32_t cls, uint8_t crtl = 0) { return CanFrame::Error(cls, {0, crtl}); }

TEST(BusStateTest, ErrorFramesAnnounceTheControllersState) {
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_BUSOFF)), BusState::kBusOff);
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_CRTL, CAN_ERR_CRTL_TX_PASSIVE)),
            BusState::kErrorPassive);
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_CRTL, CAN_ERR_CRTL_RX_WARNING)),
            BusState::kErrorWarning);
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_CRTL, CAN_ERR_CRTL_ACTIVE)),
            BusState::kErrorActive);
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_RESTARTED)), BusState::kErrorActive);
  EXPECT_EQ(StateFromErrorFrame(ErrorFrame(CAN_ERR_BUSOFF | CAN_ERR_CRTL, CAN_ERR_CRTL_ACTIVE)),
            BusState::kBusOff)
      << "the most severe class wins";
  EXPECT_FALSE(StateFromErrorFrame(ErrorFrame(CAN_ERR_LOSTARB)).has_value());
  EXPECT_FALSE(StateFromErrorFrame(CanFrame::Classic(CAN_ERR_BUSOFF, {})).has_value())
      << "a data frame is no error frame, whatever its id";
  EXPECT_EQ(BusStateName(BusState::kErrorPassive), "error-passive");
}

}  // namespace
}  // namespace canserver
