#include "core/filter.h"

#include "gtest/gtest.h"

namespace canserver {
namespace {

CanFrame Std(uint32_t id) { return CanFrame::Classic(id, {}); }
CanFrame Ext(uint32_t id) { return CanFrame::Classic(id, {}, /*extended=*/true); }

TEST(FilterSetTest, NoFiltersPassEverything) {
  FilterSet set;
  EXPECT_TRUE(set.Matches(Std(0x123)));
  EXPECT_TRUE(set.Matches(Ext(0x1ABCDEF0)));
}

TEST(FilterSetTest, MaskSelectsTheComparedBits) {
  FilterSet set({{0x11, 0xFF, std::nullopt}});
  EXPECT_TRUE(set.Matches(Std(0x011)));
  EXPECT_TRUE(set.Matches(Std(0x711)));  // bits outside the mask do not matter
  EXPECT_FALSE(set.Matches(Std(0x012)));
}

TEST(FilterSetTest, WithoutExtendedKeyBothIdTypesMatch) {
  FilterSet set({{0x100, 0x7FF, std::nullopt}});
  EXPECT_TRUE(set.Matches(Std(0x100)));
  EXPECT_TRUE(set.Matches(Ext(0x100)));
}

TEST(FilterSetTest, ExtendedKeySelectsTheIdType) {
  FilterSet std_only({{0x100, 0x7FF, false}});
  EXPECT_TRUE(std_only.Matches(Std(0x100)));
  EXPECT_FALSE(std_only.Matches(Ext(0x100)));
  FilterSet ext_only({{0x100, 0x7FF, true}});
  EXPECT_FALSE(ext_only.Matches(Std(0x100)));
  EXPECT_TRUE(ext_only.Matches(Ext(0x100)));
}

TEST(FilterSetTest, AnyOfSeveralFiltersPasses) {
  FilterSet set({{0x100, 0x7FF, std::nullopt}, {0x1ABCDEF0, 0x1FFFFFFF, true}});
  EXPECT_TRUE(set.Matches(Std(0x100)));
  EXPECT_TRUE(set.Matches(Ext(0x1ABCDEF0)));
  EXPECT_FALSE(set.Matches(Std(0x101)));
  EXPECT_FALSE(set.Matches(Std(0x1F0)));
}

TEST(FilterSetTest, ZeroMaskPassesAllOfItsType) {
  FilterSet set({{0, 0, true}});
  EXPECT_TRUE(set.Matches(Ext(0x1234)));
  EXPECT_FALSE(set.Matches(Std(0x1234 & 0x7FF)));
}

TEST(CanFrameTest, ToStringLooksLikeCansend) {
  EXPECT_EQ(ToString(CanFrame::Classic(0x123, {0xDE, 0xAD})), "123#DEAD");
  EXPECT_EQ(ToString(CanFrame::Classic(0x1ABCDEF0, {}, true)), "1ABCDEF0#");
}

}  // namespace
}  // namespace canserver
