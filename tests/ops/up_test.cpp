// ops::up over fakes: which instances start, what is undone and when, what
// the bootstrap sees; the fleet's lock, claims and state are real files in a
// temporary directory.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "haco/error.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using Names = std::vector<std::string>;
using testing::FakeProbes;
using testing::FakeRootfs;
using testing::FakeSupervisor;
using testing::RecordingSink;

class UpTest : public ::testing::Test {
 protected:
  UpTest() {
    request_.state_root = (dir_.path() / "state").string();
    request_.data_root = (dir_.path() / "data").string();
    request_.fleet = "f";
    request_.definition = "/defs/f.haco";
    request_.timeout = std::chrono::seconds(5);
    request_.interrupted = &interrupted_;
    request_.expand_started = request_.expand_ended = Clock::now();
    request_.open_files = {1024, 65536, 65536};
  }

  // t-1, t-2, ... on ports 20001...; each rootfs already there.
  InstanceSpec instance(std::size_t n) {
    InstanceSpec i;
    i.index = n - 1;
    i.port = static_cast<std::uint16_t>(20000 + n);
    i.container.name = "t-" + std::to_string(n);
    i.container.command = {"/bin/true"};
    i.container.rootfs = (dir_.path() / "rootfs" / i.container.name).string();
    i.container.namespaces = {Namespace::user, Namespace::pid};
    i.container.uid_map = {{0, 2000000u + 1000u * static_cast<std::uint32_t>(n), 100}};
    i.container.gid_map = i.container.uid_map;
    rootfs_.existing.insert(i.container.rootfs);
    return i;
  }

  void want(std::size_t count) {
    for (std::size_t n = 1; n <= count; ++n) request_.instances.push_back(instance(n));
  }

  state::FleetPaths paths() const { return {request_.state_root, request_.data_root, request_.fleet}; }

  // A fleet whose supervisor (this process, when `alive`) records the first
  // `running` wanted instances as running.
  void record_fleet(std::size_t running, bool alive = true) {
    state::FleetState fleet;
    fleet.fleet = request_.fleet;
    fleet.definition = request_.definition;
    fleet.supervisor = alive ? *state::identify(::getpid()) : state::ProcessIdentity{};
    for (std::size_t n = 0; n < running; ++n) {
      state::InstanceRecord r;
      r.spec = request_.instances.at(n);
      r.spec_hash = state::spec_hash(r.spec);
      r.state = state::InstanceState::running;
      r.process = alive ? *state::identify(::getpid()) : state::ProcessIdentity{};
      fleet.instances.push_back(r);
    }
    paths().make_directories();
    state::save_state(paths(), fleet);
    supervisor_.listening = alive;
  }

  UpResult run() { return up(request_, {supervisor_, rootfs_, probes_.factory(), sink_}); }

  haco::testing::TempDir dir_;
  std::atomic<bool> interrupted_{false};
  UpRequest request_;
  FakeSupervisor supervisor_;
  FakeRootfs rootfs_;
  FakeProbes probes_;
  RecordingSink sink_;
};

TEST_F(UpTest, ANewFleetGetsItsSupervisorThenEveryInstanceStartsAndIsProbed) {
  want(3);
  request_.parallel = 8;
  auto result = run();
  EXPECT_EQ(result.outcome, UpResult::Outcome::finished);
  EXPECT_EQ(result.started, 3u);
  EXPECT_TRUE(result.failures.empty());
  EXPECT_EQ(supervisor_.calls, (Names{"launch", "start"}));
  ASSERT_EQ(supervisor_.launched.size(), 1u);
  EXPECT_EQ(supervisor_.launched[0].spawners, 3u) << "no more spawners than instances to start";
  EXPECT_FALSE(supervisor_.launched[0].adopt);
  EXPECT_EQ(supervisor_.started, (Names{"t-1", "t-2", "t-3"}));
  EXPECT_EQ(probes_.watched, (Names{"t-1", "t-2", "t-3"}));
  EXPECT_EQ(sink_.total, 3u);
  EXPECT_EQ(result.status_line(), "3/3 ready");
  EXPECT_TRUE(std::filesystem::exists(paths().claims_file()));
}

// The phases `up` measured go to the supervisor, for `metrics`: each
// started instance's, those of instances already running not.
TEST_F(UpTest, TheMeasuredPhasesOfTheStartedInstancesGoToTheSupervisor) {
  want(3);
  record_fleet(1);
  run();
  ASSERT_EQ(supervisor_.measured_starts.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    const auto& start = supervisor_.measured_starts[k];
    EXPECT_EQ(start.instance, "t-" + std::to_string(k + 2));
    // No rootfs phase: each rootfs is there already.
    EXPECT_EQ(start.phases.size(), 3u) << "expand, clone_to_exec, exec_to_ready";
    EXPECT_TRUE(start.phases.count("expand"));
    EXPECT_NEAR(start.phases.at("clone_to_exec"), 0.001, 1e-6);
    EXPECT_GE(start.phases.at("exec_to_ready"), 0);
  }
}

TEST_F(UpTest, OverARunningFleetOnlyTheMissingInstancesStart) {
  want(3);
  record_fleet(2);
  auto result = run();
  EXPECT_EQ(result.outcome, UpResult::Outcome::finished);
  EXPECT_EQ(supervisor_.started, (Names{"t-3"}));
  EXPECT_EQ(supervisor_.calls, (Names{"clear_leftovers", "start"})) << "its supervisor is not started again";
  EXPECT_TRUE(sink_.said("fleet f: 2 instances already running, starting the 1 missing"));
  EXPECT_EQ(result.started, 1u);
}

TEST_F(UpTest, AFleetWhoseInstancesAllRunStartsNothing) {
  want(2);
  record_fleet(2);
  auto result = run();
  EXPECT_EQ(result.outcome, UpResult::Outcome::already_running);
  EXPECT_TRUE(supervisor_.calls.empty());
  EXPECT_TRUE(sink_.said("fleet f: all 2 instances already running"));
}

TEST_F(UpTest, AChangedDefinitionOfARunningInstanceIsRefusedBeforeAnythingStarts) {
  want(2);
  record_fleet(2);
  request_.instances[1].container.command = {"/bin/false"};
  try {
    run();
    FAIL() << "a changed definition was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the definition of t-2 changed since it was started"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(UpTest, AFleetNameHeldUnderAnotherStateRootIsRefusedBeforeAnythingIsMade) {
  want(2);
  supervisor_.other_roots = {{"f", "/tmp/other-root"}};
  try {
    run();
    FAIL() << "a fleet of another state root was brought up again";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "fleet 'f' belongs to state root /tmp/other-root (use --root /tmp/other-root)");
  }
  EXPECT_TRUE(supervisor_.calls.empty());
  EXPECT_FALSE(std::filesystem::exists(paths().dir())) << "state was made";
}

TEST_F(UpTest, WithAtomicAFailedStartRemovesEverythingThisUpStarted) {
  want(3);
  request_.atomic = true;
  supervisor_.fail_to_start = {"t-2"};
  auto result = run();
  EXPECT_TRUE(result.atomic_rollback);
  EXPECT_EQ(result.failures.at("t-2"), "exec /no/such/init: No such file or directory");
  ASSERT_EQ(supervisor_.removed.size(), 1u);
  EXPECT_EQ(supervisor_.removed[0], (Names{"t-1", "t-2", "t-3"}));
  // The fleet had nothing before: its supervisor goes too.
  EXPECT_EQ(supervisor_.calls, (Names{"launch", "start", "remove", "shutdown"}));
  EXPECT_TRUE(sink_.said("1 of 3 instances failed; --atomic: removing the others this `up` started"));
}

TEST_F(UpTest, WithAtomicOverARunningFleetOnlyThisUpsInstancesAreRemoved) {
  want(3);
  record_fleet(1);
  request_.atomic = true;
  supervisor_.fail_to_start = {"t-3"};
  auto result = run();
  EXPECT_TRUE(result.atomic_rollback);
  ASSERT_EQ(supervisor_.removed.size(), 1u);
  EXPECT_EQ(supervisor_.removed[0], (Names{"t-2", "t-3"}));
  EXPECT_TRUE(supervisor_.shut_down.empty()) << "the fleet's supervisor and t-1 stay";
}

TEST_F(UpTest, WithoutAtomicAFailedStartLeavesTheOthersRunning) {
  want(3);
  supervisor_.fail_to_start = {"t-2"};
  auto result = run();
  EXPECT_FALSE(result.atomic_rollback);
  EXPECT_EQ(result.failures.size(), 1u);
  EXPECT_TRUE(supervisor_.removed.empty());
  EXPECT_EQ(result.status_line(), "2/3 ready, 1 failed");
  EXPECT_EQ(probes_.watched, (Names{"t-1", "t-3"}));
}

TEST_F(UpTest, AnInterruptDuringTheReadinessWaitRemovesWhatThisUpStarted) {
  want(2);
  probes_.interrupt_on_watch = &interrupted_;
  auto result = run();
  EXPECT_EQ(result.outcome, UpResult::Outcome::interrupted);
  ASSERT_EQ(supervisor_.removed.size(), 1u);
  EXPECT_EQ(supervisor_.removed[0], (Names{"t-1", "t-2"}));
  EXPECT_EQ(supervisor_.calls, (Names{"launch", "start", "remove", "shutdown"}));
  EXPECT_TRUE(sink_.said("interrupted: stopping and removing what this `up` started"));
  EXPECT_TRUE(sink_.finished);
}

TEST_F(UpTest, AnErrorBeforeTheLaunchesAnswerUndoesAndIsRethrown) {
  want(2);
  supervisor_.throw_on_start = true;
  EXPECT_THROW(run(), Error);
  EXPECT_EQ(supervisor_.calls, (Names{"launch", "start", "remove", "shutdown"}));
  ASSERT_EQ(supervisor_.removed.size(), 1u);
  EXPECT_EQ(supervisor_.removed[0], (Names{"t-1", "t-2"}));
}

TEST_F(UpTest, AnInstanceThatExitsBeforeItIsReadyFailsWithItsExitNotAtTheTimeout) {
  want(2);
  probes_.ready = false;
  supervisor_.exit_after_start = {"t-1"};
  auto result = run();
  ASSERT_EQ(result.failures.count("t-1"), 1u);
  EXPECT_EQ(result.failures.at("t-1").rfind("exited (exit 3) before it was ready", 0), 0u)
      << result.failures.at("t-1");
  EXPECT_NE(result.failures.at("t-2").find("not ready"), std::string::npos);
}

TEST_F(UpTest, ARequestRefusedAsAWholeFailsEveryInstance) {
  want(2);
  supervisor_.refuse = "2 instances need 4 descriptors more than the supervisor's limit";
  auto result = run();
  ASSERT_EQ(result.failures.size(), 2u);
  EXPECT_EQ(result.failures.at("t-1"),
            "the supervisor refused to start it: 2 instances need 4 descriptors more than the supervisor's limit");
  EXPECT_TRUE(probes_.watched.empty());
}

TEST_F(UpTest, AFleetWhoseSupervisorIsGoneIsTakenOverByANewOne) {
  want(2);
  record_fleet(2, false);
  auto result = run();
  EXPECT_EQ(result.outcome, UpResult::Outcome::finished);
  EXPECT_EQ(supervisor_.calls, (Names{"clear_for_takeover", "launch", "start"}));
  ASSERT_EQ(supervisor_.launched.size(), 1u);
  EXPECT_TRUE(supervisor_.launched[0].adopt);
  EXPECT_TRUE(sink_.said("fleet f: its supervisor is gone; a new one takes over (0 of 2 recorded instances still run)"));
  EXPECT_EQ(supervisor_.started, (Names{"t-1", "t-2"})) << "the dead ones start again";
}

TEST_F(UpTest, WithNoWaitNothingIsProbed) {
  want(2);
  request_.no_wait = true;
  auto result = run();
  EXPECT_TRUE(result.failures.empty());
  EXPECT_TRUE(probes_.watched.empty());
  EXPECT_EQ(result.started, 2u);
}

TEST_F(UpTest, AnInstanceAsTheHostsRootIsRefusedUnlessAllowedThenWarned) {
  want(2);
  request_.instances[1].container.namespaces = {Namespace::pid};
  try {
    run();
    FAIL() << "an instance without a user namespace was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'t-2' has no user namespace"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(supervisor_.calls.empty());
  EXPECT_FALSE(std::filesystem::exists(paths().dir())) << "nothing was made";

  request_.allow_host_root = true;
  run();
  EXPECT_TRUE(sink_.said("haco-fleet: warning: 't-2' has no user namespace: its root is the host's root"));
}

TEST_F(UpTest, AMissingRootfsWithoutBootstrapIsBadInput) {
  want(2);
  rootfs_.existing.erase(request_.instances[0].container.rootfs);
  try {
    run();
    FAIL() << "an instance without a rootfs was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("t-1: rootfs " + request_.instances[0].container.rootfs +
                                         " does not exist and the definition has no bootstrap"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(UpTest, AFleetBeyondTheOpenFileLimitIsBadInputBeforeTheLock) {
  want(2);
  request_.open_files = {16, 16, 16};
  try {
    run();
    FAIL() << "a fleet beyond the open-file limit was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the hard limit of open files is 16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(paths().dir()));
}

TEST_F(UpTest, AFailedBootstrapFailsOnlyItsInstanceWhichIsNotStarted) {
  want(3);
  for (auto& i : request_.instances) {
    rootfs_.existing.erase(i.container.rootfs);
    i.container.bootstrap.kind = BootstrapKind::shell;
    i.container.bootstrap.code = "mkdir -p $ROOT";
  }
  rootfs_.fail_bootstrap = {"t-2"};
  auto result = run();
  EXPECT_EQ(rootfs_.bootstrapped, (Names{"t-1", "t-2", "t-3"}));
  EXPECT_EQ(result.failures.at("t-2"), "bootstrap: the bootstrap script failed (exit 1)");
  EXPECT_EQ(supervisor_.started, (Names{"t-1", "t-3"}));
}

// The bootstrap block is the definition evaluated again: it gets the ENV the
// expansion gave the port, --port-env names included. A shell script gets
// the definition's environ as well.
TEST_F(UpTest, TheBootstrapSeesThePortEnvironmentOfTheExpansion) {
  want(2);
  request_.expansion.port_env_names = {"MY_PORT"};
  request_.expansion.base_environment = {{"HOME", "/root"}, {"MARK", "from-caller"}};
  request_.bootstrap_as_written = true;
  for (auto& i : request_.instances) {
    rootfs_.existing.erase(i.container.rootfs);
    i.container.environment = {"MARK=from-definition"};
  }
  request_.instances[0].container.bootstrap.kind = BootstrapKind::block;
  request_.instances[1].container.bootstrap.kind = BootstrapKind::shell;
  request_.instances[1].container.bootstrap.code = "true";
  run();
  ASSERT_EQ(rootfs_.bootstrap_envs.size(), 2u);
  const auto& block = rootfs_.bootstrap_envs[0];
  EXPECT_EQ(block, fleet::port_environment(request_.expansion, 20001));
  EXPECT_EQ(block.at("MY_PORT"), "20001");
  EXPECT_EQ(block.at("MARK"), "from-caller") << "the block evaluates as the expansion did";
  const auto& shell = rootfs_.bootstrap_envs[1];
  EXPECT_EQ(shell.at("MY_PORT"), "20002");
  EXPECT_EQ(shell.at("PORT"), "20002");
  EXPECT_EQ(shell.at("MARK"), "from-definition");
  EXPECT_TRUE(sink_.said("bootstrap: the block runs as written, one command at a time, for 1 instance "
                         "(--bootstrap as-written)"));
}

}  // namespace
}  // namespace haco::ops
