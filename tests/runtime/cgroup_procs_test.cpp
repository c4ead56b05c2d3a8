// Reading a cgroup's member list: one pid a line, and a cgroup that is gone
// holds none.
#include <gtest/gtest.h>

#include "haco/cgroup.hpp"
#include "test_support.hpp"

namespace haco::cgroups {
namespace {

TEST(CgroupProcs, ReadsOnePidALine) {
  testing::TempDir dir;
  dir.file("cgroup.procs", "12\n345\n6789\n");
  EXPECT_EQ(read_procs(dir.path().string()), (std::vector<pid_t>{12, 345, 6789}));
}

TEST(CgroupProcs, AnEmptyOrMissingCgroupHoldsNone) {
  testing::TempDir dir;
  dir.file("cgroup.procs", "");
  EXPECT_TRUE(read_procs(dir.path().string()).empty());
  EXPECT_TRUE(read_procs(dir.path().string() + "/removed").empty());
}

}  // namespace
}  // namespace haco::cgroups
