// `up` killed with SIGKILL in the middle of preparing a rootfs (at the fault
// points of include/haco/fault_point.hpp): the next `up` finds the partial
// tree or cache entry, makes it again instead of reusing it, and `down
// --purge` leaves nothing.
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "fleet_fixture.hpp"
#include "haco/cgroup.hpp"
#include "haco/layout.hpp"

namespace haco::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class CrashTest : public FleetTest {
 protected:
  // Runs `up` with HACO_FAULT_POINT=point, waits until it stopped itself
  // there and kills it with SIGKILL. Its output so far is in output_file().
  void kill_up_at(const std::string& point, unsigned count, const std::string& extra = "") {
    const std::string command = "exec env HACO_FAULT_POINT=" + point + " " +
                                haco_command("up --name " + fleet_ + " --ports " + ports(count) + " --timeout 20 " +
                                             extra + " " + definition()) +
                                " >" + output_file() + " 2>&1";
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (process_state(pid) != 'T' && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) FAIL() << "up ended before " << point << ":\n" << read_text(output_file());
      std::this_thread::sleep_for(20ms);
    }
    const bool stopped = process_state(pid) == 'T';
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(stopped) << "up never reached " << point << ":\n" << read_text(output_file());
    EXPECT_NE(read_text(output_file()).find("fault point " + point), std::string::npos);
  }
  std::string output_file() const { return temp_->path().string() + "/killed-up.out"; }
  std::string rootfs(unsigned index = 0) const { return rootfs_base_ + "/t-" + std::to_string(port_base_ + index); }
  std::string marker(unsigned index = 0) const {
    return layout::DataRoot(data_).rootfs_incomplete_marker("t-" + std::to_string(port_base_ + index));
  }
  // After the second up: every instance runs; after down --purge nothing of
  // the fleet is left, in the data root either.
  void expect_second_up_then_nothing_left(unsigned count, const std::string& extra, const std::string& said) {
    auto again = up(count, extra);
    ASSERT_EQ(again.status, 0) << again.output;
    EXPECT_NE(again.output.find(said), std::string::npos) << again.output;
    for (unsigned i = 0; i < count; ++i) {
      EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_ + i))) << i;
      EXPECT_FALSE(fs::exists(marker(i))) << marker(i);
    }
    auto fleet = fleet_state();
    ASSERT_TRUE(fleet.has_value());
    auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
    ASSERT_EQ(down.status, 0) << down.output;
    expect_nothing_left(*fleet);
    for (unsigned i = 0; i < count; ++i) EXPECT_FALSE(fs::exists(rootfs(i))) << rootfs(i);
    std::error_code ec;
    EXPECT_TRUE(!fs::exists(data_ + "/instances") || fs::is_empty(data_ + "/instances", ec))
        << "left in the data root's instances/";
  }
};

TEST_F(CrashTest, ATreeLeftByAnUpKilledDuringExtractionIsMadeAgain) {
  kill_up_at("rootfs-extracted", 2, "--rootfs extract");
  // The trees are there, but still marked: as if a crash had cut them short.
  ASSERT_TRUE(fs::exists(marker(0)));
  ASSERT_TRUE(fs::exists(rootfs(0) + "/bin/busybox"));
  fs::remove(rootfs(0) + "/bin/busybox");
  expect_second_up_then_nothing_left(2, "--rootfs extract", "rootfs left incomplete by an interrupted run: made again");
}

TEST_F(CrashTest, ACacheEntryWithoutItsCompletionMarkIsMadeAgain) {
  kill_up_at("cache-renamed", 2);
  // The tree is in place, its .ids marker is not.
  std::vector<fs::path> trees;
  for (const auto& e : fs::directory_iterator(data_ + "/images"))
    if (e.is_directory() && e.path().filename().string()[0] != '.') trees.push_back(e.path());
  ASSERT_EQ(trees.size(), 1u);
  ASSERT_FALSE(fs::exists(trees[0].string() + ".ids"));
  fs::remove(trees[0] / "bin" / "busybox");
  expect_second_up_then_nothing_left(2, "", "extracted into the cache");
  EXPECT_TRUE(fs::exists(trees[0].string() + ".ids"));
}

TEST_F(CrashTest, ACacheFillCutShortLeavesNoHalfEntry) {
  kill_up_at("cache-filled", 1);
  for (const auto& e : fs::directory_iterator(data_ + "/images"))
    EXPECT_TRUE(e.path().filename().string().rfind(".tmp-", 0) == 0 || !e.is_directory()) << e.path();
  expect_second_up_then_nothing_left(1, "", "extracted into the cache");
  for (const auto& e : fs::directory_iterator(data_ + "/images"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << "a stale fill is left: " << e.path();
}

TEST_F(CrashTest, ATreeLeftByAnUpKilledAfterItsBootstrapBlockIsMadeAgain) {
  ::setenv("HACO_TEST_BOOTSTRAP_BLOCK", "1", 1);
  kill_up_at("bootstrap-ran", 1, "--bootstrap as-written");
  ASSERT_TRUE(fs::exists(marker(0)));
  fs::remove(rootfs(0) + "/bin/busybox");
  expect_second_up_then_nothing_left(1, "--bootstrap as-written",
                                     "rootfs left incomplete by an interrupted run: its bootstrap runs again");
}

// down twice: the second finds no fleet, says so (exit 2) and removes
// nothing more; nothing is left either way.
TEST_F(CrashTest, DownTwiceSaysTheFleetIsGoneAndLeavesNothing) {
  ASSERT_EQ(up(2).status, 0);
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  auto first = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(first.status, 0) << first.output;
  auto second = haco("down --name " + fleet_ + " --timeout 1 --purge");
  EXPECT_EQ(second.status, 2) << second.output;
  EXPECT_NE(second.output.find("no fleet named '" + fleet_ + "'"), std::string::npos) << second.output;
  expect_nothing_left(*fleet);
  EXPECT_FALSE(fs::exists(rootfs(0)));
}

// A data root that fills up while the image cache is filled: a clear error
// naming the file and the free space, no half cache entry, no rootfs.
TEST_F(CrashTest, ADataRootThatFillsUpFailsClearlyAndLeavesNoHalfEntry) {
  fs::create_directories(data_);
  ASSERT_EQ(::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=1m,mode=0700"), 0) << std::strerror(errno);
  auto result = up(2);
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("No space left on device"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("free on that filesystem"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(data_ + "/images/.tmp-"), std::string::npos) << result.output;
  for (const auto& e : fs::directory_iterator(data_ + "/images"))
    EXPECT_TRUE(e.path().extension() == ".lock") << "left in the cache: " << e.path();
  EXPECT_FALSE(fs::exists(rootfs(0)));
  EXPECT_FALSE(fs::exists(rootfs(1)));
  ASSERT_EQ(::umount2(data_.c_str(), MNT_DETACH), 0);
}

// Waits until `predicate` holds for the fleet's state (10 s at most).
template <typename Predicate>
std::optional<state::FleetState> wait_for_state(Predicate predicate,
                                                const std::function<std::optional<state::FleetState>()>& read) {
  std::optional<state::FleetState> seen;
  for (int i = 0; i < 500; ++i) {
    seen = read();
    if (seen && predicate(*seen)) return seen;
    std::this_thread::sleep_for(20ms);
  }
  return seen;
}

// The supervisor killed with SIGKILL, one instance's init killed too while
// none watched it: the next `up` gives the fleet a new supervisor that adopts
// the running instances (same pid and start time: not started twice),
// starts the one that ended again, keeps the recorded restart policy (an
// adopted instance killed later is restarted), and `down` leaves nothing.
TEST_F(CrashTest, ANewSupervisorAdoptsTheInstancesThatStillRun) {
  auto first = up(3, "--restart always");
  ASSERT_EQ(first.status, 0) << first.output;
  auto before = fleet_state();
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(::kill(before->supervisor.pid, SIGKILL), 0);
  ASSERT_EQ(::kill(before->instances[1].process.pid, SIGKILL), 0);
  for (int i = 0; i < 250 && (state::is_alive(before->supervisor) || state::is_alive(before->instances[1].process));
       ++i)
    std::this_thread::sleep_for(20ms);

  auto again = up(3);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("a new one takes over (2 of 3 recorded instances still run)"), std::string::npos)
      << again.output;
  auto after = fleet_state();
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(after->supervisor, before->supervisor);
  EXPECT_TRUE(state::is_alive(after->supervisor));
  EXPECT_EQ(after->restart_policy, "always");
  ASSERT_EQ(after->instances.size(), 3u);
  EXPECT_EQ(after->instances[0].process, before->instances[0].process) << "instance 0 was not adopted";
  EXPECT_EQ(after->instances[2].process, before->instances[2].process) << "instance 2 was not adopted";
  EXPECT_NE(after->instances[1].process, before->instances[1].process);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(after->instances[i].state, state::InstanceState::running) << i;
    EXPECT_TRUE(state::is_alive(after->instances[i].process)) << i;
    EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_ + i))) << i;
  }
  auto table = haco("ps --name " + fleet_);
  EXPECT_EQ(table.output.find("unsupervised"), std::string::npos) << table.output;

  // The adopted instance 0 dies: the new supervisor sees it (its pidfd) and
  // restarts it under the recorded policy.
  ASSERT_EQ(::kill(after->instances[0].process.pid, SIGKILL), 0);
  auto restarted = wait_for_state(
      [&](const state::FleetState& s) {
        return s.instances[0].restarts == after->instances[0].restarts + 1 &&
               s.instances[0].state == state::InstanceState::running;
      },
      [this] { return fleet_state(); });
  ASSERT_TRUE(restarted.has_value());
  EXPECT_EQ(restarted->instances[0].restarts, after->instances[0].restarts + 1) << "not restarted";
  ASSERT_TRUE(restarted->instances[0].last_exit.has_value());
  EXPECT_EQ(state::describe_exit(*restarted->instances[0].last_exit), "ended, exit status unknown");

  auto final_state = fleet_state();
  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*before);
  expect_nothing_left(*final_state);
  for (unsigned i = 0; i < 3; ++i) EXPECT_FALSE(fs::exists(rootfs(i))) << rootfs(i);
}

// SIGKILL at a fault point of the whole path, in whichever process reaches it
// first (`up`, a spawner between clone and exec, the supervisor with an
// instance started but not recorded, `down`): afterwards `up` brings every
// instance up exactly once (each instance cgroup holds its recorded init and
// nothing else) and `down --purge` leaves nothing.
struct FaultCase {
  const char* point;
  const char* up_options;  // the point is on this path of `up`
  bool up_again;           // after the kill: `up` then `down`, or `down` at once
};

class FaultTest : public CrashTest, public ::testing::WithParamInterface<FaultCase> {
 protected:
  std::string fired_file() const { return temp_->path().string() + "/fault-fired"; }
  // Runs `command` in the background with the fault point armed; returns its
  // pid once some process stopped at the point, after killing that process.
  pid_t run_and_kill_at(const std::string& point, const std::string& command) {
    const std::string line = "exec env HACO_FAULT_POINT=" + point + " HACO_FAULT_ONCE=" + fired_file() + " " +
                             command + " >" + output_file() + " 2>&1";
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_t stopped = -1;
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = fs::exists(fired_file()) ? read_text(fired_file()) : "";
      if (!text.empty() && process_state(std::stoi(text)) == 'T') {
        stopped = std::stoi(text);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_GT(stopped, 0) << "nothing stopped at " << point << ":\n" << read_text(output_file());
    if (stopped > 0) ::kill(stopped, SIGKILL);
    return pid;
  }
  // Waits for the command run_and_kill_at started (killed after 120 s).
  void wait_for(pid_t pid) {
    int status = 0;
    for (int i = 0; i < 6000; ++i) {
      if (::waitpid(pid, &status, WNOHANG) == pid) return;
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << "the command did not end after the kill:\n" << read_text(output_file());
  }
  // Each instance runs once: its cgroups hold its recorded init and what
  // that init forked (httpd forks per connection), no second container.
  void expect_each_instance_once(const state::FleetState& fleet) {
    auto descends_from = [](pid_t pid, pid_t init) {
      for (int depth = 0; depth < 32 && pid > 1; ++depth) {
        if (pid == init) return true;
        auto parent = parent_of(pid);
        if (!parent) return true;  // ended meanwhile
        pid = *parent;
      }
      return false;
    };
    for (const auto& r : fleet.instances) {
      EXPECT_TRUE(state::is_alive(r.process)) << r.name();
      for (const auto& dir : r.cgroup_paths) {
        if (!fs::exists(dir + "/cgroup.procs")) continue;
        bool init_seen = false;
        for (pid_t p : cgroups::read_procs(dir)) {
          init_seen = init_seen || p == r.process.pid;
          EXPECT_TRUE(descends_from(p, r.process.pid))
              << r.name() << ": pid " << p << " in " << dir << " is not its init " << r.process.pid << " or a child";
        }
        EXPECT_TRUE(init_seen) << r.name() << ": its init is not in " << dir;
      }
    }
  }
};

TEST_P(FaultTest, KilledThereThenEachInstanceRunsOnceAndDownLeavesNothing) {
  const std::string point = GetParam().point;
  const std::string options = GetParam().up_options;
  const std::string up_command =
      haco_command("up --name " + fleet_ + " --ports " + ports(3) + " --timeout 20 " + options + " " + definition());
  std::optional<state::FleetState> before;
  if (point == "down-stopped") {
    ASSERT_EQ(up(3, options).status, 0);
    before = fleet_state();
    wait_for(run_and_kill_at(point, haco_command("down --name " + fleet_ + " --timeout 1")));
  } else {
    wait_for(run_and_kill_at(point, up_command));
    before = fleet_state();
  }
  if (GetParam().up_again) {
    auto again = up(3, options);
    ASSERT_EQ(again.status, 0) << again.output << "\nafter the kill:\n" << read_text(output_file());
    auto fleet = fleet_state();
    ASSERT_TRUE(fleet.has_value());
    ASSERT_EQ(fleet->instances.size(), 3u);
    expect_each_instance_once(*fleet);
    for (unsigned i = 0; i < 3; ++i) EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_ + i))) << i;
  }
  auto last = fleet_state();
  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  if (before) expect_nothing_left(*before);
  if (last) expect_nothing_left(*last);
  for (unsigned i = 0; i < 3; ++i) EXPECT_FALSE(fs::exists(rootfs(i))) << rootfs(i);
}

INSTANTIATE_TEST_SUITE_P(EveryStep, FaultTest,
                         ::testing::Values(FaultCase{"rootfs-extracted", "--rootfs extract", true},
                                           FaultCase{"rootfs-extracted", "--rootfs extract", false},
                                           FaultCase{"cache-filled", "", true}, FaultCase{"cache-filled", "", false},
                                           FaultCase{"spawner-cloned", "", true},
                                           FaultCase{"spawner-cloned", "", false},
                                           FaultCase{"supervisor-launched", "", true},
                                           FaultCase{"supervisor-launched", "", false},
                                           FaultCase{"up-started", "", true}, FaultCase{"up-started", "", false},
                                           FaultCase{"down-stopped", "", false}),
                         [](const ::testing::TestParamInfo<FaultCase>& info) {
                           std::string name = std::string(info.param.point) + (info.param.up_again ? "_then_up" : "");
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The fleet's state under the state root is lost while it runs (deleted,
// as a cleaned /run would): `down --name` finds it again by its cgroups (the
// supervisor, its spawners and log writer in theirs, each instance in its
// own) and by the overlays over its upper layers, and leaves nothing.
TEST_F(CrashTest, DownOfAFleetWhoseStateWasLostFindsItByItsCgroups) {
  ASSERT_EQ(up(3).status, 0);
  auto before = fleet_state();
  ASSERT_TRUE(before.has_value());
  fs::remove_all(root_ + "/" + fleet_);
  auto listed = haco("ps");
  EXPECT_EQ(listed.output.find("t-" + std::to_string(port_base_)), std::string::npos) << listed.output;
  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_NE(down.output.find("3 instance(s) not in the state"), std::string::npos) << down.output;
  expect_nothing_left(*before);
  for (unsigned i = 0; i < 3; ++i) EXPECT_FALSE(fs::exists(rootfs(i))) << rootfs(i);
  auto again = haco("down --name " + fleet_);
  EXPECT_EQ(again.status, 2) << again.output;
}

}  // namespace
}  // namespace haco::testing
