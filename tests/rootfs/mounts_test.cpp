// Mounts recognised by identity (mount ids, resolved paths), reached through
// a symlinked parent the way a symlinked data root or rootfs base reaches
// them: mountinfo names the resolved path, never the symlinked one.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/mounts.hpp"
#include "temp_dir.hpp"
#include "tree_checks.hpp"

namespace haco::rootfs {
namespace {

using testing::TempDir;
using testing::exists;
using testing::read_file;

// A mount undone (detached) when the test ends, pass or fail.
class ScopedMount {
 public:
  ScopedMount(const std::string& source, const std::string& target, const char* fstype, unsigned long flags,
              const std::string& data = {})
      : target_(target) {
    if (mount(source.c_str(), target.c_str(), fstype, flags, data.empty() ? nullptr : data.c_str()) == 0)
      mounted_ = true;
    else
      error_ = std::strerror(errno);
  }
  ~ScopedMount() {
    if (mounted_) umount2(target_.c_str(), MNT_DETACH);
  }
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  // Once unmounted by the code under test.
  void forget() { mounted_ = false; }

 private:
  std::string target_, error_;
  bool mounted_ = false;
};

// tmp/real/sub, reached as tmp/link/sub through tmp/link -> real.
struct SymlinkedParent {
  TempDir tmp;
  std::string real = tmp / "real/sub";
  std::string link = tmp / "link/sub";
  SymlinkedParent() {
    if (mkdir((tmp / "real").c_str(), 0755) != 0 || mkdir(real.c_str(), 0755) != 0 ||
        symlink("real", (tmp / "link").c_str()) != 0)
      throw std::runtime_error(std::string("setting up the symlinked parent: ") + std::strerror(errno));
  }
  void dir(const std::string& rel) const {
    ASSERT_EQ(mkdir((real + "/" + rel).c_str(), 0755), 0) << rel << ": " << std::strerror(errno);
  }
};

using Points = std::vector<std::string>;

TEST(MountIdentity, ATmpfsUnderASymlinkedParentIsFoundByItsResolvedPath) {
  SymlinkedParent t;
  t.dir("m");
  ScopedMount m("haco-test", t.link + "/m", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_TRUE(exists(t.real + "/m"));

  EXPECT_TRUE(is_mount_point(t.link + "/m"));
  EXPECT_TRUE(is_mount_point(t.link + "/m/"));
  EXPECT_TRUE(is_mount_point(t.real + "/m"));
  EXPECT_FALSE(is_mount_point(t.link));
  EXPECT_FALSE(is_mount_point(t.link + "/missing"));
  EXPECT_EQ(mounts_at_or_under(t.link), Points{t.real + "/m"});
  EXPECT_EQ(mounts_at_or_under(t.link + "/m"), Points{t.real + "/m"});
  EXPECT_EQ(mounts_at_or_under(t.real), Points{t.real + "/m"});
  EXPECT_TRUE(mounts_at_or_under(t.link + "/missing").empty());
  // A symlink as the last component is an entry of its own, not the tree
  // it points to (remove_tree unlinks it).
  EXPECT_TRUE(mounts_at_or_under(t.tmp / "link").empty());
  EXPECT_FALSE(is_mount_point(t.tmp / "link"));
}

TEST(MountIdentity, ABindMountOfTheSameFilesystemIsAMountPoint) {
  SymlinkedParent t;
  t.dir("a");
  t.dir("b");
  t.dir("c");
  ScopedMount ab(t.link + "/a", t.link + "/b", nullptr, MS_BIND);
  ASSERT_TRUE(ab.ok()) << ab.error();
  ScopedMount cc(t.link + "/c", t.link + "/c", nullptr, MS_BIND);
  ASSERT_TRUE(cc.ok()) << cc.error();
  struct stat a {}, b {}, parent {};
  ASSERT_EQ(stat((t.link + "/a").c_str(), &a), 0);
  ASSERT_EQ(stat((t.link + "/b").c_str(), &b), 0);
  ASSERT_EQ(stat(t.link.c_str(), &parent), 0);
  ASSERT_EQ(b.st_dev, parent.st_dev) << "the bind mount is of the same filesystem: st_dev cannot tell";

  EXPECT_TRUE(is_mount_point(t.link + "/b"));
  EXPECT_TRUE(is_mount_point(t.link + "/c")) << "a directory bound onto itself";
  EXPECT_FALSE(is_mount_point(t.link + "/a"));
  EXPECT_EQ(mounts_at_or_under(t.link), (Points{t.real + "/b", t.real + "/c"}));
}

TEST(MountIdentity, MountsStackedAtAPathAreListedBottomFirstAndTheirChildrenLast) {
  SymlinkedParent t;
  t.dir("m");
  ScopedMount bottom("haco-bottom", t.link + "/m", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(bottom.ok()) << bottom.error();
  ScopedMount top("haco-top", t.link + "/m", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(top.ok()) << top.error();
  ASSERT_EQ(mkdir((t.link + "/m/inner").c_str(), 0755), 0);
  ScopedMount inner("haco-inner", t.link + "/m/inner", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(inner.ok()) << inner.error();

  const Points expected{t.real + "/m", t.real + "/m", t.real + "/m/inner"};
  EXPECT_EQ(mounts_at_or_under(t.link + "/m"), expected);
  EXPECT_EQ(mounts_at_or_under(t.link), expected);
  EXPECT_TRUE(is_mount_point(t.link + "/m/inner"));
}

TEST(MountIdentity, AMountShadowedByALaterMountIsNotReachedThroughIt) {
  SymlinkedParent t;
  t.dir("x");
  t.dir("x/y");
  ScopedMount y("haco-shadowed", t.link + "/x/y", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(y.ok()) << y.error();
  ScopedMount x("haco-shadowing", t.link + "/x", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(x.ok()) << x.error();
  ASSERT_FALSE(exists(t.link + "/x/y")) << "the new tmpfs at x hides y";

  // Path text alone would list x/y under x; the ancestry of the mounts says
  // it is not reached through the mount at x.
  EXPECT_EQ(mounts_at_or_under(t.link + "/x"), Points{t.real + "/x"});
  const Points under_parent = mounts_at_or_under(t.link);
  EXPECT_EQ(under_parent.size(), 2u);
}

TEST(RemoveTree, RefusesAMountReachedThroughASymlinkedParent) {
  SymlinkedParent t;
  t.dir("t");
  t.dir("t/m");
  ScopedMount m("haco-test", t.link + "/t/m", "tmpfs", 0, "size=1m");
  ASSERT_TRUE(m.ok()) << m.error();
  { std::ofstream(t.link + "/t/m/precious") << "kept\n"; }

  for (const std::string& target : {t.link + "/t", t.link + "/t/m"}) {
    SCOPED_TRACE(target);
    try {
      remove_tree(target);
      ADD_FAILURE() << "removed through a mount";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("refusing to remove " + target), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(t.real + "/t/m is mounted"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(t.real + "/t/m/precious"), "kept\n");
  }
}

// lower (with a file), upper, work and merged under the real parent.
struct OverlayLayers : SymlinkedParent {
  OverlayLayers() {
    for (const char* d : {"lower", "upper", "work", "merged"})
      if (mkdir((real + "/" + d).c_str(), 0755) != 0)
        throw std::runtime_error(std::string("mkdir ") + d + ": " + std::strerror(errno));
    std::ofstream(real + "/lower/file") << "lower\n";
  }
};

// The overlay mounted through the symlinked parent.
struct SymlinkedOverlay : OverlayLayers {
  ScopedMount overlay{"haco-test-overlay", link + "/merged", "overlay", 0,
                      "lowerdir=" + link + "/lower,upperdir=" + link + "/upper,workdir=" + link + "/work"};
};

TEST(OverlayIdentity, AnOverlayIsFoundByItsUpperDirectoryHoweverEitherPathIsSpelled) {
  SymlinkedOverlay t;
  ASSERT_TRUE(t.overlay.ok()) << t.overlay.error();
  ASSERT_EQ(read_file(t.real + "/merged/file"), "lower\n");

  EXPECT_EQ(overlay_using_upper(t.real + "/upper"), t.real + "/merged");
  EXPECT_EQ(overlay_using_upper(t.link + "/upper"), t.real + "/merged");
  EXPECT_EQ(overlay_using_upper(t.real + "/lower"), "");
  EXPECT_EQ(overlay_using_upper(t.real + "/missing"), "");
  auto found = overlay_mount_using_upper(t.real + "/upper");
  ASSERT_TRUE(found);
  UniqueFd merged = open_path(t.link + "/merged");
  ASSERT_TRUE(merged);
  EXPECT_EQ(found->id, mount_id_of(merged.get(), t.link + "/merged"));

  EXPECT_TRUE(overlay_mounted_at(t.link + "/merged", t.real + "/upper"));
  EXPECT_TRUE(overlay_mounted_at(t.real + "/merged", t.link + "/upper"));
  EXPECT_FALSE(overlay_mounted_at(t.link + "/merged", t.real + "/lower"));
  EXPECT_FALSE(overlay_mounted_at(t.link + "/upper", t.real + "/upper"));
}

TEST(OverlayIdentity, OnlyTheInstancesOwnOverlayIsUnmounted) {
  SymlinkedOverlay t;
  ASSERT_TRUE(t.overlay.ok()) << t.overlay.error();
  {
    // Something else on top of the overlay: refused, named, left in place.
    ScopedMount over("haco-over", t.link + "/merged", "tmpfs", 0, "size=1m");
    ASSERT_TRUE(over.ok()) << over.error();
    EXPECT_FALSE(overlay_mounted_at(t.link + "/merged", t.link + "/upper"));
    try {
      unmount_overlay(t.link + "/merged", t.link + "/upper");
      ADD_FAILURE() << "unmounted a mount that is not the overlay";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("refusing to unmount " + t.link + "/merged"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("tmpfs 'haco-over' at " + t.real + "/merged"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(mounts_at_or_under(t.link + "/merged").size(), 2u);
  }
  ASSERT_EQ(read_file(t.link + "/merged/file"), "lower\n") << "the overlay is still there";

  EXPECT_TRUE(unmount_overlay(t.link + "/merged", t.real + "/upper"));
  t.overlay.forget();
  EXPECT_FALSE(is_mount_point(t.real + "/merged"));
  EXPECT_TRUE(mounts_at_or_under(t.tmp.path()).empty());
  EXPECT_FALSE(unmount_overlay(t.link + "/merged", t.real + "/upper")) << "nothing mounted: nothing to do";
}

}  // namespace
}  // namespace haco::rootfs
