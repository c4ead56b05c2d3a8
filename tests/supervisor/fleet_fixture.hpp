// A real fleet of busybox containers in a temporary state root, data root
// and rootfs base. Whatever a test does, TearDown runs `down --purge`, then
// kills what is left in the fleet's cgroups, removes them and unmounts
// anything under the temporary directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "haco/state.hpp"
#include "test_support.hpp"

namespace haco::testing {

class FleetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  // haco-fleet with this test's --root and --data-root.
  CommandResult haco(const std::string& args) const;
  std::string haco_command(const std::string& args) const;
  // up of `count` instances of the test definition from port_base_.
  CommandResult up(unsigned count, const std::string& extra = "") const;
  std::string ports(unsigned count, unsigned first = 0) const;
  std::string definition() const;

  std::optional<state::FleetState> fleet_state() const;
  nlohmann::json ps_json() const;
  // Every cgroup directory of the fleet, in every hierarchy.
  std::vector<std::string> fleet_cgroup_dirs() const;
  // Mount points under the temporary directory.
  std::vector<std::string> mounts_under_temp() const;
  // Nothing of `before` is left: processes, cgroups, mounts, state.
  void expect_nothing_left(const state::FleetState& before) const;

  std::unique_ptr<TempDir> temp_;
  std::string root_, data_, rootfs_base_;
  std::string fleet_;
  unsigned port_base_ = 0;
  static std::string image_;
  // What went wrong while the suite was set up (an image that could not be
  // built), empty when nothing did. SetUp fails every test with it: an
  // assertion in SetUpTestSuite would mark the tests skipped, and ctest
  // counts a skipped test as passed.
  static std::string suite_setup_error_;
};

bool can_connect(std::uint16_t port);
// Polls `done` every 20 ms; false when it is still not true after `timeout`.
bool wait_for(const std::function<bool()>& done, std::chrono::seconds timeout);
// Host uid of `pid` (real uid, from /proc/PID/status) and its parent.
std::optional<unsigned> host_uid(pid_t pid);
std::optional<pid_t> parent_of(pid_t pid);
std::string read_text(const std::string& path);

}  // namespace haco::testing
