// ops::down over a fake supervisor client: which fleets go down, with what,
// and how one fleet's failure is reported; fleet state and locks are real
// files in a temporary directory.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "haco/error.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using Names = std::vector<std::string>;
using testing::FakeSupervisor;
using testing::RecordingSink;

class DownTest : public ::testing::Test {
 protected:
  DownTest() {
    request_.state_root = (dir_.path() / "state").string();
    request_.data_root = (dir_.path() / "data").string();
  }

  state::FleetPaths paths(const std::string& fleet) const {
    return {request_.state_root, request_.data_root, fleet};
  }

  void record_fleet(const std::string& fleet) {
    state::FleetState state;
    state.fleet = fleet;
    paths(fleet).make_directories();
    state::save_state(paths(fleet), state);
  }

  DownResult run() { return down(request_, supervisor_, sink_); }

  std::string error_of_run() {
    try {
      run();
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  haco::testing::TempDir dir_;
  DownRequest request_;
  FakeSupervisor supervisor_;
  RecordingSink sink_;
};

TEST_F(DownTest, WithoutFleetsNothingIsAsked) {
  auto result = run();
  EXPECT_TRUE(result.fleets.empty());
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(DownTest, TheOnlyFleetGoesDownWithTheTimeoutAndPurgeAsked) {
  record_fleet("a");
  request_.timeout = std::chrono::milliseconds(2500);
  request_.purge = true;
  auto result = run();
  EXPECT_EQ(result.fleets, (Names{"a"}));
  EXPECT_EQ(result.failed, 0u);
  EXPECT_EQ(supervisor_.shut_down, (Names{"a"}));
  ASSERT_EQ(supervisor_.teardowns.size(), 1u);
  EXPECT_EQ(supervisor_.teardowns[0].timeout, std::chrono::milliseconds(2500));
  EXPECT_TRUE(supervisor_.teardowns[0].purge);
  EXPECT_EQ(sink_.steps, (Names{"down a"}));
}

TEST_F(DownTest, SeveralFleetsNeedANameOrAll) {
  record_fleet("a");
  record_fleet("b");
  EXPECT_EQ(error_of_run(), "2 fleets are running (a, b): say which with --name FLEET, or --all");
  EXPECT_TRUE(supervisor_.calls.empty());

  request_.fleet = "b";
  EXPECT_EQ(run().fleets, (Names{"b"}));
  EXPECT_EQ(supervisor_.shut_down, (Names{"b"}));
}

TEST_F(DownTest, AllTakesDownTheFleetsWhoseStateIsLostToo) {
  record_fleet("a");
  record_fleet("b");
  supervisor_.traces = {"c"};
  request_.all = true;
  EXPECT_EQ(run().fleets, (Names{"a", "b", "c"}));
  EXPECT_EQ(supervisor_.shut_down, (Names{"a", "b", "c"}));
}

TEST_F(DownTest, ANameIsTakenDownWhenItsFleetLeftTracesWithoutState) {
  request_.fleet = "gone";
  EXPECT_EQ(error_of_run(), "no fleet named 'gone' under " + request_.state_root);
  supervisor_.traces = {"gone"};
  EXPECT_EQ(run().fleets, (Names{"gone"}));
}

// A fleet of that name under another state root holds the cgroups: down
// says whose it is and asks the supervisor client for nothing, not even the
// fleet's lock.
TEST_F(DownTest, ANameWhoseCgroupNamesAnotherStateRootIsRefusedUntouched) {
  supervisor_.traces = {"web"};
  supervisor_.other_roots = {{"web", "/tmp/other-root"}};
  request_.fleet = "web";
  EXPECT_EQ(error_of_run(), "fleet 'web' belongs to state root /tmp/other-root (use --root /tmp/other-root)");
  EXPECT_TRUE(supervisor_.calls.empty());
  EXPECT_FALSE(std::filesystem::exists(paths("web").lock_file()));

  record_fleet("web");
  EXPECT_EQ(error_of_run(), "fleet 'web' belongs to state root /tmp/other-root (use --root /tmp/other-root)");
  EXPECT_TRUE(supervisor_.calls.empty());
}

// --all: the claims this root left under the name of another root's fleet
// cannot go while that fleet holds the cgroups; reported, the others go.
TEST_F(DownTest, AllReportsAFleetWhoseCgroupNamesAnotherStateRootAndTakesDownTheOthers) {
  record_fleet("a");
  supervisor_.traces = {"web"};
  supervisor_.other_roots = {{"web", "/tmp/other-root"}};
  request_.all = true;
  auto result = run();
  EXPECT_EQ(result.failed, 1u);
  EXPECT_EQ(supervisor_.shut_down, (Names{"a"}));
  EXPECT_EQ(sink_.failures,
            (Names{"web: fleet 'web' belongs to state root /tmp/other-root (use --root /tmp/other-root)"}));
  EXPECT_FALSE(std::filesystem::exists(paths("web").lock_file()));
}

TEST_F(DownTest, NameAndAllExcludeEachOther) {
  request_.fleet = "a";
  request_.all = true;
  EXPECT_EQ(error_of_run(), "down: --name and --all exclude each other");
}

TEST_F(DownTest, OneFleetThatFailsDoesNotKeepTheOthersUp) {
  record_fleet("a");
  record_fleet("b");
  request_.all = true;
  supervisor_.fail_shutdown = {"a"};
  auto result = run();
  EXPECT_EQ(result.failed, 1u);
  EXPECT_EQ(supervisor_.shut_down, (Names{"a", "b"}));
  EXPECT_EQ(sink_.failures, (Names{"a: down of fleet 'a' is incomplete"}));
  EXPECT_EQ(sink_.steps, (Names{"down b"}));
}

// An `up` holding the fleet's lock is interrupted (SIGINT, as Ctrl-C), and
// the fleet goes down once it let go.
TEST_F(DownTest, AnUpHoldingTheLockIsInterruptedFirst) {
  record_fleet("a");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t up = ::fork();
  ASSERT_GE(up, 0);
  if (up == 0) {
    auto lock = state::FleetLock::acquire(paths("a"), true, "up");
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    ::pause();  // SIGINT's default action ends it, and its lock
    ::_exit(3);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  auto result = run();
  int status = 0;
  ASSERT_EQ(::waitpid(up, &status, 0), up);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
  EXPECT_EQ(result.failed, 0u);
  EXPECT_EQ(supervisor_.shut_down, (Names{"a"}));
  EXPECT_TRUE(sink_.said("a: `up` is in progress (pid " + std::to_string(up) + "): interrupting it"));
}

}  // namespace
}  // namespace haco::ops
