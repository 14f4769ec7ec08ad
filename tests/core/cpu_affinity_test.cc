#include "core/cpu_affinity.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CpuAffinityTest, ListsAndRangesOnEitherSide) {
  auto a = ParseCpuAffinity("0/1-3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->can_cpus, ElementsAre(0));
  EXPECT_THAT(a->io_cpus, ElementsAre(1, 2, 3));
  EXPECT_EQ(CpuAffinity::For(a->io_cpus, 4), 2);  // io thread 4 wraps to the second CPU
  a = ParseCpuAffinity("0,2/");
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(a->can_cpus, ElementsAre(0, 2));
  EXPECT_TRUE(a->io_cpus.empty());
  EXPECT_EQ(CpuAffinity::For(a->io_cpus, 0), -1);
  a = ParseCpuAffinity("");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->empty());
}

TEST(CpuAffinityTest, MistakesAreNamed) {
  EXPECT_THAT(std::string(ParseCpuAffinity("0").status().message()),
              HasSubstr("wants CAN_CPUS/IO_CPUS"));
  EXPECT_THAT(std::string(ParseCpuAffinity("0/1/2").status().message()),
              HasSubstr("wants CAN_CPUS/IO_CPUS"));
  EXPECT_THAT(std::string(ParseCpuAffinity("x/1").status().message()),
              HasSubstr("'x' in the CAN thread list"));
  EXPECT_THAT(std::string(ParseCpuAffinity("0/3-1").status().message()),
              HasSubstr("'3-1' in the io thread list"));
  EXPECT_FALSE(ParseCpuAffinity("0/-1").ok());
  EXPECT_FALSE(ParseCpuAffinity("0/1,,2").ok());
  EXPECT_FALSE(ParseCpuAffinity("0/5000").ok());
}

}  // namespace
}  // namespace canserver
