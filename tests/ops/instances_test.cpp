// ops::stop_instances, start_instances and restart_instances, and
// ops::down with --ports, over a fake supervisor client: which instances
// each asks the supervisor for, in which order, and what is refused. Fleet
// state and locks are real files in a temporary directory.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "haco/error.hpp"
#include "haco/ops_instances.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using Names = std::vector<std::string>;
using state::InstanceState;
using testing::FakeProbes;
using testing::FakeSupervisor;
using testing::RecordingSink;

class InstancesTest : public ::testing::Test {
 protected:
  InstancesTest() {
    which_.state_root = (dir_.path() / "state").string();
    which_.data_root = (dir_.path() / "data").string();
    supervisor_.listening = true;
  }

  state::FleetPaths paths() const { return {which_.state_root, which_.data_root, "web"}; }

  // Fleet "web" with instances web-1..web-N on ports 1..N, in these states;
  // its supervisor is this process (alive) unless `supervised` is false.
  void record_fleet(const std::vector<InstanceState>& states, bool supervised = true) {
    state::FleetState fleet;
    fleet.fleet = "web";
    if (supervised) fleet.supervisor = *state::identify(::getpid());
    for (std::size_t i = 0; i < states.size(); ++i) {
      state::InstanceRecord r;
      r.spec.index = i;
      r.spec.port = static_cast<std::uint16_t>(i + 1);
      r.spec.container.name = "web-" + std::to_string(i + 1);
      r.state = states[i];
      if (states[i] == InstanceState::running) r.process = {static_cast<pid_t>(200000 + i), 1};
      fleet.instances.push_back(r);
    }
    paths().make_directories();
    state::save_state(paths(), fleet);
  }

  InstanceServices services() { return {supervisor_, probes_.factory(), sink_}; }

  template <class F>
  std::string error_of(F&& f) {
    try {
      f();
    } catch (const InputError& e) {
      return "input: " + std::string(e.what());
    } catch (const Error& e) {
      return "error: " + std::string(e.what());
    }
    return "";
  }

  haco::testing::TempDir dir_;
  InstanceSelection which_;
  FakeSupervisor supervisor_;
  FakeProbes probes_;
  RecordingSink sink_;
};

constexpr auto running = InstanceState::running;
constexpr auto stopped = InstanceState::stopped;
constexpr auto exited = InstanceState::exited;

TEST_F(InstancesTest, StopAsksForTheRunningInstancesOnThePortsOnly) {
  record_fleet({running, running, stopped, running});
  which_.ports = "2-3";
  StopInstancesRequest request{which_, std::chrono::milliseconds(1500)};
  auto result = stop_instances(request, supervisor_, sink_);
  EXPECT_EQ(result.fleet, "web");
  EXPECT_EQ(result.stopped, (Names{"web-2"}));
  EXPECT_EQ(result.not_running, (Names{"web-3"}));
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-2"}}));
  EXPECT_TRUE(sink_.said("web-3: not running (left as it is)"));
}

TEST_F(InstancesTest, StopWithoutPortsStopsEveryRunningInstance) {
  record_fleet({running, exited, running});
  auto result = stop_instances({which_}, supervisor_, sink_);
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-1", "web-3"}}));
  EXPECT_EQ(result.not_running, (Names{"web-2"}));
}

TEST_F(InstancesTest, AnUnknownPortIsBadInputAndNothingIsAsked) {
  record_fleet({running, running});
  which_.ports = "2-4";
  EXPECT_EQ(error_of([&] { stop_instances({which_}, supervisor_, sink_); }),
            "input: fleet 'web' has no instances on ports 3-4 (its ports: 1-2)");
  EXPECT_EQ(error_of([&] { start_instances({which_}, services()); }),
            "input: fleet 'web' has no instances on ports 3-4 (its ports: 1-2)");
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(InstancesTest, AFleetWithoutItsSupervisorIsAnErrorPointingToUp) {
  record_fleet({running}, false);
  auto error = error_of([&] { stop_instances({which_}, supervisor_, sink_); });
  EXPECT_EQ(error.rfind("error: the supervisor of fleet 'web' is not running", 0), 0u) << error;
  EXPECT_NE(error.find("haco-fleet up"), std::string::npos) << error;
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(InstancesTest, StartSendsTheStoppedRecordsAndWaitsUntilReady) {
  record_fleet({running, stopped, exited});
  auto result = start_instances({which_}, services());
  EXPECT_EQ(result.already_running, (Names{"web-1"}));
  EXPECT_EQ(result.started, (Names{"web-2", "web-3"}));
  EXPECT_EQ(supervisor_.started, (Names{"web-2", "web-3"}));
  EXPECT_EQ(probes_.watched, (Names{"web-2", "web-3"}));
  EXPECT_EQ(result.ready, 2u);
  EXPECT_TRUE(result.failures.empty());
}

// Records of several expansions may share a spec.index: the phases are
// still each instance's own.
TEST_F(InstancesTest, StartHandsEachInstancesMeasuredPhasesToTheSupervisor) {
  record_fleet({stopped, running, stopped});
  auto fleet = *state::load_state(paths());
  for (auto& r : fleet.instances) r.spec.index = 0;
  state::save_state(paths(), fleet);
  supervisor_.fail_to_start = {"web-3"};
  start_instances({which_}, services());
  ASSERT_EQ(supervisor_.measured_starts.size(), 1u);
  EXPECT_EQ(supervisor_.measured_starts[0].instance, "web-1");
  EXPECT_EQ(supervisor_.measured_starts[0].phases.size(), 2u) << "clone_to_exec and exec_to_ready";
}

// Ctrl-C is caught only from here on: waiting for the lock, it just ends
// the command.
TEST_F(InstancesTest, StartCallsOnLockedOnceItHoldsTheFleetsLock) {
  record_fleet({stopped});
  StartInstancesRequest request{which_};
  std::string holder;
  request.on_locked = [&] {
    auto h = state::FleetLock::holder(paths());
    holder = h ? h->role : "none";
    EXPECT_FALSE(state::FleetLock::try_acquire(paths(), "test").has_value());
  };
  start_instances(request, services());
  EXPECT_EQ(holder, "start");
}

TEST_F(InstancesTest, StartReportsAnInstanceThatFailsAndTheOthersStillStart) {
  record_fleet({stopped, stopped});
  supervisor_.fail_to_start = {"web-1"};
  auto result = start_instances({which_}, services());
  ASSERT_EQ(result.failures.size(), 1u);
  EXPECT_EQ(result.failures.begin()->first, "web-1");
  EXPECT_EQ(result.ready, 1u);
}

TEST_F(InstancesTest, StartOfRunningInstancesAsksForNothing) {
  record_fleet({running});
  auto result = start_instances({which_}, services());
  EXPECT_TRUE(result.started.empty());
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(InstancesTest, RestartStopsTheRunningOnesThenStartsAllOfThem) {
  record_fleet({running, stopped, running});
  RestartInstancesRequest request;
  request.start.which = which_;
  auto result = restart_instances(request, services());
  EXPECT_EQ(supervisor_.calls, (Names{"stop", "start"}));
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-1", "web-3"}}));
  EXPECT_EQ(supervisor_.started, (Names{"web-1", "web-2", "web-3"}));
  EXPECT_EQ(result.ready, 3u);
}

TEST_F(InstancesTest, RollingRestartGoesOneBatchAtATime) {
  record_fleet({running, running, running, running, running});
  RestartInstancesRequest request;
  request.start.which = which_;
  request.rolling = true;
  request.batch = 2;
  auto result = restart_instances(request, services());
  EXPECT_EQ(supervisor_.calls, (Names{"stop", "start", "stop", "start", "stop", "start"}));
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-1", "web-2"}, {"web-3", "web-4"}, {"web-5"}}));
  EXPECT_EQ(result.ready, 5u);
  EXPECT_TRUE(result.not_reached.empty());
}

TEST_F(InstancesTest, RollingRestartEndsAtTheFirstBatchThatFails) {
  record_fleet({running, running, running});
  supervisor_.fail_to_start = {"web-2"};
  RestartInstancesRequest request;
  request.start.which = which_;
  request.rolling = true;
  auto result = restart_instances(request, services());
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-1"}, {"web-2"}}));
  EXPECT_EQ(result.not_reached, (Names{"web-3"}));
  EXPECT_EQ(result.failures.count("web-2"), 1u);
  EXPECT_TRUE(sink_.said("1 instance not restarted"));
}

TEST_F(InstancesTest, RollingRestartWaitsForReadinessBeforeTheNextBatch) {
  record_fleet({running, running});
  probes_.ready = false;
  RestartInstancesRequest request;
  request.start.which = which_;
  request.rolling = true;
  auto result = restart_instances(request, services());
  // web-1 never became ready: web-2 was not touched.
  EXPECT_EQ(supervisor_.stopped, (std::vector<Names>{{"web-1"}}));
  EXPECT_EQ(result.not_reached, (Names{"web-2"}));
}

// --- down --ports ------------------------------------------------------------

class ScaleDownTest : public InstancesTest {
 protected:
  DownResult down_ports(const std::string& ports, bool purge = false) {
    DownRequest request;
    request.state_root = which_.state_root;
    request.data_root = which_.data_root;
    request.ports = ports;
    request.purge = purge;
    return down(request, supervisor_, sink_);
  }
};

TEST_F(ScaleDownTest, OnlyTheInstancesOnThePortsAreRemovedAndTheirTreesKept) {
  record_fleet({running, running, running});
  auto result = down_ports("2-3");
  EXPECT_EQ(result.removed, (Names{"web-2", "web-3"}));
  EXPECT_EQ(supervisor_.calls, (Names{"remove"}));
  EXPECT_EQ(supervisor_.removed, (std::vector<Names>{{"web-2", "web-3"}}));
  EXPECT_EQ(supervisor_.removed_trees, (std::vector<supervisor::TreePurge>{supervisor::TreePurge::none}));
  EXPECT_TRUE(supervisor_.shut_down.empty());
}

TEST_F(ScaleDownTest, WithPurgeTheirTreesAndLogsGoToo) {
  record_fleet({running, running});
  down_ports("1", true);
  EXPECT_EQ(supervisor_.removed_trees, (std::vector<supervisor::TreePurge>{supervisor::TreePurge::all}));
}

TEST_F(ScaleDownTest, EveryPortOfTheFleetTakesTheWholeFleetDown) {
  record_fleet({running, stopped});
  auto result = down_ports("1-2");
  EXPECT_EQ(supervisor_.calls, (Names{"shutdown"}));
  EXPECT_EQ(result.fleets, (Names{"web"}));
  EXPECT_TRUE(sink_.said("--ports names every instance of the fleet"));
}

TEST_F(ScaleDownTest, AnUnknownPortOrADeadSupervisorRemovesNothing) {
  record_fleet({running, running});
  EXPECT_EQ(error_of([&] { down_ports("5"); }), "input: fleet 'web' has no instance on port 5 (its ports: 1-2)");
  record_fleet({running, running}, false);
  auto error = error_of([&] { down_ports("1"); });
  EXPECT_EQ(error.rfind("error: the supervisor of fleet 'web' is not running", 0), 0u) << error;
  EXPECT_TRUE(supervisor_.calls.empty());
}

// --- down --purge of a fleet already down --------------------------------------

TEST_F(ScaleDownTest, AFleetAlreadyDownWithKeptTreesIsPurgedByName) {
  supervisor_.kept = {"web"};
  DownRequest request;
  request.state_root = which_.state_root;
  request.data_root = which_.data_root;
  request.fleet = "web";
  EXPECT_EQ(error_of([&] { down(request, supervisor_, sink_); }),
            "input: fleet 'web' is already down; `haco-fleet down --name web --purge` removes the rootfs trees and "
            "logs it kept");
  request.purge = true;
  EXPECT_EQ(down(request, supervisor_, sink_).fleets, (Names{"web"}));
  EXPECT_EQ(supervisor_.shut_down, (Names{"web"}));
}

TEST_F(ScaleDownTest, AllWithPurgeTakesTheKeptFleetsToo) {
  record_fleet({running});
  supervisor_.kept = {"old", "web"};
  DownRequest request;
  request.state_root = which_.state_root;
  request.data_root = which_.data_root;
  request.all = true;
  EXPECT_EQ(down(request, supervisor_, sink_).fleets, (Names{"web"}));
  request.purge = true;
  EXPECT_EQ(down(request, supervisor_, sink_).fleets, (Names{"web", "old"}));
}

}  // namespace
}  // namespace haco::ops
