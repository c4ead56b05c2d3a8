#include <gtest/gtest.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"

namespace haco::cgroups {
namespace {

using Settings = std::vector<CgroupSetting>;

TEST(CgroupKeys, CpuQuotaAndPeriodBecomeCpuMax) {
  Settings v1{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "30000"}};
  EXPECT_EQ(translate_to_v2(v1), (Settings{{"cpu.max", "30000 100000"}}));
}

TEST(CgroupKeys, QuotaAloneKeepsTheDefaultPeriod) {
  EXPECT_EQ(translate_to_v2({{"cpu.cfs_quota_us", "50000"}}), (Settings{{"cpu.max", "50000 100000"}}));
  EXPECT_EQ(translate_to_v2({{"cpu.cfs_quota_us", "-1"}}), (Settings{{"cpu.max", "max 100000"}}));
}

TEST(CgroupKeys, CpuMaxBecomesPeriodThenQuota) {
  EXPECT_EQ(translate_to_v1({{"cpu.max", "30000 100000"}}),
            (Settings{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "30000"}}));
  EXPECT_EQ(translate_to_v1({{"cpu.max", "max"}}),
            (Settings{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "-1"}}));
}

TEST(CgroupKeys, V1WritesThePeriodBeforeTheQuota) {
  Settings v1{{"cpu.cfs_quota_us", "30000"}, {"cpu.cfs_period_us", "50000"}};
  EXPECT_EQ(translate_to_v1(v1), (Settings{{"cpu.cfs_period_us", "50000"}, {"cpu.cfs_quota_us", "30000"}}));
}

TEST(CgroupKeys, MemoryAndPids) {
  Settings v1{{"memory.limit_in_bytes", "67108864"}, {"pids.max", "64"}, {"memory.soft_limit_in_bytes", "-1"}};
  Settings v2{{"memory.max", "67108864"}, {"pids.max", "64"}, {"memory.low", "max"}};
  EXPECT_EQ(translate_to_v2(v1), v2);
  EXPECT_EQ(translate_to_v1(v2), v1);
  EXPECT_EQ(translate_to_v2({{"memory.limit_in_bytes", "-1"}}), (Settings{{"memory.max", "max"}}));
}

TEST(CgroupKeys, SharesAndWeightsUseTheSameScaleBothWays) {
  EXPECT_EQ(translate_to_v2({{"cpu.shares", "1024"}}), (Settings{{"cpu.weight", "39"}}));
  EXPECT_EQ(translate_to_v2({{"cpu.shares", "2"}}), (Settings{{"cpu.weight", "1"}}));
  EXPECT_EQ(translate_to_v2({{"cpu.shares", "262144"}}), (Settings{{"cpu.weight", "10000"}}));
  EXPECT_EQ(translate_to_v1({{"cpu.weight", "10000"}}), (Settings{{"cpu.shares", "262144"}}));
  EXPECT_EQ(translate_to_v2({{"blkio.weight", "500"}}), (Settings{{"io.weight", "4950"}}));
  EXPECT_EQ(translate_to_v1({{"io.weight", "1"}}), (Settings{{"blkio.weight", "10"}}));
}

TEST(CgroupKeys, CpusetPassesThrough) {
  Settings s{{"cpuset.cpus", "0-1"}, {"cpuset.mems", "0"}};
  EXPECT_EQ(translate_to_v2(s), s);
  EXPECT_EQ(translate_to_v1(s), s);
}

TEST(CgroupKeys, TheSeedsSettingsAreValid) {
  EXPECT_NO_THROW(validate_settings({{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "30000"}}));
}

TEST(CgroupKeys, UnknownKeyIsAnInputErrorNamingIt) {
  try {
    validate_settings({{"pids.max", "10"}, {"cpu.cfs_quota", "30000"}});
    FAIL() << "an unknown key was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown cgroup key \"cpu.cfs_quota\""), std::string::npos) << e.what();
  }
}

TEST(CgroupKeys, MalformedValuesAreRefused) {
  for (const auto& bad : std::vector<CgroupSetting>{{"cpu.cfs_quota_us", "abc"},
                                                    {"cpu.cfs_quota_us", "10"},
                                                    {"cpu.cfs_period_us", "0"},
                                                    {"memory.limit_in_bytes", "-5"},
                                                    {"memory.max", "-1"},
                                                    {"cpu.shares", "1"},
                                                    {"cpu.weight", "0"},
                                                    {"blkio.weight", "5000"},
                                                    {"pids.max", "many"},
                                                    {"cpuset.cpus", "0;1"},
                                                    {"cpu.max", "30000 100000 7"},
                                                    {"cpu.max", ""}}) {
    EXPECT_THROW(validate_settings({bad}), InputError) << bad.key << " = " << bad.value;
  }
}

}  // namespace
}  // namespace haco::cgroups
