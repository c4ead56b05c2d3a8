// The overlay strategy: a cached image, an idmapped lower layer and an upper
// layer per instance, checked from the host; teardown leaves no mount.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <dirent.h>

#include <fstream>
#include <thread>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/mounts.hpp"
#include "temp_dir.hpp"
#include "tree_checks.hpp"

namespace haco::rootfs {
namespace {

using testing::ArchiveBuilder;
using testing::TempDir;
using testing::exists;
using testing::lstat_of;

constexpr std::uint32_t kBase = 400000;

void write_image(const std::string& path) {
  ArchiveBuilder b(path, "gzip");
  b.dir("./", {.mode = 0755});
  b.file("etc/hostname", "box\n", {.mode = 0644, .mtime = 1500000002});
  b.file("etc/shadow", "root:*:\n", {.mode = 0640, .gid = 42});
  b.file("usr/bin/passwd", "ELF", {.mode = 04755});
  b.file("usr/bin/ping", "ELF", {.mode = 0755, .xattrs = {{"security.capability", testing::caps_v2(1u << 13)}}});
  b.hardlink("usr/bin/passwd-link", "usr/bin/passwd");
  b.symlink("bin", "usr/bin");
  b.dir("home/www", {.mode = 0750, .uid = 33, .gid = 33});
  b.file("home/www/index.html", "<html/>", {.uid = 33, .gid = 33});
  b.device("dev/null", AE_IFCHR, 1, 3, {.mode = 0666});
  b.device("run/fifo", AE_IFIFO, 0, 0, {.mode = 0620, .uid = 1000, .gid = 1000});
}

struct Fleet {
  std::vector<InstanceRootfs> instances;
  PrepareOptions options;
};

Fleet make_fleet(const TempDir& tmp, const std::string& archive, int n) {
  Fleet f;
  for (int i = 0; i < n; ++i) {
    std::uint32_t base = kBase + static_cast<std::uint32_t>(i) * 65536;
    f.instances.push_back({"haco-ovl-" + std::to_string(i), tmp / ("roots/" + std::to_string(i)), archive,
                           {{0, base, 65536}}, {{0, base, 65536}}, OwnershipPolicy::shift});
  }
  f.options.strategy = Strategy::overlay;
  f.options.data_root = tmp / "data";
  f.options.parallel = 2;
  return f;
}

TEST(Overlay, IdmappedLowerShiftsEveryEntryAndIsolatesInstances) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 3);
  std::vector<std::string> events;
  f.options.progress = [&](const std::string& instance, std::string_view e) {
    events.push_back(instance + ": " + std::string(e));
  };
  auto prepared = prepare_fleet(f.instances, f.options);
  ASSERT_EQ(prepared.size(), 3u);
  for (const std::string& e : events)
    EXPECT_EQ(e.find("unavailable"), std::string::npos) << "overlay fell back on a kernel that supports it: " << e;

  for (int i = 0; i < 3; ++i) {
    const PreparedRootfs& p = prepared[i];
    const std::uint32_t base = kBase + static_cast<std::uint32_t>(i) * 65536;
    const std::string& root = p.rootfs;
    ASSERT_EQ(p.strategy, Strategy::overlay);
    EXPECT_TRUE(is_mount_point(root));
    EXPECT_FALSE(p.upper_dir.empty());
    auto owner = [&](const std::string& rel, std::uint32_t uid, std::uint32_t gid) {
      struct stat st = lstat_of(root + "/" + rel);
      EXPECT_EQ(st.st_uid, base + uid) << rel;
      EXPECT_EQ(st.st_gid, base + gid) << rel;
      return st;
    };
    EXPECT_EQ(owner(".", 0, 0).st_mode & 07777, 0755u);
    EXPECT_EQ(owner("etc/shadow", 0, 42).st_mode & 07777, 0640u);
    EXPECT_EQ(owner("usr/bin/passwd", 0, 0).st_mode & 07777, 04755u);
    EXPECT_EQ(owner("usr/bin/passwd", 0, 0).st_ino, owner("usr/bin/passwd-link", 0, 0).st_ino);
    EXPECT_TRUE(S_ISLNK(owner("bin", 0, 0).st_mode));
    EXPECT_EQ(owner("home/www", 33, 33).st_mode & 07777, 0750u);
    owner("home/www/index.html", 33, 33);
    EXPECT_FALSE(exists(root + "/dev/null")) << "a device node of the image reached the overlay";
    EXPECT_TRUE(S_ISFIFO(owner("run/fifo", 1000, 1000).st_mode));
    EXPECT_EQ(lstat_of(root + "/etc/hostname").st_mtime, 1500000002);
    auto caps = testing::xattr_of(root + "/usr/bin/ping", "security.capability");
    ASSERT_TRUE(caps);
    EXPECT_EQ(file_caps_rootid(*caps), base) << "through the idmapped layer the capability names the instance root";
    struct stat upper = lstat_of(p.upper_dir);
    EXPECT_EQ(upper.st_uid, base);
    EXPECT_EQ(upper.st_gid, base);
  }

  // A write inside one instance is seen by no other instance, nor by the cache.
  {
    std::ofstream(prepared[0].rootfs + "/etc/hostname") << "changed\n";
    std::ofstream(prepared[0].rootfs + "/etc/new") << "new\n";
  }
  EXPECT_EQ(testing::read_file(prepared[0].rootfs + "/etc/hostname"), "changed\n");
  EXPECT_EQ(testing::read_file(prepared[1].rootfs + "/etc/hostname"), "box\n");
  EXPECT_FALSE(exists(prepared[1].rootfs + "/etc/new"));
  EXPECT_FALSE(exists(prepared[2].rootfs + "/etc/new"));
  const std::string images = tmp / "data/images";
  const std::string cache = images + "/" + file_digest(archive);
  EXPECT_EQ(testing::read_file(cache + "/etc/hostname"), "box\n");
  EXPECT_FALSE(exists(cache + "/etc/new"));
  EXPECT_EQ(lstat_of(cache + "/etc/hostname").st_uid, 0u) << "the cache keeps the image's own ids";

  // Prepared again: every instance is reused, nothing is mounted twice.
  auto again = prepare_fleet(f.instances, f.options);
  for (const auto& p : again) {
    EXPECT_TRUE(p.reused);
    EXPECT_EQ(p.strategy, Strategy::overlay);
    EXPECT_EQ(mounts_at_or_under(p.rootfs).size(), 1u);
  }

  teardown_fleet(prepared, true);
  EXPECT_TRUE(mounts_at_or_under(tmp.path()).empty()) << "teardown left a mount";
  for (const auto& p : prepared) {
    EXPECT_FALSE(exists(p.rootfs));
    EXPECT_FALSE(exists(p.upper_dir));
  }
  EXPECT_TRUE(exists(cache)) << "the image cache outlives the fleet";
}

// Mount points under `dir` as mountinfo spells them, read without the
// functions under test.
std::vector<std::string> mountinfo_under(const std::string& dir) {
  std::vector<std::string> found;
  for (const MountInfo& m : read_mountinfo())
    if (m.mount_point.rfind(dir + "/", 0) == 0) found.push_back(m.mount_point);
  return found;
}

// A fleet whose data root and rootfs base are symlinks into tmp/real.
Fleet make_symlinked_fleet(const TempDir& tmp, const std::string& archive, int n) {
  for (const char* d : {"real", "real/data", "real/roots"})
    if (mkdir((tmp / d).c_str(), 0755) != 0) throw std::runtime_error(std::string("mkdir ") + d);
  if (symlink("real/data", (tmp / "data-link").c_str()) != 0 || symlink("real/roots", (tmp / "roots-link").c_str()) != 0)
    throw std::runtime_error("symlink");
  Fleet f = make_fleet(tmp, archive, n);
  for (int i = 0; i < n; ++i) f.instances[i].rootfs = tmp / ("roots-link/" + std::to_string(i));
  f.options.data_root = tmp / "data-link";
  return f;
}

TEST(Overlay, ASymlinkedDataRootAndRootfsBaseAreUnmountedKeptAndPurged) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_symlinked_fleet(tmp, archive, 2);
  auto prepared = prepare_fleet(f.instances, f.options);
  ASSERT_EQ(mountinfo_under(tmp.path()), (std::vector<std::string>{tmp / "real/roots/0", tmp / "real/roots/1"}));
  for (const auto& p : prepared) {
    ASSERT_EQ(p.strategy, Strategy::overlay);
    EXPECT_TRUE(is_mount_point(p.rootfs)) << p.rootfs;
    std::ofstream(p.rootfs + "/etc/new") << "kept\n";
  }

  teardown_fleet(prepared, false);
  EXPECT_EQ(mountinfo_under(tmp.path()), std::vector<std::string>{}) << "teardown left an overlay mounted";
  for (const auto& p : prepared) {
    EXPECT_FALSE(exists(p.rootfs)) << "the empty mount point is left";
    EXPECT_EQ(testing::read_file(p.upper_dir + "/etc/new"), "kept\n");
  }

  auto again = prepare_fleet(f.instances, f.options);
  for (const auto& p : again) {
    EXPECT_TRUE(p.reused);
    EXPECT_EQ(p.strategy, Strategy::overlay);
    EXPECT_EQ(testing::read_file(p.rootfs + "/etc/new"), "kept\n");
  }
  // Prepared once more while mounted: recognised as the instances' overlays.
  auto mounted = prepare_fleet(f.instances, f.options);
  for (const auto& p : mounted) {
    EXPECT_TRUE(p.reused);
    EXPECT_EQ(p.strategy, Strategy::overlay) << "the overlay at " << p.rootfs << " was not recognised";
  }
  EXPECT_EQ(mountinfo_under(tmp.path()).size(), 2u) << "nothing is mounted twice";

  teardown_fleet(mounted, true);
  EXPECT_EQ(mountinfo_under(tmp.path()), std::vector<std::string>{});
  for (const auto& p : mounted) {
    EXPECT_FALSE(exists(p.rootfs));
    EXPECT_FALSE(exists(p.upper_dir));
  }
  EXPECT_TRUE(exists(tmp / ("real/data/images/" + file_digest(archive) + "/etc/hostname")))
      << "the image cache outlives the fleet";
}

// A fleet's teardown reads what is mounted where once for all its
// instances: one whose rootfs has another mount on top keeps its overlay
// and every tree, the others go.
TEST(Overlay, FleetPurgeKeepsTheInstanceWhoseRootfsIsCoveredAndRemovesTheOthers) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 3);
  auto prepared = prepare_fleet(f.instances, f.options);
  const PreparedRootfs& covered = prepared[1];
  std::ofstream(covered.rootfs + "/etc/new") << "precious\n";
  ASSERT_EQ(mount("haco-test-over", covered.rootfs.c_str(), "tmpfs", 0, "size=1m"), 0);
  try {
    teardown_fleet(prepared, true);
    ADD_FAILURE() << "purged under a mount that is not the overlay";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to unmount " + covered.rootfs), std::string::npos) << e.what();
  }
  for (std::size_t i : {0u, 2u}) {
    EXPECT_FALSE(exists(prepared[i].rootfs)) << prepared[i].rootfs;
    EXPECT_FALSE(exists(prepared[i].upper_dir)) << prepared[i].upper_dir;
  }
  ASSERT_EQ(umount2(covered.rootfs.c_str(), MNT_DETACH), 0);
  EXPECT_EQ(testing::read_file(covered.rootfs + "/etc/new"), "precious\n");
  EXPECT_EQ(testing::read_file(covered.upper_dir + "/etc/new"), "precious\n");
  EXPECT_EQ(mountinfo_under(tmp.path()).size(), 1u);

  teardown_fleet(prepared, true);
  EXPECT_EQ(mountinfo_under(tmp.path()), std::vector<std::string>{});
  EXPECT_FALSE(exists(covered.rootfs));
  EXPECT_FALSE(exists(covered.upper_dir));
}

TEST(Overlay, PurgeNeverDeletesThroughALiveOverlayReachedThroughASymlink) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_symlinked_fleet(tmp, archive, 1);
  auto prepared = prepare_fleet(f.instances, f.options);
  const PreparedRootfs& p = prepared[0];
  std::ofstream(p.rootfs + "/etc/new") << "precious\n";
  const std::string cache = tmp / ("real/data/images/" + file_digest(archive));
  const std::string mounted_at = tmp / "real/roots/0";
  auto intact = [&] {
    EXPECT_EQ(testing::read_file(p.rootfs + "/etc/new"), "precious\n");
    EXPECT_EQ(testing::read_file(p.rootfs + "/etc/hostname"), "box\n");
    EXPECT_EQ(testing::read_file(cache + "/etc/hostname"), "box\n");
    EXPECT_TRUE(exists(cache + "/usr/bin/passwd"));
    EXPECT_EQ(testing::read_file(p.upper_dir + "/etc/new"), "precious\n");
  };

  // Recorded as a plain tree (a state that lost track of the overlay): the
  // purge refuses the mount it finds, by its resolved path.
  PreparedRootfs as_tree = p;
  as_tree.strategy = Strategy::extract;
  as_tree.upper_dir.clear();
  try {
    teardown(as_tree, true);
    ADD_FAILURE() << "purged through a live overlay";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to remove " + p.rootfs + ": " + mounted_at + " is mounted"),
              std::string::npos)
        << e.what();
  }
  intact();

  // Something else mounted over the overlay: not unmounted, not purged.
  ASSERT_EQ(mount("haco-test-over", p.rootfs.c_str(), "tmpfs", 0, "size=1m"), 0);
  try {
    teardown(p, true);
    ADD_FAILURE() << "purged under a mount that is not the overlay";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to unmount " + p.rootfs), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tmpfs 'haco-test-over' at " + mounted_at), std::string::npos) << e.what();
  }
  ASSERT_EQ(umount2(p.rootfs.c_str(), MNT_DETACH), 0);
  intact();

  teardown(p, true);
  EXPECT_EQ(mountinfo_under(tmp.path()), std::vector<std::string>{});
  EXPECT_FALSE(exists(p.upper_dir));
  EXPECT_EQ(testing::read_file(cache + "/etc/hostname"), "box\n");
}

TEST(Overlay, TeardownWithoutPurgeUnmountsAndKeepsTheUpperLayer) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 1);
  auto prepared = prepare_fleet(f.instances, f.options);
  std::ofstream(prepared[0].rootfs + "/etc/new") << "new\n";
  teardown(prepared[0], false);
  EXPECT_FALSE(is_mount_point(prepared[0].rootfs));
  EXPECT_FALSE(exists(prepared[0].rootfs)) << "the empty mount point is left";
  EXPECT_TRUE(exists(prepared[0].upper_dir + "/etc/new"));
  teardown(prepared[0], true);
  EXPECT_FALSE(exists(prepared[0].upper_dir));
}

TEST(Overlay, AKeptUpperLayerIsMountedAgainOverItsImage) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 1);
  auto prepared = prepare_fleet(f.instances, f.options);
  EXPECT_FALSE(prepared[0].reused);
  std::ofstream(prepared[0].rootfs + "/etc/new") << "kept\n";
  teardown(prepared[0], false);
  ASSERT_FALSE(is_mount_point(prepared[0].rootfs));

  // As after `down` without --purge, or a reboot: the next prepare mounts the
  // same upper layer again, and the instance finds its own writes.
  auto again = prepare_fleet(f.instances, f.options);
  EXPECT_TRUE(again[0].reused);
  EXPECT_EQ(again[0].strategy, Strategy::overlay);
  EXPECT_TRUE(is_mount_point(again[0].rootfs));
  std::ifstream in(again[0].rootfs + "/etc/new");
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "kept");
  EXPECT_TRUE(exists(again[0].rootfs + "/etc/hostname")) << "the image is the lower layer again";
  teardown(again[0], true);
  EXPECT_FALSE(exists(again[0].upper_dir));
  EXPECT_TRUE(mounts_at_or_under(tmp.path()).empty());
}

TEST(ImageCache, ARewrittenImageIsHashedAgain) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 1);
  auto first = prepare_fleet(f.instances, f.options);
  EXPECT_FALSE(exists(first[0].rootfs + "/etc/motd"));
  teardown_fleet(first, true);

  {
    ArchiveBuilder b(archive, "gzip");
    b.dir("./", {.mode = 0755});
    b.file("etc/motd", "new image\n", {.mode = 0644});
  }
  auto second = prepare_fleet(f.instances, f.options);
  EXPECT_TRUE(exists(second[0].rootfs + "/etc/motd")) << "the digest of the old image was reused";
  EXPECT_FALSE(exists(second[0].rootfs + "/etc/hostname"));
  teardown_fleet(second, true);
  EXPECT_TRUE(mounts_at_or_under(tmp.path()).empty());
}

TEST(Overlay, AFailedInstanceUndoesTheWholeFleet) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 3);
  // The last instance's mapping does not cover uid 1000, which the image uses.
  f.instances[2].uid_map = {{0, kBase + 2 * 65536, 100}};
  f.instances[2].gid_map = {{0, kBase + 2 * 65536, 100}};
  try {
    prepare_fleet(f.instances, f.options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("haco-ovl-2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(mounts_at_or_under(tmp.path()).empty()) << "a failed prepare left a mount";
  for (const auto& inst : f.instances) EXPECT_FALSE(exists(inst.rootfs)) << inst.rootfs;
  EXPECT_FALSE(exists(tmp / "data/instances/haco-ovl-0"));
}

TEST(Overlay, SquashOrFlatOwnershipIsExtracted) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet f = make_fleet(tmp, archive, 1);
  f.instances[0].ownership = OwnershipPolicy::flat;
  auto prepared = prepare_fleet(f.instances, f.options);
  EXPECT_EQ(prepared[0].strategy, Strategy::extract);
  EXPECT_FALSE(is_mount_point(prepared[0].rootfs));
  EXPECT_EQ(lstat_of(prepared[0].rootfs + "/home/www").st_uid, kBase);
  teardown(prepared[0], true);
}

TEST(ImageCache, ConcurrentPreparesExtractTheImageOnce) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  Fleet a = make_fleet(tmp, archive, 1);
  Fleet b = make_fleet(tmp, archive, 1);
  b.instances[0].instance = "haco-ovl-b";
  b.instances[0].rootfs = tmp / "roots/b";
  std::vector<PreparedRootfs> pa, pb;
  std::thread ta([&] { pa = prepare_fleet(a.instances, a.options); });
  std::thread tb([&] { pb = prepare_fleet(b.instances, b.options); });
  ta.join();
  tb.join();
  ASSERT_EQ(pa.size(), 1u);
  ASSERT_EQ(pb.size(), 1u);
  EXPECT_EQ(testing::read_file(pa[0].rootfs + "/etc/hostname"), "box\n");
  EXPECT_EQ(testing::read_file(pb[0].rootfs + "/etc/hostname"), "box\n");
  int trees = 0;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir((tmp / "data/images").c_str()), closedir);
  while (dirent* e = readdir(d.get())) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n.find('.') == std::string::npos) ++trees;
    EXPECT_EQ(n.find(".tmp-"), std::string::npos) << "a temporary tree was left: " << n;
  }
  EXPECT_EQ(trees, 1);
  teardown(pa[0], true);
  teardown(pb[0], true);
}

TEST(Overlay, FallsBackToExtractWhereIdmappedMountsAreRefused) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive);
  // ramfs cannot be idmapped: the kernel refuses MOUNT_ATTR_IDMAP there.
  ASSERT_EQ(mkdir((tmp / "data").c_str(), 0755), 0);
  ASSERT_EQ(mount("haco-test-ramfs", (tmp / "data").c_str(), "ramfs", 0, nullptr), 0);
  Fleet f = make_fleet(tmp, archive, 2);
  std::vector<std::string> said;
  f.options.progress = [&](const std::string& instance, std::string_view e) {
    if (instance.empty()) said.push_back(std::string(e));
  };
  auto prepared = prepare_fleet(f.instances, f.options);
  int fallbacks = 0;
  for (const std::string& s : said) fallbacks += s.find("unavailable") != std::string::npos;
  EXPECT_EQ(fallbacks, 1) << "the fallback is said once";
  for (const auto& p : prepared) {
    EXPECT_EQ(p.strategy, Strategy::extract);
    EXPECT_FALSE(is_mount_point(p.rootfs));
    EXPECT_EQ(lstat_of(p.rootfs + "/home/www").st_uid, lstat_of(p.rootfs).st_uid + 33);
  }
  teardown_fleet(prepared, true);
  EXPECT_EQ(mounts_at_or_under(tmp.path()).size(), 1u) << "only the test's own ramfs is left";
}

}  // namespace
}  // namespace haco::rootfs
