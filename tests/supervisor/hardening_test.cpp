// Real fleets against hostile containers and definitions: what a container
// prints reaches the terminal escaped, state and logs are for root only, and
// Ctrl-C during a bootstrap block stops its commands and rolls back.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

using namespace std::chrono_literals;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(FleetTest, WhatAContainerPrintsReachesTheTerminalEscaped) {
  ::setenv("HACO_TEST_SH", "printf '\\033[31mboom\\033]0;owned\\007\\233J\\n' >&2; exit 3", 1);
  auto result = up(1);
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("exited (exit 3) before it was ready"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("\\x1b[31mboom\\x1b]0;owned\\x07\\x9bJ"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find('\x1b'), std::string::npos) << "raw ESC in: " << result.output;
  EXPECT_EQ(result.output.find('\x07'), std::string::npos);
  EXPECT_EQ(result.output.find('\x9b'), std::string::npos);

  auto json = haco("up --json --name " + fleet_ + " --ports " + ports(1) + " --timeout 20 " + definition());
  EXPECT_EQ(json.output.find('\x1b'), std::string::npos) << json.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, StateAndLogsAreForRootOnly) {
  // A state root an older version made world-readable is tightened, once.
  ASSERT_TRUE(std::filesystem::create_directories(root_));
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  ::setenv("HACO_TEST_MARK", "secret-value", 1);
  auto result = up(1);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("haco-fleet: " + root_ + " was mode 0755, now 0700 (private to root)"),
            std::string::npos)
      << result.output;
  std::string dir = root_ + "/" + fleet_;
  EXPECT_EQ(mode_of(root_), 0700u);
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(dir + "/fleet.json"), 0600u);
  EXPECT_NE(read_text(dir + "/fleet.json").find("MARK=secret-value"), std::string::npos);
  EXPECT_EQ(mode_of(dir + "/supervisor.log"), 0600u);
  EXPECT_EQ(mode_of(dir + "/lock"), 0600u);
  for (const auto& d : {data_ + "/images", data_ + "/image-digests", data_ + "/instances", data_ + "/logs",
                        data_ + "/logs/" + fleet_, data_ + "/instances/t-" + std::to_string(port_base_)})
    EXPECT_EQ(mode_of(d), 0700u) << d;
  EXPECT_EQ(mode_of(data_ + "/logs/" + fleet_ + "/t-" + std::to_string(port_base_) + ".log"), 0600u);
  auto again = up(1);
  EXPECT_EQ(again.output.find("now 0700"), std::string::npos) << again.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, CtrlCDuringABootstrapBlockStopsItAndRollsBack) {
  std::string pid_file = temp_->path().string() + "/sleep.pid";
  std::string root = rootfs_base_ + "/boot-" + std::to_string(port_base_);
  std::string definition = temp_->file("boot.haco", R"(Haconiwa.define do |config|
  port = ENV['PORT'].to_i
  root = ")" + rootfs_base_ + R"(/boot-#{port}"
  config.name = "boot-#{port}"
  config.init_command = "/bin/true"
  config.chroot_to root
  config.namespace.set_uid_mapping min: 0, max: 99, offset: port * 100
  config.namespace.set_gid_mapping min: 0, max: 99, offset: port * 100
  config.bootstrap do |b|
    `mkdir -p #{root} && touch #{root}/partial && (sleep 30 & echo $! > )" + pid_file + R"(; wait)`
    `touch #{root}/after`
  end
end
)");
  pid_t up_pid = ::fork();
  if (up_pid == 0) {
    std::string command = "exec " + haco_command("up --name " + fleet_ + " --ports " + ports(1) + " --timeout 20 " +
                                                 definition) + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    ::_exit(127);
  }
  pid_t sleeper = 0;
  for (int i = 0; i < 400 && sleeper <= 0; ++i) {
    std::this_thread::sleep_for(25ms);
    std::ifstream(pid_file) >> sleeper;
  }
  ASSERT_GT(sleeper, 0) << "the bootstrap block did not start";
  EXPECT_TRUE(std::filesystem::exists(root + "/partial"));
  auto interrupted = std::chrono::steady_clock::now();
  ::kill(up_pid, SIGINT);
  int status = 0;
  ::waitpid(up_pid, &status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - interrupted, 15s);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(std::filesystem::exists(root)) << "the partial rootfs is left";
  for (int i = 0; i < 100 && running(sleeper); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(running(sleeper)) << "the bootstrap's command survived";
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_ + "/fleet.json"));
  EXPECT_EQ(fleet_cgroup_dirs(), std::vector<std::string>{});
}

}  // namespace
}  // namespace haco::testing
