// OCI images without root: the reference forms, the index/manifest/config
// parsers, digests checked, the whiteout names refused, and which entries
// survive layers applied in order.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "archive_builder.hpp"
#include "oci_layout_builder.hpp"
#include "haco/error.hpp"
#include "haco/oci.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/archive_reader.hpp"
#include "rootfs/oci_layers.hpp"
#include "temp_dir.hpp"

namespace haco::oci {
namespace {

using rootfs::testing::ArchiveBuilder;
using testing::LayoutBuilder;
using rootfs::testing::TempDir;

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');

std::string index_with(const std::string& manifests) { return R"({"schemaVersion":2,"manifests":[)" + manifests + "]}"; }
std::string descriptor(const std::string& digest, const std::string& tag) {
  std::string d = R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":")" + digest + "\"";
  if (!tag.empty()) d += R"(,"annotations":{"org.opencontainers.image.ref.name":")" + tag + "\"}";
  return d + "}";
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TEST(OciReference, SplitsTagAndDigestFromTheLongestExistingPrefix) {
  TempDir dir;
  mkdir((dir / "php").c_str(), 0755);
  write(dir / "saved.tar", "x");
  EXPECT_EQ(parse_reference(dir / "php"), (Reference{dir / "php", false, "", ""}));
  EXPECT_EQ(parse_reference(dir / "php:8.2"), (Reference{dir / "php", false, "8.2", ""}));
  EXPECT_EQ(parse_reference(dir / "php@" + kDigestA), (Reference{dir / "php", false, "", kDigestA}));
  EXPECT_EQ(parse_reference(dir / "saved.tar"), (Reference{dir / "saved.tar", true, "", ""}));
  EXPECT_EQ(parse_reference(dir / "saved.tar:busybox:v2"), (Reference{dir / "saved.tar", true, "busybox:v2", ""}));
  EXPECT_EQ(parse_reference(dir / "saved.tar:busybox"), (Reference{dir / "saved.tar", true, "busybox:latest", ""}));
  // A directory whose own name holds the ':' wins over a tag.
  mkdir((dir / "php:8.2").c_str(), 0755);
  EXPECT_EQ(parse_reference(dir / "php:8.2"), (Reference{dir / "php:8.2", false, "", ""}));
}

TEST(OciReference, RefusesWhatIsNotThere) {
  TempDir dir;
  mkdir((dir / "php").c_str(), 0755);
  EXPECT_THROW(parse_reference(dir / "nothing:1"), InputError);
  EXPECT_THROW(parse_reference(dir / "php@sha256:abc"), InputError);
  EXPECT_THROW(parse_reference(dir / "php:"), InputError);
}

TEST(OciIndex, ChoosesByTagDigestOrTheOnlyManifest) {
  const std::string two = index_with(descriptor(kDigestA, "latest") + "," + descriptor(kDigestB, "8.2"));
  EXPECT_EQ(select_manifest(two, Reference{"/x", false, "8.2", ""}, "index"), kDigestB);
  EXPECT_EQ(select_manifest(two, Reference{"/x", false, "", ""}, "index"), kDigestA) << "latest by default";
  EXPECT_EQ(select_manifest(two, Reference{"/x", false, "", kDigestB}, "index"), kDigestB);
  const std::string one = index_with(descriptor(kDigestB, ""));
  EXPECT_EQ(select_manifest(one, Reference{"/x", false, "", ""}, "index"), kDigestB);
  try {
    select_manifest(two, Reference{"/x", false, "9.0", ""}, "index");
    FAIL() << "an unknown tag was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("latest, 8.2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(select_manifest(index_with(descriptor("sha512:00", "latest")), Reference{}, "index"), InputError);
  EXPECT_THROW(select_manifest("[]", Reference{}, "index"), InputError);
}

TEST(OciManifest, ListsLayersAndRefusesForeignMediaTypes) {
  const std::string manifest = R"({"schemaVersion":2,"config":{"digest":")" + kDigestA +
                               R"("},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                               kDigestB + R"("},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
                               kDigestA + R"("}]})";
  Manifest m = parse_manifest(manifest, "manifest");
  EXPECT_EQ(m.config_digest, kDigestA);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].digest, kDigestB);
  const std::string foreign = R"({"config":{"digest":")" + kDigestA +
                              R"("},"layers":[{"mediaType":"application/vnd.example.squashfs","digest":")" + kDigestB +
                              R"("}]})";
  EXPECT_THROW(parse_manifest(foreign, "manifest"), InputError);
}

TEST(OciConfig, ReadsTheDefaultsAndDiffIds) {
  const std::string config = R"({"config":{"Entrypoint":["/bin/sleep"],"Cmd":["1000"],"Env":["A=1","PATH=/bin"],
    "WorkingDir":"/www","User":"www"},"rootfs":{"type":"layers","diff_ids":[")" + kDigestA + R"("]}})";
  std::vector<std::string> diff_ids;
  ImageConfig c = parse_config(config, "config", &diff_ids);
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/bin/sleep"});
  EXPECT_EQ(c.cmd, std::vector<std::string>{"1000"});
  EXPECT_EQ(c.env, (std::vector<std::string>{"A=1", "PATH=/bin"}));
  EXPECT_EQ(c.working_dir, "/www");
  EXPECT_EQ(c.user, "www");
  EXPECT_EQ(diff_ids, std::vector<std::string>{kDigestA});
  EXPECT_THROW(parse_config(R"({"config":{"Env":["NOEQUALS"]}})", "config"), InputError);
  EXPECT_THROW(parse_config(R"({"config":{"WorkingDir":"relative"}})", "config"), InputError);
}

TEST(OciArchiveManifest, ChoosesByRepoTagAsDockerAndPodmanWriteIt) {
  const std::string manifest = R"([{"Config":"c.json","RepoTags":["docker.io/library/busybox:v2"],"Layers":["a.tar"]},
                                   {"Config":"d.json","RepoTags":["localhost/php:8.2"],"Layers":["b.tar","c.tar"]}])";
  EXPECT_EQ(parse_archive_manifest(manifest, Reference{"/f", true, "busybox:v2", ""}, "m").config, "c.json");
  EXPECT_EQ(parse_archive_manifest(manifest, Reference{"/f", true, "php:8.2", ""}, "m").layers.size(), 2u);
  EXPECT_THROW(parse_archive_manifest(manifest, Reference{"/f", true, "", ""}, "m"), InputError) << "two images";
  EXPECT_THROW(parse_archive_manifest(R"([{"Config":"c","Layers":["../x.tar"]}])", Reference{"/f", true, "", ""}, "m"),
               InputError);
}

TEST(OciApplyConfig, TheDefinitionWinsAndSlashIsTheLastResort) {
  ImageConfig image{{"/bin/sleep"}, {"1000"}, {"A=image", "B=image"}, "/www", "www"};
  ContainerSpec unset;
  apply_image_config(unset, image);
  EXPECT_EQ(unset.command, (std::vector<std::string>{"/bin/sleep", "1000"}));
  EXPECT_EQ(unset.environment, (std::vector<std::string>{"A=image", "B=image"}));
  EXPECT_EQ(unset.workdir, "/www");
  EXPECT_EQ(unset.user, "www");

  ContainerSpec own;
  own.command = {"/bin/sh"};
  own.environment = {"B=mine"};
  own.workdir = "/";
  own.user = "0:0";
  apply_image_config(own, image);
  EXPECT_EQ(own.command, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(own.environment, (std::vector<std::string>{"A=image", "B=mine"}));
  EXPECT_EQ(own.workdir, "/") << "a definition's explicit / is kept over the image's WorkingDir";
  EXPECT_EQ(own.user, "0:0");

  ContainerSpec bare;
  apply_image_config(bare, ImageConfig{{}, {"/bin/true"}, {}, "", ""});
  EXPECT_EQ(bare.workdir, "/");
  ContainerSpec nothing;
  EXPECT_THROW(apply_image_config(nothing, ImageConfig{}), InputError);
}

TEST(OciLayout, ReadsLayersBottomFirstAndChecksEveryDocument) {
  TempDir dir;
  LayoutBuilder layout(dir.path());
  layout.image({{kDigestA, kDigestB}, {kDigestB, kDigestA}}, "latest");
  Image image = read_image(dir.path());
  ASSERT_EQ(image.layers.size(), 2u);
  EXPECT_EQ(image.layers[0].digest, kDigestA);
  EXPECT_EQ(image.layers[0].diff_id, kDigestB);
  EXPECT_EQ(image.layers[1].blob, dir.path() + "/blobs/sha256/" + std::string(64, 'b'));
  EXPECT_EQ(image.config.cmd, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(read_image(dir.path() + ":latest").id, image.id);

  // A manifest blob whose content no longer matches its name.
  const std::string manifest = image.id.substr(7);
  write(dir.path() + "/blobs/sha256/" + manifest, R"({"config":{},"layers":[]})");
  try {
    read_image(dir.path());
    FAIL() << "a tampered manifest was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("but it is named " + image.id), std::string::npos) << e.what();
  }
}

TEST(OciLayerBlobs, AMismatchNamesTheBlobAndBothDigests) {
  TempDir dir;
  LayoutBuilder layout(dir.path());
  ArchiveBuilder(dir / "layer.tar", "gzip").file("a", "x").close();
  const std::string good = layout.blob_file(dir / "layer.tar");
  layout.image({{good, "sha256:" + std::string(64, '0')}}, "latest");
  Image image = read_image(dir.path());
  EXPECT_NO_THROW(rootfs::LayerBlobs(image, {true}, dir / "data", nullptr));
  // The same blob file, changed after the manifest named it.
  write(image.layers[0].blob, "tampered");
  try {
    rootfs::LayerBlobs blobs(image, {true}, dir / "data", nullptr);
    FAIL() << "a tampered layer was accepted";
  } catch (const InputError& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find(image.layers[0].blob), std::string::npos) << text;
    EXPECT_NE(text.find("sha256:" + rootfs::bytes_digest("tampered")), std::string::npos) << text;
    EXPECT_NE(text.find(good), std::string::npos) << text;
  }
}

TEST(OciDockerArchive, FollowsLinkedLayersAndChecksThemAgainstTheDiffIds) {
  TempDir dir;
  ArchiveBuilder(dir / "layer.tar").file("etc/hostname", "h\n").close();
  std::string layer_data;
  {
    std::ifstream in(dir / "layer.tar", std::ios::binary);
    layer_data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string diff_id = "sha256:" + rootfs::bytes_digest(layer_data);
  const std::string config = R"({"config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[")" + diff_id + R"("]}})";
  const std::string config_name = rootfs::bytes_digest(config) + ".json";
  auto archive_with = [&](const std::string& path, const std::string& data) {
    ArchiveBuilder(path)
        .file("manifest.json", R"([{"Config":")" + config_name +
                                   R"(","RepoTags":["docker.io/library/hello:1"],"Layers":["0123/layer.tar"]}])")
        .file(config_name, config)
        .file("shared.tar", data)
        .symlink("0123/layer.tar", "../shared.tar")
        .close();
  };
  archive_with(dir / "saved.tar", layer_data);
  Image image = read_image(dir / "saved.tar:hello:1");
  ASSERT_EQ(image.layers.size(), 1u);
  EXPECT_EQ(image.layers[0].blob, "shared.tar");
  EXPECT_EQ(image.layers[0].diff_id, diff_id);
  EXPECT_EQ(image.id, "sha256:" + config_name.substr(0, 64));
  {
    rootfs::LayerBlobs blobs(image, {true}, dir / "data", nullptr);
    EXPECT_EQ(rootfs::file_digest(blobs.path(0)), diff_id.substr(7));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir / "data/staging")) << "the copies go with the object";

  archive_with(dir / "changed.tar", layer_data + std::string(1024, '\0'));
  Image changed = read_image(dir / "changed.tar");
  try {
    rootfs::LayerBlobs blobs(changed, {true}, dir / "data", nullptr);
    FAIL() << "a layer that is not its diff_id was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(diff_id), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shared.tar"), std::string::npos) << e.what();
  }
}

TEST(OciWhiteouts, RefusesNamesThatAreNotFileNames) {
  EXPECT_EQ(rootfs::whiteout_target(".wh.index.html", "x"), "index.html");
  EXPECT_THROW(rootfs::whiteout_target(".wh.", "x"), Error);
  EXPECT_THROW(rootfs::whiteout_target(".wh..", "x"), Error);
  EXPECT_THROW(rootfs::whiteout_target(".wh...", "x"), Error);
  TempDir dir;
  ArchiveBuilder(dir / "bad.tar").file("etc/.wh...", "").close();
  EXPECT_THROW(rootfs::plan_flattened({dir / "bad.tar"}, nullptr), Error);
  ArchiveBuilder(dir / "escape.tar").file("etc/../../.wh.passwd", "").close();
  EXPECT_THROW(rootfs::plan_flattened({dir / "escape.tar"}, nullptr), Error);
}

TEST(OciFlatten, WhiteoutsAndOpaqueDirectoriesRemoveLowerEntriesOnly) {
  TempDir dir;
  ArchiveBuilder(dir / "0.tar")
      .dir("etc")                 // 0
      .file("etc/passwd", "a")    // 1
      .file("etc/gone", "a")      // 2
      .dir("var")                 // 3
      .dir("var/www")             // 4
      .file("var/www/old", "a")   // 5
      .dir("lib")                 // 6
      .file("lib/x", "a")         // 7
      .close();
  ArchiveBuilder(dir / "1.tar")
      .file("etc/.wh.gone", "")        // 0
      .dir("var/www")                  // 1
      .file("var/www/.wh..wh..opq", "")  // 2
      .file("var/www/new", "b")        // 3
      .file("lib", "now a file")       // 4
      .file("etc/passwd", "b")         // 5
      .close();
  auto keep = rootfs::plan_flattened({dir / "0.tar", dir / "1.tar"}, nullptr);
  EXPECT_EQ(keep[0], (std::vector<char>{1, 0, 0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(keep[1], (std::vector<char>{0, 1, 0, 1, 1, 1}));
}

}  // namespace
}  // namespace haco::oci
