// ops::inspect of an instance that does not run, and ops::read_limits over
// directories that stand for cgroup v1 hierarchies: what is read and what is
// said to be unreadable, without root. tests/supervisor/inspect_fleet_test.cpp
// compares inspect with the kernel on real containers.
#include <gtest/gtest.h>

#include <map>

#include "../supervisor/sample_instance.hpp"
#include "haco/error.hpp"
#include "haco/ops_inspect.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using haco::testing::sample_instance;

class InspectTest : public ::testing::Test {
 protected:
  std::string state_root() const { return (dir_.path() / "state").string(); }
  std::string data_root() const { return (dir_.path() / "data").string(); }

  void record_fleet() {
    state::FleetPaths paths{state_root(), data_root(), "web"};
    state::FleetState state;
    state.fleet = "web";
    state.definition = "/defs/web.haco";
    state.supervisor = {999999999, 1};  // gone
    state::InstanceRecord r;
    r.spec = sample_instance(10001);
    r.spec_hash = state::spec_hash(r.spec);
    r.state = state::InstanceState::failed;
    r.restarts = 2;
    r.last_exit = state::ExitRecord{3, 0, 1700000002000};
    r.recent_exits = {{{3, 0, 1700000001000}, true, false}, {{3, 0, 1700000002000}, false, false}};
    r.log_path = dir_.file("data/logs/web/web-10001.log", "hello\n");
    r.cgroup_paths = {(dir_.path() / "no-such-cgroup").string()};
    state.instances.push_back(r);
    paths.make_directories();
    state::save_state(paths, state);
  }

  haco::testing::TempDir dir_;
};

TEST_F(InspectTest, AStoppedInstanceInspectsWithWhatCannotBeReadSaidSo) {
  record_fleet();
  auto r = inspect(state_root(), data_root(), "", "10001");
  EXPECT_EQ(r.fleet, "web");
  EXPECT_EQ(r.record.name(), "web-10001");
  EXPECT_EQ(r.record.spec, sample_instance(10001));
  EXPECT_FALSE(r.supervised);
  EXPECT_EQ(r.state, "failed");
  EXPECT_FALSE(r.init_running);
  EXPECT_EQ(r.not_running, "not running (failed)");
  EXPECT_EQ(r.namespaces_error, r.not_running);
  EXPECT_EQ(r.mounts_error, r.not_running);
  EXPECT_TRUE(r.namespaces.empty());
  EXPECT_EQ(r.pids_error, "its cgroup directories are gone");
  ASSERT_EQ(r.limits.size(), 1u);
  EXPECT_FALSE(r.limits[0].kernel.has_value());
  EXPECT_FALSE(r.limits[0].matches());
  EXPECT_FALSE(r.limits[0].error.empty());
  ASSERT_EQ(r.logs.size(), 2u);
  EXPECT_EQ(r.logs[0].size, std::optional<std::uint64_t>(6));
  EXPECT_EQ(r.logs[1].path, r.logs[0].path + ".1");
  EXPECT_FALSE(r.logs[1].size.has_value());
  ASSERT_EQ(r.record.recent_exits.size(), 2u);
  EXPECT_TRUE(r.record.recent_exits[0].restarted);
  // By name too.
  EXPECT_EQ(inspect(state_root(), data_root(), "web", "web-10001").record.spec.port, 10001);
}

TEST_F(InspectTest, AnUnknownPortOrFleetIsBadInput) {
  record_fleet();
  try {
    inspect(state_root(), data_root(), "", "10009");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("10001"), std::string::npos) << e.what();
  }
  EXPECT_THROW(inspect(state_root(), data_root(), "nosuch", "10001"), InputError);
}

// Outside a cgroup filesystem the directories count as v1 hierarchies: each
// limit is read from the one that has its file.
TEST(ReadLimits, EachLimitFromTheDirectoryThatHasItsFile) {
  haco::testing::TempDir dir;
  dir.file("pids/pids.max", "100\n");
  dir.file("cpu/cpu.cfs_quota_us", "30000\n");
  dir.file("cpu/cpu.cfs_period_us", "100000\n");
  const std::vector<std::string> dirs{(dir.path() / "pids").string(), (dir.path() / "cpu").string(),
                                      (dir.path() / "gone").string()};
  auto limits = read_limits({{"pids.max", "64"}, {"cpu.cfs_quota_us", "30000"}, {"memory.limit_in_bytes", "1048576"}}, dirs);
  ASSERT_EQ(limits.size(), 3u);
  std::map<std::string, const LimitView*> by_key;
  for (const auto& l : limits) by_key[l.key] = &l;
  ASSERT_TRUE(by_key.count("pids.max"));
  EXPECT_EQ(by_key["pids.max"]->kernel, std::optional<std::string>("100"));
  EXPECT_EQ(by_key["pids.max"]->dir, dirs[0]);
  EXPECT_FALSE(by_key["pids.max"]->matches());  // 64 asked, 100 read
  ASSERT_TRUE(by_key.count("cpu.cfs_quota_us"));
  EXPECT_TRUE(by_key["cpu.cfs_quota_us"]->matches());
  ASSERT_TRUE(by_key.count("memory.limit_in_bytes"));
  EXPECT_FALSE(by_key["memory.limit_in_bytes"]->kernel.has_value());
  EXPECT_NE(by_key["memory.limit_in_bytes"]->error.find("memory.limit_in_bytes"), std::string::npos);
}

}  // namespace
}  // namespace haco::ops
