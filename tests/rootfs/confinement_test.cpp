// Hostile archives: nothing may be created, modified or followed outside the
// rootfs. Each archive is refused with an error naming the entry, the target
// tree is removed, and the directory next to it is untouched.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <set>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "temp_dir.hpp"
#include "tree_checks.hpp"

namespace haco::rootfs {
namespace {

using testing::ArchiveBuilder;
using testing::TempDir;

std::set<std::string> listing(const std::string& dir) {
  std::set<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  while (dirent* e = readdir(d.get())) names.insert(e->d_name);
  return names;
}

struct Hostile {
  std::string name;
  std::string offending_entry;  // must appear in the error
  std::function<void(ArchiveBuilder&, const std::string& outside)> build;
};

class Confinement : public ::testing::TestWithParam<Hostile> {};

TEST_P(Confinement, RefusedWithNothingWrittenOutside) {
  TempDir tmp;
  const std::string outside = tmp / "outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
  {
    std::ofstream(outside + "/secret") << "secret";
  }
  const std::string archive = tmp / "hostile.tar";
  {
    ArchiveBuilder b(archive);
    b.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    GetParam().build(b, outside);
  }
  const auto before = listing(outside);
  try {
    extract_archive(archive, {{tmp / "root", IdShift({{0, 300000, 65536}}, {{0, 300000, 65536}}, OwnershipPolicy::shift)}});
    FAIL() << "hostile archive accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().offending_entry), std::string::npos) << e.what();
  }
  EXPECT_EQ(listing(outside), before);
  EXPECT_EQ(testing::read_file(outside + "/secret"), "secret");
  struct stat st = testing::lstat_of(outside + "/secret");
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_FALSE(testing::exists(tmp / "root")) << "a refused archive leaves no tree";
}

INSTANTIATE_TEST_SUITE_P(
    Archives, Confinement,
    ::testing::Values(
        Hostile{"absolute", "/outside/evil",
                [](ArchiveBuilder& b, const std::string& out) { b.file(out + "/evil", "x"); }},
        Hostile{"dotdot", "../outside/evil", [](ArchiveBuilder& b, const std::string&) { b.file("../outside/evil", "x"); }},
        Hostile{"dotdot_inside", "etc/../../outside/evil",
                [](ArchiveBuilder& b, const std::string&) { b.file("etc/../../outside/evil", "x"); }},
        Hostile{"symlink_then_write", "link/evil",
                [](ArchiveBuilder& b, const std::string& out) {
                  b.symlink("link", out);
                  b.file("link/evil", "x");
                }},
        Hostile{"relative_symlink_then_write", "link/evil",
                [](ArchiveBuilder& b, const std::string&) {
                  b.symlink("link", "../outside");
                  b.file("link/evil", "x");
                }},
        Hostile{"symlink_then_mkdir", "link/sub",
                [](ArchiveBuilder& b, const std::string& out) {
                  b.symlink("link", out);
                  b.dir("link/sub");
                }},
        Hostile{"symlink_then_hardlink_into", "link/secret2",
                [](ArchiveBuilder& b, const std::string& out) {
                  b.symlink("link", out);
                  b.hardlink("link/secret2", "etc/passwd");
                }},
        Hostile{"hardlink_absolute", "/outside/secret",
                [](ArchiveBuilder& b, const std::string& out) { b.hardlink("h", out + "/secret"); }},
        Hostile{"hardlink_dotdot", "../outside/secret",
                [](ArchiveBuilder& b, const std::string&) { b.hardlink("h", "../outside/secret"); }},
        Hostile{"hardlink_through_symlink", "link/secret",
                [](ArchiveBuilder& b, const std::string& out) {
                  b.symlink("link", out);
                  b.hardlink("h", "link/secret");
                }},
        Hostile{"dir_replaced_by_symlink", "etc",
                [](ArchiveBuilder& b, const std::string& out) {
                  b.symlink("etc", out);
                  b.file("etc/evil", "x");
                }},
        Hostile{"file_then_child", "etc/passwd/evil",
                [](ArchiveBuilder& b, const std::string&) { b.file("etc/passwd/evil", "x"); }},
        // A pax path of 50000 components: refused (PATH_MAX), never walked
        // one call per component.
        Hostile{"deep_path", "entry 'a/a/a/a/a/",
                [](ArchiveBuilder& b, const std::string&) {
                  std::string deep(100000, '/');
                  for (std::size_t i = 0; i < deep.size(); i += 2) deep[i] = 'a';
                  deep.append("evil");
                  b.file(deep, "x");
                }}),
    [](const auto& info) { return info.param.name; });

TEST(Confinement, RewritingAHardlinkDoesNotWriteThroughIt) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  {
    ArchiveBuilder b(archive);
    b.file("etc/passwd", "original");
    b.hardlink("alias", "etc/passwd");
    b.file("alias", "overwritten");
  }
  extract_archive(archive, {{tmp / "root", IdShift()}});
  EXPECT_EQ(testing::read_file(tmp / "root/etc/passwd"), "original");
  EXPECT_EQ(testing::read_file(tmp / "root/alias"), "overwritten");
}

TEST(Confinement, SymlinksPointingOutsideAreStoredNotFollowed) {
  TempDir tmp;
  const std::string outside = tmp / "outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0700), 0);
  const std::string archive = tmp / "image.tar";
  {
    ArchiveBuilder b(archive);
    b.symlink("escape", outside, {.mode = 0777, .uid = 0, .gid = 0, .mtime = 1234567890});
  }
  extract_archive(archive, {{tmp / "root", IdShift({{0, 300000, 65536}}, {{0, 300000, 65536}}, OwnershipPolicy::shift)}});
  // Metadata went to the link itself, never to what it points at.
  struct stat st = testing::lstat_of(outside);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_NE(st.st_mtime, 1234567890);
  EXPECT_EQ(testing::lstat_of(tmp / "root/escape").st_uid, 300000u);
}

}  // namespace
}  // namespace haco::rootfs
