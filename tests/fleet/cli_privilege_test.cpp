// The command line run by a user other than root: the verbs that act on
// containers, cgroups and mounts stop at once with one line; expand, ps of a
// readable state root and --help work for anyone.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace haco {
namespace {

using testing::run_command;

// The user `nobody` (uid and gid 65534, no supplementary groups). When the
// tests already run as another user than root, as that user.
std::string as_unprivileged() {
  return ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
}

class Unprivileged : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    // Reachable by nobody; the state root in it is made as `up` makes it.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                     fs::perms::others_read | fs::perms::others_exec);
    fs::create_directories(state_root());
    fs::permissions(state_root(), fs::perms::owner_all);
  }
  std::string state_root() const { return (dir_.path() / "state").string(); }
  std::string haco(const std::string& root) const {
    return as_unprivileged() + HACO_BINARY + " --root " + root + " --data-root " + (dir_.path() / "data").string();
  }
  std::string seed() const { return testing::seed_file("phpinfo-test.haco"); }

  testing::TempDir dir_;
};

TEST_F(Unprivileged, UpAndDownStopAtOnceWithOneLine) {
  for (const std::string verb : {"up", "down", "reload", "stop", "start", "restart", "exec", "images", "images prune",
                                  "slurm submit", "slurm epilog"}) {
    std::string args = verb == "up"             ? " --ports 10001 " + seed()
                       : verb == "slurm submit" ? " --ports 10001-10002 --nodes 2 " + seed()
                       : verb == "exec"         ? " 10001 -- true"
                                                : "";
    auto r = run_command(haco(state_root()) + " " + verb + args);
    EXPECT_EQ(r.status, 2) << verb << ": " << r.output;
    EXPECT_EQ(r.output, "haco-fleet " + verb + ": must run as root (containers, cgroups and mounts need it)\n");
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "data"));
}

TEST_F(Unprivileged, PsNeedsRootOnlyForARootOnlyStateRoot) {
  auto r = run_command(haco(state_root()) + " ps");
  if (::geteuid() == 0) {
    // 0700 root, as `up` leaves it.
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_EQ(r.output, "haco-fleet ps: must run as root to read the state root " + state_root() +
                            " (Permission denied)\n");
  } else {
    // The caller's own.
    EXPECT_EQ(r.status, 0) << r.output;
  }
  // A state root that does not exist holds no fleet, whoever asks.
  std::string missing = (dir_.path() / "none").string();
  r = run_command(haco(missing) + " ps");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "no fleet under " + missing + "\n");
}

// inspect reads as ps does.
TEST_F(Unprivileged, InspectNeedsRootOnlyForARootOnlyStateRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "the state root is the caller's own";
  auto r = run_command(haco(state_root()) + " inspect 10001");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(r.output, "haco-fleet inspect: must run as root to read the state root " + state_root() +
                          " (Permission denied)\n");
}

// metrics reads as ps does.
TEST_F(Unprivileged, MetricsNeedsRootOnlyForARootOnlyStateRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "the state root is the caller's own";
  auto r = run_command(haco(state_root()) + " metrics");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(r.output, "haco-fleet metrics: must run as root to read the state root " + state_root() +
                          " (Permission denied)\n");
}

TEST_F(Unprivileged, LogsStopsAtOnceWithOneLine) {
  auto r = run_command(haco(state_root()) + " logs -n 5");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(r.output, "haco-fleet logs: must run as root (instance logs are readable by root only)\n");
}

TEST_F(Unprivileged, ExpandAndHelpWork) {
  auto r = run_command(haco(state_root()) + " expand --ports 10001-10002 " + seed() + " 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("haconiwa-test-10002"), std::string::npos) << r.output;
  for (const std::string command : {"--help", "up --help", "down --help", "ps --help", "expand --help",
                                     "inspect --help", "reload --help", "logs --help", "stop --help",
                                     "start --help", "restart --help", "exec --help", "metrics --help",
                                     "images --help", "images prune --help", "slurm --help", "slurm submit --help",
                                     "slurm status --help", "slurm epilog --help"}) {
    r = run_command(haco(state_root()) + " " + command);
    EXPECT_EQ(r.status, 0) << command << ": " << r.output;
    EXPECT_NE(r.output.find("Usage:"), std::string::npos) << command << ": " << r.output;
  }
}

}  // namespace
}  // namespace haco
