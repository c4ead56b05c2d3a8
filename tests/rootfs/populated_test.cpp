// Whether a rootfs directory holds a tree: followed through a symlink for the
// definition's path, never for the engine's own check.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "test_support.hpp"

namespace haco::rootfs {
namespace {

using testing::TempDir;

TEST(RootfsPopulated, OnlyADirectoryWithAnEntryHoldsATree) {
  TempDir dir;
  const std::string base = dir.path().string();
  EXPECT_FALSE(rootfs_populated(base + "/missing"));
  EXPECT_FALSE(rootfs_populated(base + "/missing/below"));
  EXPECT_FALSE(rootfs_populated(dir.file("file", "x")));
  EXPECT_FALSE(rootfs_populated(dir.file("file", "x") + "/below"));
  ASSERT_EQ(::mkdir((base + "/empty").c_str(), 0755), 0);
  EXPECT_FALSE(rootfs_populated(base + "/empty"));
  dir.file("tree/etc/hostname", "box\n");
  EXPECT_TRUE(rootfs_populated(base + "/tree"));
  ASSERT_EQ(::symlink("tree", (base + "/link").c_str()), 0);
  EXPECT_TRUE(rootfs_populated(base + "/link"));
}

TEST(DirectoryHasEntries, CountsEntriesAndRefusesWhatIsNotADirectory) {
  TempDir dir;
  const std::string base = dir.path().string();
  ASSERT_EQ(::mkdir((base + "/empty").c_str(), 0755), 0);
  EXPECT_FALSE(directory_has_entries(base + "/empty"));
  dir.file("tree/.hidden", "");
  EXPECT_TRUE(directory_has_entries(base + "/tree"));
  ASSERT_EQ(::symlink("tree", (base + "/link").c_str()), 0);
  for (const std::string& path : {base + "/link", dir.file("file", "x"), base + "/missing"}) {
    try {
      directory_has_entries(path);
      ADD_FAILURE() << "read " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.path(), path) << e.what();
    }
  }
}

}  // namespace
}  // namespace haco::rootfs
