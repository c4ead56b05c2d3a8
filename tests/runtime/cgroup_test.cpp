// Cgroups for real: v1 limits and membership, the v2 tree for
// CLONE_INTO_CGROUP and cgroup.kill, the v1 freezer kill.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/cgroup_discovery.hpp"
#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

constexpr const char* kFleet = "haco-rt-test";

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// controllers -> path, from /proc/PID/cgroup.
std::map<std::string, std::string> cgroups_of(pid_t pid) {
  std::map<std::string, std::string> out;
  std::istringstream in(read_file(fmt::format("/proc/{}/cgroup", pid)));
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    out[line.substr(a + 1, b - a - 1)] = line.substr(b + 1);
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool exited_within(const Container& c, int ms) {
  pollfd p{c.pidfd(), POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

using CgroupTest = RootTest;

TEST_F(CgroupTest, LimitsAreWrittenAndTheContainerIsInEveryHierarchy) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  std::vector<CgroupSetting> settings{{"cpu.cfs_period_us", "100000"},
                                      {"cpu.cfs_quota_us", "30000"},
                                      {"memory.limit_in_bytes", "67108864"},
                                      {"pids.max", "64"}};
  auto fleet = test_fleet_cgroup(kFleet);
  CgroupGuard cg(cgroups::InstanceCgroup::create(fleet, "limits", settings), fleet);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-limits", rootfs, base, "exec sleep 60");
  req.instance.container.cgroup = settings;
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container c(req);

  const auto& h = cgroups::discover_hierarchies();
  auto read_setting = [&](const char* controller, const char* file) {
    const cgroups::Hierarchy* hier = h.v1_for(controller);
    return hier ? trimmed(read_file(cgroups::instance_dir(*hier, kFleet, "limits") + "/" + file)) : "no " + std::string(controller);
  };
  if (h.v1_for("cpu")) {
    EXPECT_EQ(read_setting("cpu", "cpu.cfs_quota_us"), "30000");
    EXPECT_EQ(read_setting("cpu", "cpu.cfs_period_us"), "100000");
    EXPECT_EQ(read_setting("memory", "memory.limit_in_bytes"), "67108864");
    EXPECT_EQ(read_setting("pids", "pids.max"), "64");
    auto member = cgroups_of(c.pid());
    for (const char* controller : {"cpu", "memory", "pids", "freezer"}) {
      EXPECT_TRUE(ends_with(member[controller], fmt::format("/haco-fleet/{}/limits", kFleet)))
          << controller << " " << member[controller];
    }
    if (h.v2) {
      EXPECT_TRUE(ends_with(member[""], fmt::format("/haco-fleet/{}/limits", kFleet))) << member[""];
    }
  } else {
    std::string dir = cg->paths().front();
    EXPECT_EQ(trimmed(read_file(dir + "/cpu.max")), "30000 100000");
    EXPECT_EQ(trimmed(read_file(dir + "/memory.max")), "67108864");
    EXPECT_EQ(trimmed(read_file(dir + "/pids.max")), "64");
    EXPECT_TRUE(ends_with(dir, cgroups_of(c.pid())[""])) << dir;
    EXPECT_TRUE(ends_with(dir, "/instances/limits")) << dir;
  }
  EXPECT_EQ(cg->processes(), std::vector<pid_t>{c.pid()});

  cg->kill_all(std::chrono::seconds(5));
  EXPECT_TRUE(exited_within(c, 5000));
  EXPECT_TRUE(cg->processes().empty());
}

TEST_F(CgroupTest, CloneIntoCgroupAndCgroupKillOnTheUnifiedTree) {
  const auto& h = cgroups::discover_hierarchies();
  if (!h.v2) GTEST_SKIP() << "no cgroup2 tree mounted";
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  // Membership only: nothing but CLONE_INTO_CGROUP puts the container there.
  auto fleet = test_fleet_cgroup(kFleet);
  std::unique_ptr<cgroups::InstanceCgroup> v2;
  if (fleet.layout == cgroups::Layout::v1_hybrid)
    v2 = cgroups::V2Cgroup::create(*h.v2, kFleet, "unified", {});
  else
    v2 = cgroups::InstanceCgroup::create(fleet, "unified", {{"pids.max", "max"}});
  CgroupGuard cg(std::move(v2), fleet);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-unified", rootfs, base, "sleep 60 & sleep 60 & exec sleep 60");
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container c(req);

  EXPECT_TRUE(ends_with(cg->paths().back(), cgroups_of(c.pid())[""])) << cgroups_of(c.pid())[""];
  EXPECT_TRUE(ends_with(cg->paths().back(), "/unified")) << cg->paths().back();
  // The init's children are members too.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (cg->processes().size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(cg->processes().size(), 3u) << read_file(req.log_path);
  cg->kill_all(std::chrono::seconds(5));
  EXPECT_TRUE(cg->processes().empty());
  EXPECT_TRUE(exited_within(c, 5000));
}

TEST_F(CgroupTest, FreezerKillEmptiesAV1Cgroup) {
  const auto& h = cgroups::discover_hierarchies();
  if (!h.v1_for("freezer")) GTEST_SKIP() << "no v1 freezer hierarchy";
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  auto v1 = cgroups::V1Cgroup::create(h, kFleet, "freezer", {{"pids.max", "32"}}, false);
  const cgroups::V1Cgroup* v1_ptr = v1.get();
  CgroupGuard cg(std::move(v1), test_fleet_cgroup(kFleet));
  EXPECT_EQ(cg->clone_into_fd(), -1);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-freezer", rootfs, base,
                                        "while true; do sleep 60 & wait; done");
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container c(req);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (cg->processes().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(cg->processes().size(), 2u);
  v1_ptr->freeze_and_kill(std::chrono::seconds(5));
  EXPECT_TRUE(cg->processes().empty());
  EXPECT_TRUE(exited_within(c, 5000));
}

TEST_F(CgroupTest, AV1CpusetGetsItsParentsMemsSoThatTheContainerCanJoin) {
  const auto& h = cgroups::discover_hierarchies();
  if (!h.v1_for("cpuset")) GTEST_SKIP() << "no v1 cpuset hierarchy";
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  auto fleet = test_fleet_cgroup(kFleet);
  CgroupGuard cg(cgroups::InstanceCgroup::create(fleet, "cpuset", {{"cpuset.cpus", "0"}}), fleet);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-cpuset", rootfs, base, "exec sleep 60");
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container c(req);
  std::string dir = cgroups::instance_dir(*h.v1_for("cpuset"), kFleet, "cpuset");
  EXPECT_EQ(trimmed(read_file(dir + "/cpuset.cpus")), "0");
  EXPECT_EQ(trimmed(read_file(dir + "/cpuset.mems")), trimmed(read_file(h.v1_for("cpuset")->own_dir + "/cpuset.mems")));
  EXPECT_TRUE(ends_with(cgroups_of(c.pid())["cpuset"], "/haco-fleet/haco-rt-test/cpuset"));
  EXPECT_EQ(trimmed(status_field(c.pid(), "Cpus_allowed_list")), "0");
}

TEST_F(CgroupTest, ASettingTheKernelRefusesLeavesNoInstanceDirectory) {
  const auto& h = cgroups::discover_hierarchies();
  if (!h.v1_for("cpuset")) GTEST_SKIP() << "no v1 cpuset hierarchy";
  struct RemoveFleet {
    ~RemoveFleet() { cgroups::remove_fleet_cgroups(test_fleet_cgroup(kFleet)); }
  } remove_fleet;
  try {
    cgroups::InstanceCgroup::create(test_fleet_cgroup(kFleet), "refused", {{"cpuset.cpus", "4095"}});
    FAIL() << "a cpuset of a CPU that does not exist was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("creating the cgroup of refused"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpuset.cpus"), std::string::npos) << e.what();
  }
  for (const auto& hier : h.v1) {
    EXPECT_FALSE(std::filesystem::exists(cgroups::instance_dir(hier, kFleet, "refused"))) << hier.own_dir;
  }
  if (h.v2) {
    EXPECT_FALSE(std::filesystem::exists(cgroups::instance_dir(*h.v2, kFleet, "refused")));
  }
  EXPECT_EQ(cgroups::InstanceCgroup::open(test_fleet_cgroup(kFleet), "refused"), nullptr);
}

// The cgroup `name` with `settings`, which limit swap; nullptr with the
// kernel's word in `no_swap` on a host without swap accounting (it has no
// file for it: the test says so and skips, it does not pass).
std::unique_ptr<cgroups::InstanceCgroup> create_with_swap_limits(const cgroups::FleetCgroup& fleet,
                                                                 const std::string& name,
                                                                 const std::vector<CgroupSetting>& settings,
                                                                 std::string& no_swap) {
  try {
    return cgroups::InstanceCgroup::create(fleet, name, settings);
  } catch (const haco::Error& e) {
    cgroups::remove_fleet_cgroups(fleet);
    std::string what = e.what();
    if (what.find("memsw") == std::string::npos && what.find("swap") == std::string::npos) throw;
    no_swap = what;
    return nullptr;
  }
}

TEST_F(CgroupTest, MemoryAndSwapLimitsAreReadBackFromTheKernel) {
  auto fleet = test_fleet_cgroup(kFleet);
  std::vector<CgroupSetting> settings{{"memory.limit_in_bytes", "67108864"},
                                      {"memory.memsw.limit_in_bytes", "100663296"},
                                      {"pids.max", "100"}};
  std::string no_swap;
  auto created = create_with_swap_limits(fleet, "swap", settings, no_swap);
  if (!created) GTEST_SKIP() << "no swap accounting here: " << no_swap;
  CgroupGuard cg(std::move(created), fleet);
  if (fleet.layout == cgroups::Layout::v1_hybrid) {
    const auto& h = cgroups::discover_hierarchies();
    std::string dir = cgroups::instance_dir(*h.v1_for("memory"), kFleet, "swap");
    EXPECT_EQ(trimmed(read_file(dir + "/memory.limit_in_bytes")), "67108864");
    EXPECT_EQ(trimmed(read_file(dir + "/memory.memsw.limit_in_bytes")), "100663296");
  } else {
    std::string dir = cg->paths().front();
    EXPECT_EQ(trimmed(read_file(dir + "/memory.max")), "67108864");
    EXPECT_EQ(trimmed(read_file(dir + "/memory.swap.max")), "33554432");
    EXPECT_EQ(trimmed(read_file(dir + "/pids.max")), "100");
  }
}

// `reload`: new limits written into an existing cgroup and read back. On
// v1, memsw must never be below the memory limit: raising both past the old
// memsw works in the definition's order. A controller the cgroup has no
// directory for (v1) is refused with the key, not written elsewhere.
TEST_F(CgroupTest, UpdateSettingsRewritesLimitsInPlace) {
  auto fleet = test_fleet_cgroup(kFleet);
  std::vector<CgroupSetting> settings{{"memory.limit_in_bytes", "67108864"},
                                      {"memory.memsw.limit_in_bytes", "100663296"},
                                      {"pids.max", "64"}};
  std::string no_swap;
  auto created = create_with_swap_limits(fleet, "update", settings, no_swap);
  if (!created) GTEST_SKIP() << "no swap accounting here: " << no_swap;
  CgroupGuard cg(std::move(created), fleet);
  auto reopened = cgroups::InstanceCgroup::open(fleet, "update");
  ASSERT_NE(reopened, nullptr);
  reopened->update_settings({{"memory.limit_in_bytes", "134217728"},
                             {"memory.memsw.limit_in_bytes", "167772160"},
                             {"pids.max", "100"}});
  if (fleet.layout == cgroups::Layout::v1_hybrid) {
    const auto& h = cgroups::discover_hierarchies();
    std::string memory = cgroups::instance_dir(*h.v1_for("memory"), kFleet, "update");
    EXPECT_EQ(trimmed(read_file(memory + "/memory.limit_in_bytes")), "134217728");
    EXPECT_EQ(trimmed(read_file(memory + "/memory.memsw.limit_in_bytes")), "167772160");
    EXPECT_EQ(trimmed(read_file(cgroups::instance_dir(*h.v1_for("pids"), kFleet, "update") + "/pids.max")), "100");
    try {
      reopened->update_settings({{"cpu.cfs_quota_us", "30000"}});
      ADD_FAILURE() << "a cpu limit was taken by a cgroup without a cpu directory";
    } catch (const haco::Error& e) {
      EXPECT_NE(std::string(e.what()).find("cpu.cfs_quota_us"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("starts again"), std::string::npos) << e.what();
    }
  } else {
    std::string dir = cg->paths().front();
    EXPECT_EQ(trimmed(read_file(dir + "/memory.max")), "134217728");
    EXPECT_EQ(trimmed(read_file(dir + "/memory.swap.max")), "33554432");
    EXPECT_EQ(trimmed(read_file(dir + "/pids.max")), "100");
  }
}

TEST_F(CgroupTest, RemoveLeavesNoDirectoryBehind) {
  std::vector<std::string> paths;
  {
    auto fleet = test_fleet_cgroup(kFleet);
    CgroupGuard cg(cgroups::InstanceCgroup::create(fleet, "gone", {{"cpu.cfs_quota_us", "50000"}}), fleet);
    paths = cg->paths();
    ASSERT_FALSE(paths.empty());
    for (const auto& p : paths) EXPECT_TRUE(std::filesystem::is_directory(p)) << p;
    auto reopened = cgroups::InstanceCgroup::open(test_fleet_cgroup(kFleet), "gone");
    ASSERT_NE(reopened, nullptr);
    EXPECT_EQ(reopened->paths().size(), paths.size());
  }
  for (const auto& p : paths) {
    EXPECT_FALSE(std::filesystem::exists(p)) << p;
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(p).parent_path())) << p;
  }
  // test_fleet_cgroup makes the fleet's levels again (on v2): removed after.
  auto fleet = test_fleet_cgroup(kFleet);
  EXPECT_EQ(cgroups::InstanceCgroup::open(fleet, "gone"), nullptr);
  cgroups::remove_fleet_cgroups(fleet);
}

}  // namespace
}  // namespace haco::testing
