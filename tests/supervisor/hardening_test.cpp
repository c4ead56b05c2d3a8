// Real fleets against hostile containers: what a container prints reaches
// the terminal escaped, and state and logs are for root only.
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

}  // namespace
}  // namespace haco::testing
