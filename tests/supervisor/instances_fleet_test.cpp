// stop, start, restart and down --ports on real fleets of busybox
// containers, and down --purge after a plain down: what the kernel and the
// disk show afterwards, and the answers to bad input.
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "fleet_fixture.hpp"
#include "haco/layout.hpp"
#include "haco/registry.hpp"

namespace haco::testing {
namespace {

namespace fs = std::filesystem;
using state::InstanceState;

class InstancesFleetTest : public FleetTest {
 protected:
  std::string port(unsigned i) const { return std::to_string(port_base_ + i); }
  std::string name(unsigned i) const { return "t-" + port(i); }
  std::string on_fleet() const { return " --name " + fleet_; }

  const state::InstanceRecord& record(const state::FleetState& fleet, unsigned i) const {
    const auto* r = fleet.find(name(i));
    EXPECT_NE(r, nullptr) << name(i);
    return *r;
  }

  std::string instance_dir(unsigned i) const { return layout::DataRoot(data_).instance_dir(name(i)); }
};

TEST_F(InstancesFleetTest, StopThenStartKeepsTheInstanceItsTreeAndTheOthers) {
  ASSERT_EQ(up(3).status, 0);
  auto before = *fleet_state();
  // Something the instance wrote into its rootfs.
  const std::string mark = record(before, 1).spec.container.rootfs + "/www/mark";
  { std::ofstream(mark) << "kept\n"; }

  auto stop = haco("stop" + on_fleet() + " --ports " + port(1) + " --timeout 2");
  ASSERT_EQ(stop.status, 0) << stop.output;
  EXPECT_NE(stop.output.find("1 stopped"), std::string::npos) << stop.output;
  auto stopped = *fleet_state();
  EXPECT_EQ(record(stopped, 1).state, InstanceState::stopped);
  EXPECT_FALSE(state::is_alive(record(before, 1).process));
  EXPECT_FALSE(can_connect(port_base_ + 1));
  for (unsigned i : {0u, 2u}) {
    EXPECT_EQ(record(stopped, i).process, record(before, i).process) << name(i);
    EXPECT_TRUE(state::is_alive(record(before, i).process)) << name(i);
  }

  // Stopping it again changes nothing and says so.
  auto again = haco("stop" + on_fleet() + " --ports " + port(1));
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find(name(1) + ": not running"), std::string::npos) << again.output;

  auto start = haco("start" + on_fleet() + " --ports " + port(0) + "-" + port(1) + " --timeout 20");
  ASSERT_EQ(start.status, 0) << start.output;
  EXPECT_NE(start.output.find(name(0) + ": already running"), std::string::npos) << start.output;
  EXPECT_NE(start.output.find("started 1, 1 ready, 0 failed"), std::string::npos) << start.output;
  auto started = *fleet_state();
  const auto& back = record(started, 1);
  EXPECT_EQ(back.state, InstanceState::running);
  EXPECT_TRUE(state::is_alive(back.process));
  EXPECT_NE(back.process, record(before, 1).process);
  EXPECT_TRUE(can_connect(port_base_ + 1));
  EXPECT_EQ(read_text(mark), "kept\n");
  EXPECT_EQ(record(started, 0).process, record(before, 0).process);
}

TEST_F(InstancesFleetTest, RollingRestartGivesEveryInstanceANewInitAndLeavesNoneDown) {
  ASSERT_EQ(up(3).status, 0);
  auto before = *fleet_state();
  auto restart = haco("restart" + on_fleet() + " --rolling --batch 2 --stop-timeout 2 --timeout 20");
  ASSERT_EQ(restart.status, 0) << restart.output;
  EXPECT_NE(restart.output.find("restarted 3, 3 ready, 0 failed"), std::string::npos) << restart.output;
  auto after = *fleet_state();
  for (unsigned i = 0; i < 3; ++i) {
    SCOPED_TRACE(name(i));
    EXPECT_NE(record(after, i).process, record(before, i).process);
    EXPECT_TRUE(state::is_alive(record(after, i).process));
    EXPECT_EQ(record(after, i).state, InstanceState::running);
    EXPECT_TRUE(can_connect(port_base_ + i));
  }
}

TEST_F(InstancesFleetTest, RestartOfChosenPortsLeavesTheOthersAlone) {
  ASSERT_EQ(up(2).status, 0);
  auto before = *fleet_state();
  auto restart = haco("restart" + on_fleet() + " --ports " + port(1) + " --stop-timeout 2 --timeout 20");
  ASSERT_EQ(restart.status, 0) << restart.output;
  auto after = *fleet_state();
  EXPECT_EQ(record(after, 0).process, record(before, 0).process);
  EXPECT_NE(record(after, 1).process, record(before, 1).process);
  EXPECT_TRUE(state::is_alive(record(after, 1).process));
}

TEST_F(InstancesFleetTest, DownPortsRemovesThoseInstancesAndReleasesWhatTheyHeld) {
  ASSERT_EQ(up(3).status, 0);
  auto before = *fleet_state();
  const auto removed = record(before, 2);
  auto down = haco("down" + on_fleet() + " --ports " + port(2) + " --timeout 2");
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_NE(down.output.find("1 instance removed"), std::string::npos) << down.output;

  auto after = *fleet_state();
  ASSERT_EQ(after.instances.size(), 2u);
  EXPECT_EQ(after.find(name(2)), nullptr);
  EXPECT_FALSE(state::is_alive(removed.process));
  for (const auto& dir : removed.cgroup_paths) EXPECT_FALSE(fs::exists(dir)) << dir;
  for (unsigned i : {0u, 1u}) EXPECT_TRUE(state::is_alive(record(before, i).process)) << name(i);
  // Its name, port and ids are free again; its tree is kept for a later --purge.
  auto claims = registry::load_claims(state::FleetPaths{root_, data_, fleet_});
  ASSERT_TRUE(claims.has_value());
  ASSERT_EQ(claims->instances.size(), 2u);
  for (const auto& c : claims->instances) EXPECT_NE(c.instance, name(2));
  EXPECT_TRUE(fs::exists(instance_dir(2) + "/upper"));

  // `up` over the fleet brings it back on its kept tree.
  auto up_again = up(3);
  ASSERT_EQ(up_again.status, 0) << up_again.output;
  EXPECT_NE(up_again.output.find("starting the 1 missing"), std::string::npos) << up_again.output;
  EXPECT_TRUE(can_connect(port_base_ + 2));
}

TEST_F(InstancesFleetTest, DownPortsWithPurgeRemovesTheirTreesAndLogs) {
  ASSERT_EQ(up(2).status, 0);
  auto before = *fleet_state();
  const std::string log = record(before, 1).log_path;
  ASSERT_TRUE(fs::exists(log));
  auto down = haco("down" + on_fleet() + " --ports " + port(1) + " --timeout 2 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_FALSE(fs::exists(instance_dir(1)));
  EXPECT_FALSE(fs::exists(record(before, 1).spec.container.rootfs));
  EXPECT_FALSE(fs::exists(log));
  EXPECT_TRUE(fs::exists(record(before, 0).log_path));
}

TEST_F(InstancesFleetTest, PurgeAfterAPlainDownRemovesWhatItKept) {
  ASSERT_EQ(up(2).status, 0);
  auto before = *fleet_state();
  ASSERT_EQ(haco("down" + on_fleet() + " --timeout 2").status, 0);
  EXPECT_TRUE(fs::exists(instance_dir(0) + "/upper"));
  EXPECT_TRUE(fs::exists(instance_dir(1) + "/upper"));

  auto plain = haco("down" + on_fleet());
  EXPECT_EQ(plain.status, 2) << plain.output;
  EXPECT_NE(plain.output.find("is already down"), std::string::npos) << plain.output;

  auto purge = haco("down" + on_fleet() + " --purge");
  ASSERT_EQ(purge.status, 0) << purge.output;
  for (unsigned i : {0u, 1u}) {
    EXPECT_FALSE(fs::exists(instance_dir(i))) << name(i);
    EXPECT_FALSE(fs::exists(record(before, i).spec.container.rootfs)) << name(i);
  }
  EXPECT_FALSE(fs::exists(layout::DataRoot(data_).fleet_logs(fleet_)));
  EXPECT_FALSE(fs::exists(layout::DataRoot(data_).fleet_kept_record(fleet_)));
  EXPECT_EQ(haco("down" + on_fleet() + " --purge").status, 2);
}

// A stopped instance's record takes reloaded limits; its next start makes
// its cgroups with them (fresh cgroups on every launch).
TEST_F(InstancesFleetTest, AStoppedInstanceStartsWithTheLimitsAReloadRecorded) {
  ASSERT_EQ(up(2).status, 0);
  ASSERT_EQ(haco("stop" + on_fleet() + " --ports " + port(1) + " --timeout 1").status, 0);
  auto reload = run_command("HACO_TEST_PIDS_MAX=100 " + haco_command("reload" + on_fleet()) + " 2>&1");
  ASSERT_EQ(reload.status, 0) << reload.output;
  EXPECT_NE(reload.output.find(name(1) + ": pids.max 64 -> 100: recorded"), std::string::npos) << reload.output;
  auto start = haco("start" + on_fleet() + " --ports " + port(1) + " --timeout 20");
  ASSERT_EQ(start.status, 0) << start.output;
  auto fleet = *fleet_state();
  const auto& started = record(fleet, 1);
  ASSERT_TRUE(state::is_alive(started.process));
  bool read = false;
  for (const auto& dir : started.cgroup_paths)
    if (fs::exists(dir + "/pids.max")) {
      EXPECT_EQ(read_text(dir + "/pids.max"), "100\n") << dir;
      read = true;
    }
  EXPECT_TRUE(read) << "no pids.max in the instance's cgroups";
}

TEST_F(InstancesFleetTest, BadInputIsRefusedWithNothingChanged) {
  ASSERT_EQ(up(2).status, 0);
  auto before = *fleet_state();
  auto unknown = haco("stop" + on_fleet() + " --ports " + port(5));
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("has no instance on port " + port(5)), std::string::npos) << unknown.output;
  auto no_fleet = haco("restart --name no-such-fleet");
  EXPECT_EQ(no_fleet.status, 2) << no_fleet.output;
  EXPECT_NE(no_fleet.output.find("no fleet named 'no-such-fleet'"), std::string::npos) << no_fleet.output;
  auto bad_range = haco("down" + on_fleet() + " --ports " + port(1) + "-" + port(0));
  EXPECT_EQ(bad_range.status, 2) << bad_range.output;
  auto both = haco("down --all --ports " + port(0));
  EXPECT_EQ(both.status, 2) << both.output;
  auto after = *fleet_state();
  for (unsigned i : {0u, 1u}) EXPECT_EQ(record(after, i).process, record(before, i).process);

  // Without its supervisor the fleet cannot be operated on: `up` takes it over.
  ASSERT_EQ(::kill(before.supervisor.pid, SIGKILL), 0);
  for (int i = 0; i < 100 && state::is_alive(before.supervisor); ++i) ::usleep(20000);
  auto orphan = haco("start" + on_fleet());
  EXPECT_EQ(orphan.status, 1) << orphan.output;
  EXPECT_NE(orphan.output.find("is not running: `haco-fleet up` takes the fleet over"), std::string::npos)
      << orphan.output;
}

}  // namespace
}  // namespace haco::testing
