// Bootstrap blocks of shell commands (docs/bootstrap.md): the seed's idiom
// served by the rootfs engine, anything else run as written, and said.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

constexpr const char* kEngine = "bootstrap: the block's mkdir + tar + chown -R served by the rootfs engine";
constexpr const char* kAsWritten = "bootstrap: the block runs as written, one command at a time";

class BootstrapBlockTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ::setenv("HACO_TEST_BOOTSTRAP_BLOCK", "1", 1);
  }
  std::string rootfs(unsigned index = 0) const { return rootfs_base_ + "/t-" + std::to_string(port_base_ + index); }
  uid_t owner(const std::string& path) const {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_uid;
  }
};

TEST_F(BootstrapBlockTest, TheIdiomIsServedByTheEngineWithEitherStrategy) {
  for (const char* strategy : {"overlay", "extract"}) {
    SCOPED_TRACE(strategy);
    auto result = up(2, std::string("--rootfs ") + strategy);
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_NE(result.output.find(std::string(kEngine) + " for 2 instances (1 archive"), std::string::npos)
        << result.output;
    EXPECT_EQ(result.output.find(kAsWritten), std::string::npos) << result.output;
    auto fleet = fleet_state();
    ASSERT_TRUE(fleet.has_value());
    for (unsigned i = 0; i < 2; ++i) {
      EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_ + i)));
      // The image's root-owned files, shifted into the instance's range.
      EXPECT_EQ(owner(rootfs(i) + "/bin/busybox"), (port_base_ + i) * 100u);
      EXPECT_EQ(owner(rootfs(i)), (port_base_ + i) * 100u);
      ASSERT_TRUE(fleet->instances[i].rootfs.has_value());
      EXPECT_EQ(fleet->instances[i].rootfs->strategy,
                std::string(strategy) == "overlay" ? rootfs::Strategy::overlay : rootfs::Strategy::extract);
    }
    auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
    ASSERT_EQ(down.status, 0) << down.output;
    expect_nothing_left(*fleet);
    EXPECT_FALSE(std::filesystem::exists(rootfs(0)));
  }
}

// A down without --purge keeps the overlay's upper layer; the block asks
// Dir.exists?(root) again on the next up, and the layer is mounted again.
TEST_F(BootstrapBlockTest, AKeptUpperLayerIsMountedAgainByTheNextUp) {
  ASSERT_EQ(up(1).status, 0);
  { std::ofstream(rootfs() + "/www/kept.txt") << "kept"; }
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1").status, 0);
  EXPECT_FALSE(std::filesystem::exists(rootfs() + "/www/kept.txt"));
  auto again = up(1);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find(kEngine), std::string::npos) << again.output;
  EXPECT_EQ(read_text(rootfs() + "/www/kept.txt"), "kept");
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_TRUE(fleet->instances[0].rootfs.has_value());
  EXPECT_EQ(fleet->instances[0].rootfs->strategy, rootfs::Strategy::overlay);
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);
  EXPECT_FALSE(std::filesystem::exists(rootfs()));
}

TEST_F(BootstrapBlockTest, ExpandSaysWhichCommandKeepsABlockFromTheEngineAndRunsNone) {
  const std::string marker = temp_->path().string() + "/ran";
  struct Case {
    std::string extra, reason;
  } cases[] = {
      {"ls ROOT | wc -l", "a pipe is not part of the idiom"},
      {"ls ROOT >/dev/null", "a redirection is not part of the idiom"},
      {"touch " + marker, "touch is not a command the engine knows"},
      {"tar xzf " + std::string(HACO_BUILD_DIR) + "/images/busybox.tar.gz -C /tmp", "a second tar"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.extra);
    ::setenv("HACO_TEST_BOOTSTRAP_EXTRA", c.extra.c_str(), 1);
    auto expand = haco("expand --ports " + ports(1) + " " + definition());
    ASSERT_EQ(expand.status, 0) << expand.output;
    EXPECT_NE(expand.output.find("run as written when the rootfs does not exist yet"), std::string::npos)
        << expand.output;
    EXPECT_NE(expand.output.find(c.reason), std::string::npos) << expand.output;
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "expand ran a command of the block";
  ::unsetenv("HACO_TEST_BOOTSTRAP_EXTRA");
  auto expand = haco("expand --ports " + ports(1) + " " + definition());
  EXPECT_NE(expand.output.find("the definition's block, recognised (mkdir + tar + chown -R)"), std::string::npos)
      << expand.output;
  EXPECT_FALSE(std::filesystem::exists(rootfs(0))) << "expand ran the block's mkdir";
}

TEST_F(BootstrapBlockTest, AnUnknownCommandRunsTheBlockAsWrittenAndSaysWhy) {
  const std::string marker = temp_->path().string() + "/ran-" + std::to_string(port_base_);
  ::setenv("HACO_TEST_BOOTSTRAP_EXTRA", ("touch " + marker).c_str(), 1);
  auto result = up(1);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find(std::string(kAsWritten) + ", for the whole fleet: t-" + std::to_string(port_base_) +
                               ": `touch " + marker + "`: touch is not a command the engine knows"),
            std::string::npos)
      << result.output;
  EXPECT_TRUE(std::filesystem::exists(marker)) << "the block did not run as written";
  EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_)));
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);
  EXPECT_FALSE(std::filesystem::exists(rootfs(0)));
}

TEST_F(BootstrapBlockTest, BootstrapAsWrittenRunsTheShellCommands) {
  auto result = up(1, "--bootstrap as-written");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find(std::string(kAsWritten) + ", for 1 instance (--bootstrap as-written)"),
            std::string::npos)
      << result.output;
  EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port_base_)));
  // chown -R as written: a plain tree, every file the container root's.
  EXPECT_EQ(owner(rootfs() + "/bin/busybox"), port_base_ * 100u);
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_TRUE(fleet->instances[0].rootfs.has_value());
  EXPECT_EQ(fleet->instances[0].rootfs->upper_dir, "");
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);

  auto bad = haco("up --name " + fleet_ + " --ports " + ports(1) + " --bootstrap literally " + definition());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("--bootstrap"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace haco::testing
