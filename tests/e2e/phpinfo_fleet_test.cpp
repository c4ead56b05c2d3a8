// The phpinfo fleet end to end, with the real binary and the real image:
// templates/phpinfo.haco on 100 ports, and the seed's own definition,
// unchanged, on ten. What is checked is what the kernel says from the host.
#include <unistd.h>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <functional>
#include <set>

#include <fmt/format.h>

#include "fleet_fixture.hpp"

namespace haco::e2e {
namespace {

constexpr std::uint32_t kIdRange = 100;

std::uint32_t owner_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_uid;
}

struct InstanceView {
  std::uint16_t port = 0;
  pid_t pid = 0;
};

std::vector<InstanceView> running_instances(RunningFleet& fleet) {
  std::vector<InstanceView> out;
  const auto doc = fleet.ps();
  for (const auto& item : doc.at("instances")) {
    EXPECT_EQ(item.at("state"), "running") << item.dump();
    if (item.at("pid").is_null()) continue;
    out.push_back({item.at("port").get<std::uint16_t>(), item.at("pid").get<pid_t>()});
  }
  return out;
}

// Every port answers GET / with phpinfo's page; all show one PHP version.
void expect_every_port_serves_phpinfo(const RunningFleet& fleet) {
  std::set<std::string> versions;
  for (unsigned port = fleet.first_port(); port <= fleet.last_port(); ++port) {
    auto page = http_get(std::uint16_t(port));
    ASSERT_TRUE(page) << "port " << port << " refuses connections";
    EXPECT_NE(page->find("200 OK"), std::string::npos) << "port " << port << ": " << page->substr(0, 200);
    auto version = php_version(*page);
    EXPECT_FALSE(version.empty()) << "port " << port << " serves no phpinfo page";
    versions.insert(version);
  }
  EXPECT_EQ(versions.size(), 1u);
}

// The instance's init is pid 1 of its own pid namespace, whose /proc (the
// container's procfs) shows the container's processes only; its workers run
// as host uid port*100+`worker_uid` and `worker_uid` inside; its cgroup has
// the template's cpu quota.
void expect_isolated(const InstanceView& instance, std::uint32_t worker_uid) {
  SCOPED_TRACE(fmt::format("port {} pid {}", instance.port, instance.pid));
  const std::uint32_t host_base = std::uint32_t(instance.port) * kIdRange;

  auto init = proc_status(instance.pid);
  ASSERT_GE(init.ns_pids.size(), 2u) << "init shares the host's pid namespace";
  EXPECT_EQ(init.ns_pids.back(), 1);
  EXPECT_EQ(init.real_uid, host_base);

  auto workers = children_of(instance.pid);
  ASSERT_FALSE(workers.empty()) << "Apache started no worker";
  for (pid_t worker : workers) {
    auto status = proc_status(worker);
    EXPECT_EQ(status.real_uid, host_base + worker_uid) << "worker " << worker;
    EXPECT_EQ(uid_inside(worker, status.real_uid), worker_uid) << "worker " << worker;
  }

  // The container's own /proc: its pids are the container's, pid 1 is Apache.
  std::set<pid_t> visible;
  for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/root/proc", instance.pid))) {
    auto name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) visible.insert(std::stoi(name));
  }
  std::set<pid_t> inside{1};
  for (pid_t worker : workers) inside.insert(proc_status(worker).ns_pids.back());
  EXPECT_EQ(visible, inside) << "the container's /proc shows processes that are not its own";

  EXPECT_EQ(cpu_quota_of(instance.pid), std::make_pair(30000L, 100000L));
}

// After down: no process in the fleet's uid range, no port answering, no
// mount under the fleet's directories, none of the instances' cgroups.
void expect_nothing_left(const RunningFleet& fleet, const std::vector<std::filesystem::path>& cgroups,
                         const std::vector<std::filesystem::path>& rootfs) {
  const std::uint32_t first_id = std::uint32_t(fleet.first_port()) * kIdRange;
  const std::uint32_t last_id = std::uint32_t(fleet.last_port()) * kIdRange + kIdRange - 1;
  EXPECT_TRUE(processes_with_uid_in(first_id, last_id).empty());
  for (unsigned port = fleet.first_port(); port <= fleet.last_port(); ++port)
    EXPECT_FALSE(port_accepts(std::uint16_t(port))) << "port " << port;
  EXPECT_TRUE(mounts_mentioning(fleet.dir().string()).empty());
  for (const auto& dir : cgroups) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  for (const auto& dir : rootfs) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

// `purged_rootfs`: the trees `down --purge` must remove. `while_running`
// checks more, given what `up` printed, before the fleet is stopped.
void bring_up_check_and_stop(RunningFleet& fleet, std::size_t count, std::uint32_t worker_uid,
                             const std::vector<std::filesystem::path>& purged_rootfs,
                             const std::function<void(const std::string&)>& while_running = {}) {
  std::string output;
  ASSERT_EQ(fleet.up(output), 0) << output;
  if (while_running) while_running(output);

  auto instances = running_instances(fleet);
  ASSERT_EQ(instances.size(), count);
  expect_every_port_serves_phpinfo(fleet);

  std::vector<std::filesystem::path> cgroups;
  for (const auto& instance : instances) {
    expect_isolated(instance, worker_uid);
    for (const auto& dir : cgroup_dirs_of(instance.pid))
      if (dir.string().find("haco") != std::string::npos) cgroups.push_back(dir);
  }
  EXPECT_FALSE(cgroups.empty()) << "the instances are in no haco cgroup";

  ASSERT_EQ(fleet.down(output), 0) << output;
  expect_nothing_left(fleet, cgroups, purged_rootfs);
}

class PhpinfoFleet : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
  }
};

TEST_F(PhpinfoFleet, HundredInstancesServeAreIsolatedAndStopCleanly) {
  RunningFleet fleet({.definition = std::string(HACO_SOURCE_DIR) + "/templates/phpinfo.haco",
                      .first_port = 31001,
                      .count = 100,
                      .image = php_image(false),
                      .cleanup_paths = {}});
  std::vector<std::filesystem::path> rootfs;
  for (unsigned port = fleet.first_port(); port <= fleet.last_port(); ++port)
    rootfs.push_back(fleet.dir() / "rootfs" / fmt::format("phpinfo-{}", port));
  bring_up_check_and_stop(fleet, 100, 33, rootfs);  // www-data
}

// The seed's definition, unchanged: its bootstrap block (mkdir, tar, mknod,
// chown -R) is served by the rootfs engine (docs/bootstrap.md).
TEST_F(PhpinfoFleet, SeedDefinitionRunsUnchangedOnTenPortsThroughTheEngine) {
  constexpr unsigned kFirst = 31201, kCount = 10;
  std::vector<std::string> seed_rootfs;
  for (unsigned port = kFirst; port < kFirst + kCount; ++port)
    seed_rootfs.push_back(fmt::format("/var/lib/haconiwa/haconiwa-test-{}", port));
  php_image(true);  // at the path the seed's definition names
  RunningFleet fleet({.definition = std::string(HACO_SOURCE_DIR) + "/../shared/seed/phpinfo-test.haco",
                      .first_port = kFirst,
                      .count = kCount,
                      .image = "",
                      .cleanup_paths = seed_rootfs});
  std::vector<std::filesystem::path> purged(seed_rootfs.begin(), seed_rootfs.end());
  bring_up_check_and_stop(fleet, kCount, 48, purged, [&](const std::string& output) {  // apache
    EXPECT_NE(output.find("bootstrap: the block's mkdir + tar + chown -R served by the rootfs engine for 10 "
                          "instances (1 archive"),
              std::string::npos)
        << output;
    EXPECT_NE(output.find("bootstrap: mknod dev/random, dev/urandom not made"), std::string::npos) << output;
    for (unsigned port = kFirst; port < kFirst + kCount; ++port) {
      // ROOT shows the image's files, owners shifted per file into the range.
      const std::string root = fmt::format("/var/lib/haconiwa/haconiwa-test-{}", port);
      SCOPED_TRACE(root);
      EXPECT_EQ(owner_of(root + "/usr/sbin/httpd"), port * kIdRange);
      EXPECT_EQ(owner_of(root + "/var/cache/apache2/mod_cache_disk"), port * kIdRange + 33);  // www-data
      EXPECT_EQ(owner_of(root), port * kIdRange);
    }
  });
}

}  // namespace
}  // namespace haco::e2e
