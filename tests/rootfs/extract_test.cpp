// The extract strategy against the real kernel: every entry type, through
// every compression, checked from the host with stat.
#include <gtest/gtest.h>
#include <algorithm>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "temp_dir.hpp"
#include "tree_checks.hpp"

namespace haco::rootfs {
namespace {

using testing::ArchiveBuilder;
using testing::TempDir;
using testing::lstat_of;
using testing::exists;

constexpr std::uint32_t kBase = 300000;

IdShift shift_at(std::uint32_t base, OwnershipPolicy p = OwnershipPolicy::shift) {
  return IdShift({{0, base, 65536}}, {{0, base, 65536}}, p);
}

// An image with one of everything. The data file is larger than a batch so
// that its data crosses batch boundaries.
std::string big_data() {
  std::string s(5u << 20, '\0');
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7 + i / 4096);
  return s;
}

void write_full_image(const std::string& path, const std::string& filter) {
  ArchiveBuilder b(path, filter);
  b.dir("./", {.mode = 0755, .mtime = 1500000000});
  b.dir("etc", {.mode = 0755, .mtime = 1500000001});
  b.file("etc/hostname", "box\n", {.mode = 0644, .mtime = 1500000002});
  b.file("etc/shadow", "root:*:\n", {.mode = 0640, .uid = 0, .gid = 42, .mtime = 1500000003});
  b.file("etc/empty", "", {.mode = 0600});
  b.dir("usr/bin", {.mode = 0755, .mtime = 1500000004});  // parent "usr" not listed
  b.file("usr/bin/passwd", "ELF", {.mode = 04755, .mtime = 1500000005});
  b.file("usr/bin/wall", "ELF", {.mode = 02755, .gid = 5});
  b.file("usr/bin/ping", "ELF", {.mode = 0755, .xattrs = {{"security.capability", testing::caps_v2(1u << 13)}}});
  b.file("usr/bin/big", big_data(), {.mode = 0644});
  b.hardlink("usr/bin/big-link", "usr/bin/big");
  b.symlink("bin", "usr/bin", {.mode = 0777, .mtime = 1500000006});
  b.symlink("etc/dangling", "/nonexistent/target");
  b.dir("tmp", {.mode = 01777});
  b.dir("var/mail", {.mode = 02775, .gid = 8});
  b.dir("home/www", {.mode = 0750, .uid = 33, .gid = 33, .mtime = 1500000007});
  b.file("home/www/index.html", "<html/>", {.mode = 0644, .uid = 33, .gid = 33, .xattrs = {{"user.note", "hello"}}});
  b.device("dev/null", AE_IFCHR, 1, 3, {.mode = 0666});
  b.device("dev/sda", AE_IFBLK, 8, 0, {.mode = 0660, .gid = 6});
  b.hardlink("dev/disk", "dev/sda");
  b.file("dev/zero", "a file replaced by a device node later in the archive");
  b.device("dev/zero", AE_IFCHR, 1, 5, {.mode = 0666});
  b.device("run/fifo", AE_IFIFO, 0, 0, {.mode = 0620, .uid = 1000, .gid = 1000});
}

void expect_full_image(const std::string& root, std::uint32_t base) {
  auto owner = [&](const std::string& rel, std::uint32_t uid, std::uint32_t gid) {
    struct stat st = lstat_of(root + "/" + rel);
    EXPECT_EQ(st.st_uid, base + uid) << rel;
    EXPECT_EQ(st.st_gid, base + gid) << rel;
    return st;
  };
  struct stat st = owner(".", 0, 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtime, 1500000000);
  st = owner("etc", 0, 0);
  EXPECT_EQ(st.st_mtime, 1500000001) << "directory mtime must survive its children";
  st = owner("etc/hostname", 0, 0);
  EXPECT_EQ(testing::read_file(root + "/etc/hostname"), "box\n");
  EXPECT_EQ(st.st_mtime, 1500000002);
  st = owner("etc/shadow", 0, 42);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  st = owner("etc/empty", 0, 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  st = owner("usr", 0, 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  st = owner("usr/bin/passwd", 0, 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  st = owner("usr/bin/wall", 0, 5);
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  owner("usr/bin/ping", 0, 0);
  auto caps = testing::xattr_of(root + "/usr/bin/ping", "security.capability");
  ASSERT_TRUE(caps) << "security.capability lost";
  EXPECT_EQ(file_caps_rootid(*caps), base) << "file capability must name the instance's root";

  struct stat big = owner("usr/bin/big", 0, 0);
  struct stat link = owner("usr/bin/big-link", 0, 0);
  EXPECT_EQ(big.st_ino, link.st_ino) << "hardlink must stay a hardlink";
  EXPECT_EQ(big.st_nlink, 2u);
  EXPECT_EQ(testing::read_file(root + "/usr/bin/big"), big_data());

  st = owner("bin", 0, 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_mtime, 1500000006);
  char target[64] = {};
  ASSERT_GT(readlink((root + "/bin").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "usr/bin");
  st = owner("tmp", 0, 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  st = owner("var/mail", 0, 8);
  EXPECT_EQ(st.st_mode & 07777, 02775u);
  st = owner("home/www", 33, 33);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtime, 1500000007);
  owner("home/www/index.html", 33, 33);
  EXPECT_EQ(testing::xattr_of(root + "/home/www/index.html", "user.note"), "hello");
  // Device nodes of an image are never created (docs/security.md), nor links to them.
  owner("dev", 0, 0);
  EXPECT_FALSE(exists(root + "/dev/null"));
  EXPECT_FALSE(exists(root + "/dev/sda"));
  EXPECT_FALSE(exists(root + "/dev/disk"));
  EXPECT_FALSE(exists(root + "/dev/zero")) << "the file it replaced goes, as tar would";
  st = owner("run/fifo", 1000, 1000);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
}

class ExtractFormats : public ::testing::TestWithParam<std::string> {};

TEST_P(ExtractFormats, EveryEntryTypeShiftedInTheSamePass) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  write_full_image(archive, GetParam());
  ExtractStats stats = extract_archive(archive, {{tmp / "a", shift_at(kBase)}, {tmp / "b", shift_at(kBase + 65536)}},
                                       {nullptr, 2, false});
  EXPECT_GE(stats.entries, 20u);
  const std::string devices = "4 device node(s) of the image not created, as for every image: "
                              "dev/disk, dev/null, dev/sda, ...";
  EXPECT_EQ(std::count(stats.warnings.begin(), stats.warnings.end(), devices), 1) << "one warning names them";
  expect_full_image(tmp / "a", kBase);
  expect_full_image(tmp / "b", kBase + 65536);
}

INSTANTIATE_TEST_SUITE_P(Compressions, ExtractFormats, ::testing::Values("none", "gzip", "xz", "zstd", "bzip2"));

TEST(Extract, ChownPassGivesTheSameTree) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_full_image(archive, "gzip");
  extract_archive(archive, {{tmp / "a", shift_at(kBase)}}, {nullptr, 1, true});
  expect_full_image(tmp / "a", kBase);
}

// Where the engine cannot check io_uring's release of files it writes them
// with plain calls, as their owner: the tree must be the same.
TEST(Extract, PlainFileWritesGiveTheSameTree) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_full_image(archive, "gzip");
  ExtractOptions options{nullptr, 2, false, true};
  extract_archive(archive, {{tmp / "a", shift_at(kBase)}, {tmp / "b", shift_at(kBase + 65536)}}, options);
  expect_full_image(tmp / "a", kBase);
  expect_full_image(tmp / "b", kBase + 65536);
  options.chown_pass = true;
  extract_archive(archive, {{tmp / "c", shift_at(kBase)}}, options);
  expect_full_image(tmp / "c", kBase);
}

TEST(Extract, NoMappingKeepsImageIds) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  write_full_image(archive, "none");
  extract_archive(archive, {{tmp / "a", IdShift()}});
  expect_full_image(tmp / "a", 0);
  // Without a shift the capability stays as the image has it (host root).
  EXPECT_EQ(file_caps_rootid(*testing::xattr_of(tmp / "a/usr/bin/ping", "security.capability")), 0u);
}

TEST(Extract, OwnerOutsideTheRangeIsRefusedUnlessSquashed) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  {
    ArchiveBuilder b(archive);
    b.file("ok", "x");
    b.file("nobody-file", "x", {.uid = 65534, .gid = 65534});
  }
  IdShift small({{0, kBase, 1000}}, {{0, kBase, 1000}}, OwnershipPolicy::shift);
  try {
    extract_archive(archive, {{tmp / "a", small}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nobody-file"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(tmp / "a")) << "a failed extraction leaves nothing";

  IdShift squash({{0, kBase, 1000}}, {{0, kBase, 1000}}, OwnershipPolicy::squash);
  extract_archive(archive, {{tmp / "b", squash}});
  EXPECT_EQ(lstat_of(tmp / "b/nobody-file").st_uid, kBase);

  IdShift flat({{0, kBase, 65536}}, {{0, kBase, 65536}}, OwnershipPolicy::flat);
  extract_archive(archive, {{tmp / "c", flat}});
  EXPECT_EQ(lstat_of(tmp / "c/nobody-file").st_uid, kBase);
  EXPECT_EQ(lstat_of(tmp / "c/nobody-file").st_gid, kBase);
}

TEST(Extract, LaterEntryReplacesEarlierFile) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  {
    ArchiveBuilder b(archive);
    b.file("f", "old");
    b.file("f", "new");
    b.file("g", "file");
    b.symlink("g", "f");
  }
  extract_archive(archive, {{tmp / "a", shift_at(kBase)}});
  EXPECT_EQ(testing::read_file(tmp / "a/f"), "new");
  EXPECT_TRUE(S_ISLNK(lstat_of(tmp / "a/g").st_mode));
}

TEST(Extract, CancelLeavesNothing) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  write_full_image(archive, "none");
  std::atomic<bool> cancel{true};
  EXPECT_THROW(extract_archive(archive, {{tmp / "a", shift_at(kBase)}}, {&cancel, 1, false}), Error);
  EXPECT_FALSE(exists(tmp / "a"));
}

TEST(Extract, RefusesANonEmptyTarget) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar";
  write_full_image(archive, "none");
  ASSERT_EQ(mkdir((tmp / "a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((tmp / "a/keep").c_str(), 0755), 0);
  EXPECT_THROW(extract_archive(archive, {{tmp / "a", shift_at(kBase)}}), Error);
  EXPECT_TRUE(exists(tmp / "a/keep")) << "an existing tree is never touched";
}

TEST(PrepareFleet, ExtractsEveryInstanceAndReusesExisting) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_full_image(archive, "gzip");
  std::vector<InstanceRootfs> instances;
  for (int i = 0; i < 3; ++i) {
    std::uint32_t base = kBase + static_cast<std::uint32_t>(i) * 65536;
    instances.push_back({"haco-test-" + std::to_string(i), tmp / ("roots/" + std::to_string(i)), archive,
                         {{0, base, 65536}}, {{0, base, 65536}}, OwnershipPolicy::shift});
  }
  PrepareOptions opt;
  opt.strategy = Strategy::extract;
  opt.data_root = tmp / "data";
  opt.parallel = 2;
  auto prepared = prepare_fleet(instances, opt);
  ASSERT_EQ(prepared.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(prepared[i].reused);
    EXPECT_EQ(prepared[i].strategy, Strategy::extract);
    expect_full_image(instances[i].rootfs, kBase + static_cast<std::uint32_t>(i) * 65536);
  }
  auto again = prepare_fleet(instances, opt);
  for (const auto& p : again) EXPECT_TRUE(p.reused);
  teardown_fleet(prepared, true);
  for (const auto& inst : instances) EXPECT_FALSE(exists(inst.rootfs));
}

// The directory-fd caches stay within the descriptor budget extract_archive
// sets for itself (32 per tree plus slack), however many directories.
TEST(Extract, ManyDirectoriesStayWithinTheDescriptorBudget) {
  TempDir tmp;
  const std::string archive = tmp / "dirs.tar";
  {
    ArchiveBuilder b(archive);
    for (int d = 0; d < 300; ++d) b.file("d" + std::to_string(d) + "/f", "");
  }
  constexpr int kTrees = 8;
  std::vector<ExtractTarget> targets;
  for (int i = 0; i < kTrees; ++i) targets.push_back({tmp / ("t" + std::to_string(i)), shift_at(kBase)});
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit budget{kTrees * 34 + 1024, saved.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &budget), 0);
  try {
    extract_archive(archive, targets, {nullptr, 1, false});
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_TRUE(exists(tmp / "t7/d299/f"));
}

TEST(RemoveTree, RefusesToCrossAMount) {
  TempDir tmp;
  ASSERT_EQ(mkdir((tmp / "t").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((tmp / "t/m").c_str(), 0755), 0);
  ASSERT_EQ(mount("haco-test", (tmp / "t/m").c_str(), "tmpfs", 0, "size=1m"), 0);
  ASSERT_EQ(mkdir((tmp / "t/m/precious").c_str(), 0755), 0);
  EXPECT_THROW(remove_tree(tmp / "t"), Error);
  EXPECT_TRUE(exists(tmp / "t/m/precious"));
  ASSERT_EQ(umount2((tmp / "t/m").c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace haco::rootfs
