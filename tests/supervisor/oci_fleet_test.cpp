// Fleets from OCI images (scripts/build-busybox-oci.sh): an OCI layout and
// a docker archive, with the overlay and the extract strategy. What the
// layers and the image config did is read from the kernel's view of each
// instance's init: /proc/PID/root, environ, cwd and status.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

std::string oci_images_dir() { return std::string(HACO_BUILD_DIR) + "/images/oci"; }

class OciFleetTest : public FleetTest {
 protected:
  static void SetUpTestSuite() {
    FleetTest::SetUpTestSuite();
    if (!suite_setup_error_.empty()) return;
    auto built = run_command(std::string(HACO_SOURCE_DIR) + "/scripts/build-busybox-oci.sh " + oci_images_dir() +
                             " " + image_);
    if (built.status != 0) suite_setup_error_ = "building the OCI test images failed: " + built.output;
  }
  void SetUp() override {
    FleetTest::SetUp();
    ::unsetenv("HACO_TEST_OCI_OVERRIDE");
  }

  std::string layout(const std::string& tag) const { return oci_images_dir() + "/layout:" + tag; }
  std::string archive() const { return oci_images_dir() + "/busybox-v2.tar:busybox:v2"; }

  CommandResult up_image(const std::string& fleet, const std::string& image, const std::string& strategy,
                         unsigned count, unsigned first = 0) {
    ::setenv("HACO_TEST_OCI_IMAGE", image.c_str(), 1);
    return haco("up --name " + fleet + " --ports " + ports(count, first) + " --no-wait --timeout 20 --rootfs " +
                strategy + " " + std::string(HACO_SOURCE_DIR) + "/tests/supervisor/oci-fleet.haco");
  }

  // The init's pids of `fleet`, once every one runs.
  std::vector<pid_t> init_pids(const std::string& fleet, unsigned count) {
    std::vector<pid_t> pids;
    wait_for(
        [&] {
          auto s = state::load_state({root_, data_, fleet});
          pids.clear();
          if (!s) return false;
          for (const auto& r : s->instances)
            if (r.process.pid > 0 && std::filesystem::exists("/proc/" + std::to_string(r.process.pid)))
              pids.push_back(r.process.pid);
          return pids.size() == count;
        },
        std::chrono::seconds(20));
    return pids;
  }
};

std::vector<std::string> nul_separated(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> out;
  std::string item;
  while (std::getline(in, item, '\0')) out.push_back(item);
  return out;
}

std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      std::string first;
      fields >> first;
      return first;
    }
  return "";
}

bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

bool exists_in(pid_t pid, const std::string& path) {
  struct stat st {};
  return ::lstat(("/proc/" + std::to_string(pid) + "/root" + path).c_str(), &st) == 0;
}

struct Case {
  const char* name;
  bool docker_archive;
  const char* strategy;
};

class OciImageFleet : public OciFleetTest, public ::testing::WithParamInterface<Case> {};

TEST_P(OciImageFleet, LayersAndConfigTakeEffect) {
  const Case c = GetParam();
  auto result = up_image(fleet_, c.docker_archive ? archive() : layout("v2"), c.strategy, 2);
  ASSERT_EQ(result.status, 0) << result.output;
  const auto pids = init_pids(fleet_, 2);
  ASSERT_EQ(pids.size(), 2u) << haco("ps --name " + fleet_).output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet);
  for (const auto& r : fleet->instances) {
    ASSERT_TRUE(r.rootfs) << r.name();
    EXPECT_EQ(r.rootfs->strategy == rootfs::Strategy::overlay, std::string(c.strategy) == "overlay") << r.name();
  }
  for (std::size_t i = 0; i < pids.size(); ++i) {
    const pid_t pid = pids[i];
    const std::string proc = "/proc/" + std::to_string(pid);
    // The layers: a whiteout, a file added, an opaque directory.
    EXPECT_FALSE(exists_in(pid, "/www/index.html")) << "whited out by the upper layer";
    EXPECT_TRUE(exists_in(pid, "/etc/oci-added"));
    EXPECT_TRUE(exists_in(pid, "/var/www/new.html"));
    EXPECT_FALSE(exists_in(pid, "/var/www/index.html")) << "var/www is opaque in the upper layer";
    EXPECT_TRUE(exists_in(pid, "/bin/busybox")) << "the base layer";
    EXPECT_FALSE(exists_in(pid, "/var/www/.wh..wh..opq"));
    // The config: Entrypoint + Cmd, Env, WorkingDir, User (www = 33).
    EXPECT_EQ(nul_separated(proc + "/cmdline"), (std::vector<std::string>{"/bin/sleep", "1000"}));
    const auto env = nul_separated(proc + "/environ");
    EXPECT_TRUE(has(env, "OCI_ENV=from-image")) << ::testing::PrintToString(env);
    EXPECT_TRUE(has(env, "PATH=/bin:/sbin:/usr/bin")) << ::testing::PrintToString(env);
    EXPECT_EQ(std::filesystem::read_symlink(proc + "/cwd").filename(), "www");
    const unsigned host_base = (port_base_ + fleet->instances[i].spec.index) * 100;
    EXPECT_EQ(status_field(pid, "Uid"), std::to_string(host_base + 33));
    EXPECT_EQ(status_field(pid, "Gid"), std::to_string(host_base + 33));
  }
}

INSTANTIATE_TEST_SUITE_P(, OciImageFleet,
                         ::testing::Values(Case{"layout_overlay", false, "overlay"},
                                           Case{"layout_extract", false, "extract"},
                                           Case{"archive_overlay", true, "overlay"},
                                           Case{"archive_extract", true, "extract"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(OciFleetTest, TheDefinitionOverridesTheImageConfig) {
  ::setenv("HACO_TEST_OCI_OVERRIDE", "1", 1);
  auto result = up_image(fleet_, layout("v2"), "overlay", 1);
  ASSERT_EQ(result.status, 0) << result.output;
  const auto pids = init_pids(fleet_, 1);
  ASSERT_EQ(pids.size(), 1u);
  const std::string proc = "/proc/" + std::to_string(pids[0]);
  EXPECT_EQ(nul_separated(proc + "/cmdline"), (std::vector<std::string>{"/bin/sleep", "999"}));
  const auto env = nul_separated(proc + "/environ");
  EXPECT_TRUE(has(env, "OCI_ENV=from-definition")) << ::testing::PrintToString(env);
  EXPECT_FALSE(has(env, "OCI_ENV=from-image"));
  EXPECT_TRUE(has(env, "PATH=/bin:/sbin:/usr/bin")) << "the image's other variables stay";
  EXPECT_EQ(std::filesystem::read_symlink(proc + "/cwd").filename(), "etc");
  EXPECT_EQ(status_field(pids[0], "Uid"), std::to_string(port_base_ * 100));
}

TEST_F(OciFleetTest, TwoImagesSharingABaseLayerShareItsCachedTree) {
  const std::string other = fleet_ + "-other";
  ASSERT_EQ(up_image(fleet_, layout("v2"), "overlay", 1).status, 0);
  // The fixture takes down fleet_ only: this one goes with the test, pass or fail.
  struct Down {
    std::string command;
    ~Down() { run_command(command); }
  } down_other{haco_command("down --purge --name " + other + " --timeout 1")};
  auto second = up_image(other, layout("other"), "overlay", 1, 1);
  ASSERT_EQ(second.status, 0) << second.output;
  const auto pids_a = init_pids(fleet_, 1);
  const auto pids_b = init_pids(other, 1);
  ASSERT_EQ(pids_a.size(), 1u);
  ASSERT_EQ(pids_b.size(), 1u);

  // Three layers in the cache: the base, and each image's own.
  std::set<std::string> trees;
  for (const auto& e : std::filesystem::directory_iterator(data_ + "/layers"))
    if (e.is_directory() && e.path().filename().string()[0] != '.') trees.insert(e.path().filename());
  EXPECT_EQ(trees.size(), 3u);
  // Both instances' records name the base layer's tree as their lowest.
  auto lowest = [&](const std::string& instance) {
    std::ifstream in(data_ + "/instances/" + instance + "/image");
    std::string line, last;
    while (in >> line) last = line;
    return last;
  };
  const std::string base_a = lowest("o-" + std::to_string(port_base_));
  EXPECT_EQ(base_a.substr(0, 7), "sha256:");
  EXPECT_TRUE(trees.count(base_a.substr(7))) << base_a;
  // The same file of the base layer is the same inode of the cached tree
  // under both overlays.
  struct stat a {}, b {}, cached {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pids_a[0]) + "/root/bin/busybox").c_str(), &a), 0);
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pids_b[0]) + "/root/bin/busybox").c_str(), &b), 0);
  ASSERT_EQ(::stat((data_ + "/layers/" + base_a.substr(7) + "/bin/busybox").c_str(), &cached), 0);
  EXPECT_EQ(a.st_ino, cached.st_ino);
  EXPECT_EQ(b.st_ino, cached.st_ino);
}

TEST_F(OciFleetTest, ImagesListsUsersAndPruneRemovesOnlyUnusedLayers) {
  ASSERT_EQ(up_image(fleet_, layout("v2"), "overlay", 1).status, 0);
  // A second fleet leaves the other image's own layer in the cache, unused.
  const std::string other = fleet_ + "-other";
  {
    struct Down {
      std::string command;
      ~Down() { run_command(command); }
    } down_other{haco_command("down --purge --name " + other + " --timeout 1")};
    ASSERT_EQ(up_image(other, layout("other"), "overlay", 1, 1).status, 0);
  }
  auto entries = [&] {
    auto r = haco("images --json");
    EXPECT_EQ(r.status, 0) << r.output;
    return nlohmann::json::parse(r.output).at("entries");
  };
  auto listed = entries();
  ASSERT_EQ(listed.size(), 3u) << listed.dump();
  std::size_t used = 0;
  for (const auto& e : listed) {
    EXPECT_EQ(e.at("kind"), "layer");
    EXPECT_GT(e.at("bytes").get<std::uint64_t>(), 0u);
    if (e.at("fleets") == nlohmann::json::array({fleet_})) ++used;
    else EXPECT_EQ(e.at("fleets"), nlohmann::json::array()) << e.dump();
  }
  EXPECT_EQ(used, 2u) << "the base layer and the v2 layer";

  auto pruned = haco("images prune");
  ASSERT_EQ(pruned.status, 0) << pruned.output;
  EXPECT_NE(pruned.output.find("removed 1 entry"), std::string::npos) << pruned.output;
  listed = entries();
  EXPECT_EQ(listed.size(), 2u) << listed.dump();
  const auto pids = init_pids(fleet_, 1);
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_TRUE(exists_in(pids[0], "/bin/busybox"));

  // Taken down without --purge, the upper layer is kept: its lowers stay.
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1").status, 0);
  for (const auto& e : entries()) EXPECT_EQ(e.at("fleets"), nlohmann::json::array({fleet_ + " (kept)"})) << e.dump();
  pruned = haco("images prune");
  EXPECT_NE(pruned.output.find("removed 0 entries"), std::string::npos) << pruned.output;
  EXPECT_EQ(entries().size(), 2u);
}

TEST_F(OciFleetTest, ATamperedLayerIsRefusedNamingBothDigests) {
  // A copy of the layout whose base layer blob no longer matches its name.
  const std::string copy = temp_->path().string() + "/layout";
  std::filesystem::copy(oci_images_dir() + "/layout", copy, std::filesystem::copy_options::recursive);
  std::string largest;
  std::uintmax_t size = 0;
  for (const auto& e : std::filesystem::directory_iterator(copy + "/blobs/sha256"))
    if (e.file_size() > size) size = e.file_size(), largest = e.path();
  { std::ofstream(largest, std::ios::app) << "tampered"; }
  auto result = up_image(fleet_, copy + ":v2", "overlay", 1);
  EXPECT_EQ(result.status, 2) << result.output;
  EXPECT_NE(result.output.find(largest), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("sha256:" + std::filesystem::path(largest).filename().string()), std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace haco::testing
