// The state root as a fleet's cgroup records it (cgroups::state_root_identity):
// every spelling of one directory gives the same value, so that `down`
// under a root recognises its own fleets.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "haco/cgroup.hpp"
#include "test_support.hpp"

namespace haco::cgroups {
namespace {

namespace fs = std::filesystem;

TEST(StateRootIdentity, SpellingsOfOneDirectoryGiveOneValue) {
  haco::testing::TempDir dir;
  const fs::path real = fs::canonical(dir.path()) / "run";
  fs::create_directories(real / "sub");
  const std::string expected = real.string();
  EXPECT_EQ(state_root_identity(expected), expected);
  EXPECT_EQ(state_root_identity(expected + "/"), expected);
  EXPECT_EQ(state_root_identity(expected + "//sub/.."), expected);
  fs::create_directory_symlink(real, real.parent_path() / "link");
  EXPECT_EQ(state_root_identity((real.parent_path() / "link").string()), expected);
}

TEST(StateRootIdentity, ARelativeRootIsTakenFromTheWorkingDirectory) {
  haco::testing::TempDir dir;
  const fs::path real = fs::canonical(dir.path());
  const fs::path before = fs::current_path();
  fs::current_path(real);
  const std::string relative = state_root_identity("run/");
  fs::current_path(before);
  EXPECT_EQ(relative, (real / "run").string());
}

TEST(StateRootIdentity, AMissingRootIsMadeAbsoluteAndNormal) {
  EXPECT_EQ(state_root_identity("/nonexistent-haco-root/a/../b/"), "/nonexistent-haco-root/b");
  EXPECT_EQ(state_root_identity("/"), "/");
}

}  // namespace
}  // namespace haco::cgroups
