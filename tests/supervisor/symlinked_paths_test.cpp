// A fleet whose data root (--data-root) and rootfs base (the definition's
// chroot_to directory) are reached through symlinks: mountinfo names the
// overlays by their resolved paths, and down still finds every one.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "fleet_fixture.hpp"
#include "haco/layout.hpp"
#include "haco/mountinfo.hpp"

namespace haco::testing {
namespace {

class SymlinkedRootsTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    if (!temp_) return;
    const std::string top = temp_->path().string();
    real_data_ = top + "/real-data";
    real_rootfs_ = top + "/real-rootfs";
    for (const std::string& dir : {real_data_, real_rootfs_}) {
      ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir << ": " << std::strerror(errno);
      ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    }
    ASSERT_EQ(::symlink("real-data", (top + "/data-link").c_str()), 0);
    ASSERT_EQ(::symlink("real-rootfs", (top + "/rootfs-link").c_str()), 0);
    data_ = top + "/data-link";
    rootfs_base_ = top + "/rootfs-link";
    ::setenv("HACO_ROOTFS_BASE", rootfs_base_.c_str(), 1);
  }

  // Overlay mount points under `dir`, as mountinfo spells them.
  static std::vector<std::string> overlays_under(const std::string& dir) {
    std::vector<std::string> found;
    for (const MountInfo& m : read_mountinfo())
      if (m.fstype == "overlay" && m.mount_point.rfind(dir + "/", 0) == 0) found.push_back(m.mount_point);
    return found;
  }

  // Every path in the image cache, with each file's size: what a delete
  // through an overlay would change.
  std::set<std::string> image_cache() const {
    std::set<std::string> entries;
    for (const auto& e : std::filesystem::recursive_directory_iterator(real_data_ + "/images")) {
      std::error_code ec;
      auto size = std::filesystem::is_regular_file(e.symlink_status(ec)) ? e.file_size(ec) : 0;
      entries.insert(e.path().string() + " " + std::to_string(size));
    }
    return entries;
  }

  std::string instance(unsigned i) const { return "t-" + std::to_string(port_base_ + i); }

  std::string real_data_, real_rootfs_;
};

TEST_F(SymlinkedRootsTest, DownUnmountsEveryOverlayUpAgainWorksAndPurgeLeavesNothing) {
  auto result = up(2, "--rootfs overlay");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(result.output.find("unavailable"), std::string::npos) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(fleet->instances.size(), 2u);
  EXPECT_EQ(overlays_under(real_rootfs_),
            (std::vector<std::string>{real_rootfs_ + "/" + instance(0), real_rootfs_ + "/" + instance(1)}));
  for (const auto& r : fleet->instances) {
    ASSERT_TRUE(r.rootfs.has_value()) << r.name();
    EXPECT_EQ(r.rootfs->strategy, rootfs::Strategy::overlay) << r.name();
    EXPECT_EQ(r.rootfs->rootfs, rootfs_base_ + "/" + r.name()) << "recorded as the definition says it";
    std::ofstream(r.rootfs->rootfs + "/www/marker") << r.name() << "\n";
  }

  auto down = haco("down --name " + fleet_ + " --timeout 2");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
  EXPECT_EQ(overlays_under(real_rootfs_), std::vector<std::string>{}) << "down left an overlay mounted";
  for (unsigned i = 0; i < 2; ++i) {
    EXPECT_FALSE(std::filesystem::exists(real_rootfs_ + "/" + instance(i))) << "the empty mount point is left";
    EXPECT_EQ(read_text(layout::DataRoot(real_data_).instance_upper(instance(i)) + "/www/marker"), instance(i) + "\n");
  }

  auto again = up(2, "--rootfs overlay");
  ASSERT_EQ(again.status, 0) << again.output;
  auto second = fleet_state();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(overlays_under(real_rootfs_).size(), 2u);
  for (const auto& r : second->instances) {
    ASSERT_TRUE(r.rootfs.has_value()) << r.name();
    EXPECT_TRUE(r.rootfs->reused) << r.name();
    EXPECT_EQ(r.rootfs->strategy, rootfs::Strategy::overlay) << r.name();
    EXPECT_EQ(read_text(r.rootfs->rootfs + "/www/marker"), r.name() + "\n");
    EXPECT_TRUE(can_connect(r.spec.port)) << r.name();
  }
  const auto cache = image_cache();

  auto purge = haco("down --name " + fleet_ + " --timeout 2 --purge");
  ASSERT_EQ(purge.status, 0) << purge.output;
  expect_nothing_left(*second);
  EXPECT_EQ(overlays_under(real_rootfs_), std::vector<std::string>{});
  for (unsigned i = 0; i < 2; ++i) {
    EXPECT_FALSE(std::filesystem::exists(real_rootfs_ + "/" + instance(i)));
    EXPECT_FALSE(std::filesystem::exists(layout::DataRoot(real_data_).instance_dir(instance(i))));
  }
  EXPECT_EQ(image_cache(), cache) << "the image cache changed";
}

// A tmpfs mounted over an instance's rootfs, through the symlinked base; it
// is detached when the test ends, whatever happened.
class MountOver {
 public:
  explicit MountOver(const std::string& path) : path_(path) {
    mounted_ = ::mount("haco-test-over", path.c_str(), "tmpfs", 0, "size=1m") == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~MountOver() { unmount(); }
  MountOver(const MountOver&) = delete;
  MountOver& operator=(const MountOver&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  bool unmount() {
    if (!mounted_) return true;
    mounted_ = ::umount2(path_.c_str(), MNT_DETACH) != 0;
    return !mounted_;
  }

 private:
  std::string path_, error_;
  bool mounted_ = false;
};

TEST_F(SymlinkedRootsTest, PurgeRefusesAMountItDidNotMakeAndDeletesNothingOfTheLiveOverlay) {
  auto result = up(2, "--rootfs overlay");
  ASSERT_EQ(result.status, 0) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  const std::string rootfs = rootfs_base_ + "/" + instance(0);
  const std::string resolved = real_rootfs_ + "/" + instance(0);
  const std::string upper = layout::DataRoot(real_data_).instance_upper(instance(0));
  { std::ofstream(rootfs + "/www/precious") << "kept\n"; }
  const auto cache = image_cache();

  MountOver over(rootfs);
  ASSERT_TRUE(over.mounted()) << over.error();
  auto refused = haco("down --name " + fleet_ + " --timeout 1 --purge");
  EXPECT_NE(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("refusing to unmount " + rootfs), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("tmpfs 'haco-test-over' at " + resolved), std::string::npos) << refused.output;
  EXPECT_TRUE(std::filesystem::exists(root_ + "/" + fleet_)) << "the state of an incomplete down is kept";

  ASSERT_TRUE(over.unmount());
  EXPECT_EQ(overlays_under(real_rootfs_), std::vector<std::string>{resolved}) << "the overlay itself stays";
  EXPECT_EQ(read_text(rootfs + "/www/precious"), "kept\n");
  EXPECT_EQ(read_text(upper + "/www/precious"), "kept\n");
  EXPECT_TRUE(std::filesystem::exists(rootfs + "/bin/busybox")) << "the lower layer is still seen";
  EXPECT_EQ(image_cache(), cache) << "the image cache changed";

  auto purge = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(purge.status, 0) << purge.output;
  expect_nothing_left(*fleet);
  EXPECT_FALSE(std::filesystem::exists(resolved));
  EXPECT_FALSE(std::filesystem::exists(upper));
  EXPECT_EQ(image_cache(), cache) << "the image cache changed";
}

}  // namespace
}  // namespace haco::testing
