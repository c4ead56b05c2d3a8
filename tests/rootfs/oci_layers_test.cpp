// OCI layers on disk (root): the layer cache stores whiteouts as overlayfs
// does, the extract strategy applies layers in order with ids shifted, and a
// hostile layer is confined as a tarball is.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/oci.hpp"
#include "haco/rootfs.hpp"
#include "oci_layout_builder.hpp"
#include "rootfs/oci_layers.hpp"
#include "temp_dir.hpp"

namespace haco::rootfs {
namespace {

using oci::testing::LayoutBuilder;
using testing::ArchiveBuilder;
using testing::Meta;
using testing::TempDir;

class OciLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "whiteouts (mknod) and trusted xattrs need root";
  }
  // Adds the gzip layer written by `build` to the layout; its (digest, diff_id).
  std::pair<std::string, std::string> layer(LayoutBuilder& layout, const std::function<void(ArchiveBuilder&)>& build) {
    const std::string path = dir_ / ("layer" + std::to_string(serial_++) + ".tar.gz");
    {
      ArchiveBuilder a(path, "gzip");
      build(a);
    }
    const std::string diff_id = "sha256:" + uncompressed_digest(path);
    return {layout.blob_file(path), diff_id};
  }
  void two_layer_image(LayoutBuilder& layout) {
    auto base = layer(layout, [](ArchiveBuilder& a) {
      a.dir("etc").file("etc/passwd", "root:x:0:0::/:/bin/sh\n").file("etc/gone", "old", Meta{.mode = 0600, .uid = 7, .gid = 7});
      a.dir("var").dir("var/www").file("var/www/old", "old");
    });
    auto top = layer(layout, [](ArchiveBuilder& a) {
      a.dir("etc").file("etc/.wh.gone", "");
      a.dir("var/www").file("var/www/.wh..wh..opq", "").file("var/www/new", "new");
      a.file("etc/forged", "x", Meta{.mode = 0644, .xattrs = {{"trusted.overlay.redirect", "/etc/passwd"}}});
    });
    layout.image({base, top}, "latest");
  }

  TempDir dir_;
  unsigned serial_ = 0;
};

TEST_F(OciLayers, TheCacheStoresWhiteoutsAndOpaqueDirectoriesAsOverlayDoes) {
  LayoutBuilder layout(dir_ / "layout");
  two_layer_image(layout);
  const oci::Image image = oci::read_image(dir_ / "layout");
  CachedLayers cached = ensure_cached_layers(image, dir_ / "data", nullptr);
  ASSERT_EQ(cached.trees.size(), 2u);
  EXPECT_EQ(cached.extracted_now, 2u);
  const std::string& top = cached.trees.front();
  EXPECT_EQ(top, dir_ / "data/layers/" + image.layers[1].diff_id.substr(7)) << "top first, named by diff_id";
  struct stat st {};
  ASSERT_EQ(lstat((top + "/etc/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  char value[8] = {};
  ASSERT_EQ(lgetxattr((top + "/var/www").c_str(), "trusted.overlay.opaque", value, sizeof value), 1);
  EXPECT_EQ(value[0], 'y');
  EXPECT_LT(lgetxattr((top + "/etc/forged").c_str(), "trusted.overlay.redirect", value, sizeof value), 0)
      << "a layer's own overlay xattrs are dropped";
  EXPECT_NE(lstat((top + "/var/www/.wh..wh..opq").c_str(), &st), 0);
  EXPECT_EQ(cached.uids, (std::vector<std::uint32_t>{0, 7}));

  CachedLayers again = ensure_cached_layers(image, dir_ / "data", nullptr);
  EXPECT_EQ(again.extracted_now, 0u);
  EXPECT_EQ(again.trees, cached.trees);
}

TEST_F(OciLayers, ExtractAppliesTheLayersInOrderWithIdsShifted) {
  LayoutBuilder layout(dir_ / "layout");
  two_layer_image(layout);
  const oci::Image image = oci::read_image(dir_ / "layout");
  IdShift shift({{0, 300000, 100}}, {{0, 300000, 100}}, OwnershipPolicy::shift);
  extract_image(image, dir_ / "data", {ExtractTarget{dir_ / "root", shift}}, {});
  struct stat st {};
  EXPECT_NE(lstat((dir_ / "root/etc/gone").c_str(), &st), 0) << "whited out";
  EXPECT_NE(lstat((dir_ / "root/var/www/old").c_str(), &st), 0) << "hidden by the opaque directory";
  ASSERT_EQ(lstat((dir_ / "root/var/www/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
  ASSERT_EQ(lstat((dir_ / "root/etc/passwd").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
}

TEST_F(OciLayers, AHostileLayerIsConfinedAsATarballIs) {
  mkdir((dir_ / "outside").c_str(), 0755);
  LayoutBuilder layout(dir_ / "layout");
  auto base = layer(layout, [&](ArchiveBuilder& a) { a.symlink("etc", dir_ / "outside"); });
  auto top = layer(layout, [](ArchiveBuilder& a) { a.file("etc/planted", "x"); });
  layout.image({base, top}, "latest");
  const oci::Image image = oci::read_image(dir_ / "layout");
  EXPECT_THROW(extract_image(image, dir_ / "data", {ExtractTarget{dir_ / "root", IdShift()}}, {}), Error);
  struct stat st {};
  EXPECT_NE(lstat((dir_ / "outside/planted").c_str(), &st), 0);

  LayoutBuilder bad(dir_ / "bad");
  auto whiteout = layer(bad, [](ArchiveBuilder& a) { a.dir("etc").file("etc/.wh...", ""); });
  bad.image({whiteout}, "latest");
  EXPECT_THROW(ensure_cached_layers(oci::read_image(dir_ / "bad"), dir_ / "data", nullptr), Error);
}

TEST_F(OciLayers, ALayerWhoseContentIsNotItsDiffIdIsRefused) {
  LayoutBuilder layout(dir_ / "layout");
  auto l = layer(layout, [](ArchiveBuilder& a) { a.file("a", "x"); });
  layout.image({{l.first, "sha256:" + std::string(64, '1')}}, "latest");
  try {
    ensure_cached_layers(oci::read_image(dir_ / "layout"), dir_ / "data", nullptr);
    FAIL() << "a layer was cached under a diff_id it does not have";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(l.second), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sha256:" + std::string(64, '1')), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco::rootfs
