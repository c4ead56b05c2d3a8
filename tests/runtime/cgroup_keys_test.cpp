#include <gtest/gtest.h>
#include <unistd.h>

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

TEST(CgroupKeys, MemoryPlusSwapBecomesSwapOnTopOfTheMemoryLimit) {
  Settings v1{{"memory.limit_in_bytes", "67108864"}, {"memory.memsw.limit_in_bytes", "100663296"}};
  Settings v2{{"memory.max", "67108864"}, {"memory.swap.max", "33554432"}};
  EXPECT_EQ(translate_to_v2(v1), v2);
  EXPECT_EQ(translate_to_v1(v2), v1);
  EXPECT_EQ(translate_to_v2({{"memory.limit_in_bytes", "67108864"}, {"memory.memsw.limit_in_bytes", "-1"}}),
            (Settings{{"memory.max", "67108864"}, {"memory.swap.max", "max"}}));
}

TEST(CgroupKeys, MemswIsWrittenAfterTheMemoryLimitOnV1) {
  Settings given{{"memory.memsw.limit_in_bytes", "100663296"}, {"memory.limit_in_bytes", "67108864"}};
  EXPECT_EQ(translate_to_v1(given),
            (Settings{{"memory.limit_in_bytes", "67108864"}, {"memory.memsw.limit_in_bytes", "100663296"}}));
}

TEST(CgroupKeys, MemswWithoutAMemoryLimitIsRefusedNamingWhatIsMissing) {
  try {
    validate_settings({{"memory.memsw.limit_in_bytes", "100663296"}});
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("needs a memory limit too"), std::string::npos) << e.what();
  }
  EXPECT_THROW(validate_settings({{"memory.swap.max", "0"}}), InputError);
  // Less memory+swap than memory cannot be expressed on v2.
  EXPECT_THROW(translate_to_v2({{"memory.limit_in_bytes", "67108864"}, {"memory.memsw.limit_in_bytes", "4096"}}),
               InputError);
}

TEST(CgroupKeys, ReadBackAcceptsWhatTheKernelDoesToAValue) {
  long page = ::sysconf(_SC_PAGESIZE);
  EXPECT_TRUE(kernel_took_value("cpu.max", "30000 100000", "30000 100000"));
  EXPECT_FALSE(kernel_took_value("cpu.max", "30000 100000", "max 100000"));
  EXPECT_TRUE(kernel_took_value("pids.max", "64", "64"));
  EXPECT_FALSE(kernel_took_value("pids.max", "64", "max"));
  EXPECT_TRUE(kernel_took_value("memory.max", std::to_string(page * 10 + 5), std::to_string(page * 10)));
  EXPECT_FALSE(kernel_took_value("memory.max", std::to_string(page * 10), std::to_string(page * 9)));
  EXPECT_TRUE(kernel_took_value("memory.max", "max", "max"));
  EXPECT_TRUE(kernel_took_value("memory.limit_in_bytes", "-1", "9223372036854771712"));
  EXPECT_FALSE(kernel_took_value("memory.limit_in_bytes", "-1", "67108864"));
  EXPECT_TRUE(kernel_took_value("cpuset.cpus", "0,1", "0-1"));
  EXPECT_FALSE(kernel_took_value("cpuset.cpus", "0-2", "0-1"));
  EXPECT_TRUE(kernel_took_value("io.weight", "100", "default 100"));
  EXPECT_FALSE(kernel_took_value("io.weight", "200", "default 100"));
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
                                                    {"cpu.max", ""},
                                                    {"cpu.cfs_quota_us", "17592186044416"},
                                                    {"cpu.max", "17592186044416"},
                                                    {"cpu.cfs_period_us", "1000001"},
                                                    {"pids.max", "0"},
                                                    {"pids.max", "4194305"},
                                                    {"cpuset.cpus", "0-8192"},
                                                    {"cpuset.mems", "3-1"},
                                                    {"cpuset.cpus", "--"},
                                                    {"memory.memsw.limit_in_bytes", "-7"}}) {
    EXPECT_THROW(validate_settings({bad}), InputError) << bad.key << " = " << bad.value;
    EXPECT_TRUE(setting_problem(bad)) << bad.key << " = " << bad.value;
  }
}

// The kernel's own bounds are accepted.
TEST(CgroupKeys, BoundsOfEachRangeAreAccepted) {
  for (const auto& good : std::vector<CgroupSetting>{{"cpu.cfs_quota_us", "1000"},
                                                     {"cpu.cfs_quota_us", "17592186044415"},
                                                     {"cpu.cfs_quota_us", "-1"},
                                                     {"cpu.max", "max 1000000"},
                                                     {"pids.max", "1"},
                                                     {"pids.max", "4194304"},
                                                     {"cpuset.cpus", "0-3,8191"},
                                                     {"memory.max", "9223372036854775807"}}) {
    EXPECT_EQ(setting_problem(good), std::nullopt) << good.key << " = " << good.value;
    EXPECT_NO_THROW(validate_settings({good})) << good.key << " = " << good.value;
  }
}

// The refusal says what the key accepts.
TEST(CgroupKeys, RefusalsNameTheRange) {
  EXPECT_EQ(setting_problem({"cpu.cfs_period_us", "0"}),
            "cgroup[\"cpu.cfs_period_us\"] = \"0\" is out of range or malformed: expected 1000 to 1000000 (microseconds)");
  EXPECT_EQ(setting_problem({"cpu.max", "1 2 3"}),
            "cgroup[\"cpu.max\"] = \"1 2 3\" is out of range or malformed: expected \"QUOTA [PERIOD]\" with QUOTA max or "
            "1000 to 17592186044415 (microseconds), PERIOD 1000 to 1000000 (microseconds)");
  EXPECT_EQ(setting_problem({"io.weight", "0"}),
            "cgroup[\"io.weight\"] = \"0\" is out of range or malformed: expected 1 to 10000");
  try {
    validate_settings({{"pids.max", "0"}});
    FAIL() << "pids.max 0 accepted";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "cgroup[\"pids.max\"] = \"0\" is out of range or malformed: expected max or 1 to 4194304");
  }
}

}  // namespace
}  // namespace haco::cgroups
