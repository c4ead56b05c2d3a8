// Two state roots on one host: a fleet brought up under one (--root B) is
// not another root's to take down. Its cgroup names its state root
// (cgroups::kStateRootAttribute), so `down --all` under A leaves it running,
// `down --name` under A refuses it naming B, and an `up` of the same name
// under A refuses to share its cgroups; `down` under B still leaves nothing.
#include <filesystem>

#include "fleet_fixture.hpp"
#include "haco/cgroup.hpp"

namespace haco::testing {
namespace {

namespace fs = std::filesystem;

class StateRootsTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    if (!temp_) return;
    other_root_ = temp_->path().string() + "/other-run";
    other_data_ = temp_->path().string() + "/other-data";
    other_rootfs_base_ = temp_->path().string() + "/other-rootfs";
  }

  // What the other root may hold of the fleet's name (an `up` refused
  // there) goes before the fixture takes down the fleet under its own root.
  void TearDown() override {
    if (temp_) other("down --name " + fleet_ + " --purge --timeout 1");
    FleetTest::TearDown();
  }

  // haco-fleet under the other state root (its own data root and rootfs base).
  CommandResult other(const std::string& args) const {
    return run_command("env HACO_ROOTFS_BASE=" + other_rootfs_base_ + " " + std::string(HACO_BINARY) + " --root " +
                       other_root_ + " --data-root " + other_data_ + " " + args);
  }

  // Every recorded instance and the supervisor still run, and `ps` under
  // the fleet's own root lists each instance as running.
  void expect_fleet_runs(const state::FleetState& fleet, unsigned count) const {
    EXPECT_TRUE(state::is_alive(fleet.supervisor)) << "supervisor " << fleet.supervisor.pid;
    ASSERT_EQ(fleet.instances.size(), count);
    for (const auto& r : fleet.instances) EXPECT_TRUE(state::is_alive(r.process)) << r.name();
    for (unsigned i = 0; i < count; ++i)
      EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_ + i))) << "port " << port_base_ + i;
    auto ps = ps_json();
    ASSERT_EQ(ps["fleets"].size(), 1u);
    const auto& listed = ps["fleets"][0];
    EXPECT_TRUE(listed["supervisor"]["running"].get<bool>());
    ASSERT_EQ(listed["instances"].size(), count);
    for (const auto& instance : listed["instances"]) EXPECT_EQ(instance["state"], "running") << instance.dump();
  }

  std::string other_root_, other_data_, other_rootfs_base_;
};

TEST_F(StateRootsTest, AFleetOfAnotherStateRootIsLeftAloneAndItsOwnRootTakesItDown) {
  auto up_result = up(2);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  const std::string own_root = cgroups::state_root_identity(root_);
  EXPECT_EQ(cgroups::recorded_state_root(fleet->cgroup), own_root)
      << "the fleet's cgroup " << cgroups::state_root_attribute_dir(fleet->cgroup);

  // The other root has no state: the fleet, found by its cgroups, is not its.
  auto all = other("down --all --timeout 1");
  EXPECT_EQ(all.status, 0) << all.output;
  EXPECT_EQ(all.output.find(fleet_), std::string::npos) << all.output;
  expect_fleet_runs(*fleet, 2);

  const std::string refusal =
      "fleet '" + fleet_ + "' belongs to state root " + own_root + " (use --root " + own_root + ")";
  auto named = other("down --name " + fleet_ + " --timeout 1");
  EXPECT_EQ(named.status, 2) << named.output;
  EXPECT_NE(named.output.find(refusal), std::string::npos) << named.output;
  EXPECT_FALSE(fs::exists(other_root_ + "/" + fleet_)) << "down under the other root made state";
  expect_fleet_runs(*fleet, 2);

  // The same name brought up under the other root would share the cgroups.
  auto twin = other("up --name " + fleet_ + " --ports " + ports(2) + " --timeout 20 " + definition());
  EXPECT_NE(twin.status, 0) << twin.output;
  EXPECT_NE(twin.output.find("belongs to state root " + own_root), std::string::npos) << twin.output;
  expect_fleet_runs(*fleet, 2);
  EXPECT_EQ(cgroups::recorded_state_root(fleet->cgroup), own_root);

  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
}

}  // namespace
}  // namespace haco::testing
