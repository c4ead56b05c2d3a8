// The directories haco-fleet makes for itself: modes, refusals, names.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "test_support.hpp"

namespace haco::layout {
namespace {

using testing::TempDir;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A wide umask must not leak into the layout's modes, nor a narrow one.
class Umask {
 public:
  explicit Umask(mode_t mask) : previous_(::umask(mask)) {}
  ~Umask() { ::umask(previous_); }

 private:
  mode_t previous_;
};

TEST(Layout, MakeDirectoriesUsesExactlyTheModeAndSaysWhatItMade) {
  TempDir dir;
  Umask umask(0077);
  std::string deep = dir.path().string() + "/a/b/c";
  auto made = make_directories(deep, 0755);
  EXPECT_EQ(made, (std::vector<std::string>{dir.path().string() + "/a", dir.path().string() + "/a/b", deep}));
  for (const auto& d : made) EXPECT_EQ(mode_of(d), 0755u) << d;
  EXPECT_TRUE(make_directories(deep, 0755).empty());
  EXPECT_TRUE(make_directories(deep + "/", 0755).empty());
}

// A file where a directory should be is named in the error, whether it is
// the path itself or one of its parents, and nothing is made below it.
TEST(Layout, MakeDirectoriesOverAFileNamesTheFile) {
  TempDir dir;
  const std::string file = dir.file("file", "x");
  for (const std::string& path : {file, file + "/sub", file + "/sub/deeper/"}) {
    try {
      make_directories(path, 0755);
      ADD_FAILURE() << "made " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.sys_errno(), ENOTDIR) << e.what();
      EXPECT_EQ(e.path(), file) << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(testing::read_text_file(file), "x");
}

TEST(Layout, PrivateDirectoryIsMadeAndTightenedWithANotice) {
  TempDir dir;
  Umask umask(0);
  std::string fresh = dir.path().string() + "/new/private";
  make_private_directory(fresh);
  EXPECT_EQ(mode_of(fresh), 0700u);
  EXPECT_EQ(mode_of(dir.path().string() + "/new"), 0700u);

  std::string wide = dir.path().string() + "/wide";
  ASSERT_EQ(::mkdir(wide.c_str(), 0755), 0);
  ::testing::internal::CaptureStderr();
  make_private_directory(wide);
  std::string notice = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(mode_of(wide), 0700u);
  EXPECT_EQ(notice, "haco-fleet: " + wide + " was mode 0755, now 0700 (private to root)\n");

  ::testing::internal::CaptureStderr();
  make_private_directory(wide);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(Layout, PrivateDirectoryRefusesSymlinksFilesAndOtherOwners) {
  TempDir dir;
  std::string target = dir.path().string() + "/elsewhere";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  std::string link = dir.path().string() + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_THROW(make_private_directory(link), Error);
  EXPECT_EQ(mode_of(target), 0755u);  // not followed
  EXPECT_THROW(make_private_directory(dir.file("file", "x")), Error);
  if (::geteuid() == 0) {
    std::string foreign = dir.path().string() + "/foreign";
    ASSERT_EQ(::mkdir(foreign.c_str(), 0755), 0);
    ASSERT_EQ(::chown(foreign.c_str(), 65534, 65534), 0);
    try {
      make_private_directory(foreign);
      FAIL() << "a directory of uid 65534 was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("owned by uid 65534"), std::string::npos) << e.what();
    }
    EXPECT_EQ(mode_of(foreign), 0755u);
  }
}

TEST(Layout, DataRootHasItsPrivateDirectories) {
  TempDir dir;
  Umask umask(0022);
  DataRoot data(dir.path().string() + "/data");
  data.make_directories();
  EXPECT_EQ(mode_of(data.path()), kRootfsBaseMode);
  for (const auto& d : {data.images(), data.image_digests(), data.instances(), data.logs()})
    EXPECT_EQ(mode_of(d), 0700u) << d;
  EXPECT_EQ(data.instance_dir("web-1"), data.path() + "/instances/web-1");
  EXPECT_EQ(data.fleet_logs("web"), data.path() + "/logs/web");
}

// Where the rootfs engine keeps an instance's layers and the image cache its
// entries: the paths that teardown and the next `up` find again.
TEST(Layout, InstanceAndImagePathsAreUnderTheirDirectories) {
  DataRoot data("/var/lib/haco-fleet");
  EXPECT_EQ(data.instance_upper("web-1"), "/var/lib/haco-fleet/instances/web-1/upper");
  EXPECT_EQ(data.instance_work("web-1"), "/var/lib/haco-fleet/instances/web-1/work");
  EXPECT_EQ(data.instance_image_digest("web-1"), "/var/lib/haco-fleet/instances/web-1/image");
  EXPECT_EQ(data.rootfs_incomplete_marker("web-1"), "/var/lib/haco-fleet/instances/web-1/rootfs-incomplete");
  EXPECT_EQ(data.image_tree("ab12"), "/var/lib/haco-fleet/images/ab12");
  EXPECT_EQ(data.image_ids("ab12"), "/var/lib/haco-fleet/images/ab12.ids");
  EXPECT_EQ(data.image_lock("ab12"), "/var/lib/haco-fleet/images/ab12.lock");
  EXPECT_EQ(data.image_digest_memo(2049, 1234567), "/var/lib/haco-fleet/image-digests/2049-1234567");
}

TEST(Layout, NoPathIsBuiltFromABadName) {
  DataRoot data("/var/lib/haco-fleet");
  for (const char* name : {"..", "../x", "a/b", ".", "", "-x"}) {
    EXPECT_THROW(data.instance_dir(name), InputError) << name;
    EXPECT_THROW(data.instance_upper(name), InputError) << name;
    EXPECT_THROW(data.rootfs_incomplete_marker(name), InputError) << name;
    EXPECT_THROW(data.fleet_logs(name), InputError) << name;
  }
}

}  // namespace
}  // namespace haco::layout
