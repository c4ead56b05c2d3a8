#include "fleet_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/pidfd.hpp"

namespace haco::testing {

std::string FleetTest::image_;
std::string FleetTest::suite_setup_error_;

void FleetTest::SetUpTestSuite() {
  suite_setup_error_.clear();
  image_ = std::string(HACO_BUILD_DIR) + "/images/busybox.tar.gz";
  auto built = run_command(std::string(HACO_SOURCE_DIR) + "/scripts/build-busybox-image.sh " + image_);
  if (built.status != 0) suite_setup_error_ = "building the busybox image failed: " + built.output;
}

void FleetTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "starting containers needs root";
  ASSERT_TRUE(suite_setup_error_.empty()) << suite_setup_error_;
  temp_ = std::make_unique<TempDir>();
  // The containers' roots (host ids port*100) must reach their rootfs.
  std::filesystem::permissions(temp_->path(), std::filesystem::perms(0755));
  root_ = temp_->path().string() + "/run";
  data_ = temp_->path().string() + "/data";
  rootfs_base_ = temp_->path().string() + "/rootfs";
  static unsigned counter = 0;
  fleet_ = "haco-sup-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  // Ports (and so host id ranges, port*100) apart from other test runs.
  // Below the ephemeral range (32768-), where a client socket could hold one.
  port_base_ = 20000 + (static_cast<unsigned>(::getpid()) % 600) * 20 + (counter % 2) * 10;
  ::setenv("HACO_BUSYBOX_IMAGE", image_.c_str(), 1);
  ::setenv("HACO_ROOTFS_BASE", rootfs_base_.c_str(), 1);
  ::unsetenv("HACO_TEST_SH");
  ::unsetenv("HACO_TEST_MARK");
  ::unsetenv("HACO_TEST_INIT");
  ::unsetenv("HACO_TEST_FAIL_PORT");
  ::unsetenv("HACO_TEST_BOOTSTRAP_BLOCK");
  ::unsetenv("HACO_TEST_BOOTSTRAP_EXTRA");
  ::unsetenv("HACO_TEST_PIDS_MAX");
  ::unsetenv("HACO_TEST_MEMORY_MAX");
}

void FleetTest::TearDown() {
  if (!temp_) return;
  // The log writer outlives a killed supervisor, and on a v1 host it is not
  // in the fleet's cgroups: found by its recorded pid and start time.
  std::optional<state::FleetState> last;
  try {
    last = fleet_state();
  } catch (const std::exception&) {
  }
  haco("down --all --purge --timeout 1");
  if (last && state::is_alive(last->log_writer)) {
    UniqueFd pidfd(::pidfd_open(last->log_writer.pid, 0));
    if (pidfd && state::is_alive(last->log_writer)) ::pidfd_send_signal(pidfd.get(), SIGKILL, nullptr, 0);
  }
  // Whatever `down` could not remove.
  for (const auto& dir : fleet_cgroup_dirs()) {
    try {
      cgroups::kill_cgroup_members(dir);
    } catch (const Error& e) {
      std::fprintf(stderr, "cleaning up the test cgroup %s: %s\n", dir.c_str(), e.what());
    }
  }
  for (int attempt = 0; attempt < 50 && !fleet_cgroup_dirs().empty(); ++attempt) {
    auto dirs = fleet_cgroup_dirs();
    // Deepest first.
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& dir : dirs) ::rmdir(dir.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto mounts = mounts_under_temp();
  std::sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
  temp_.reset();
}

std::string FleetTest::haco_command(const std::string& args) const {
  return std::string(HACO_BINARY) + " --root " + root_ + " --data-root " + data_ + " " + args;
}

CommandResult FleetTest::haco(const std::string& args) const { return run_command(haco_command(args)); }

std::string FleetTest::ports(unsigned count, unsigned first) const {
  return std::to_string(port_base_ + first) + "-" + std::to_string(port_base_ + first + count - 1);
}

std::string FleetTest::definition() const { return std::string(HACO_SOURCE_DIR) + "/tests/supervisor/test-fleet.haco"; }

CommandResult FleetTest::up(unsigned count, const std::string& extra) const {
  return haco("up --name " + fleet_ + " --ports " + ports(count) +
              " --timeout 20 " + extra + " " + definition());
}

std::optional<state::FleetState> FleetTest::fleet_state() const {
  return state::load_state({root_, data_, fleet_});
}

nlohmann::json FleetTest::ps_json() const {
  auto out = run_command(haco_command("ps --json --name " + fleet_) + " 2>/dev/null");
  EXPECT_EQ(out.status, 0) << out.output;
  return nlohmann::json::parse(out.output);
}

std::vector<std::string> FleetTest::fleet_cgroup_dirs() const {
  std::vector<std::string> found;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string fstype;
    after >> fstype;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             mount_point, std::filesystem::directory_options::skip_permission_denied, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_directory(ec)) continue;
      const auto& p = it->path();
      if (p.filename() == fleet_ && p.parent_path().filename() == "haco-fleet") {
        for (auto sub = std::filesystem::recursive_directory_iterator(p, ec);
             sub != std::filesystem::recursive_directory_iterator(); sub.increment(ec))
          if (sub->is_directory(ec)) found.push_back(sub->path());
        found.push_back(p);
        it.disable_recursion_pending();
      }
    }
  }
  return found;
}

std::vector<std::string> FleetTest::mounts_under_temp() const {
  std::vector<std::string> found;
  std::string prefix = temp_->path().string() + "/";
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (mount_point.rfind(prefix, 0) == 0) found.push_back(mount_point);
  }
  return found;
}

void FleetTest::expect_nothing_left(const state::FleetState& before) const {
  EXPECT_FALSE(state::is_alive(before.supervisor)) << "supervisor " << before.supervisor.pid;
  for (const auto& s : before.spawners) EXPECT_FALSE(state::is_alive(s)) << "spawner " << s.pid;
  EXPECT_FALSE(state::is_alive(before.log_writer)) << "log writer " << before.log_writer.pid;
  for (const auto& r : before.instances)
    EXPECT_FALSE(state::is_alive(r.process)) << r.name() << " pid " << r.process.pid;
  EXPECT_EQ(fleet_cgroup_dirs(), std::vector<std::string>{});
  EXPECT_EQ(mounts_under_temp(), std::vector<std::string>{});
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_)) << "state of the fleet is left";
}

bool wait_for(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool can_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<unsigned> host_uid(pid_t pid) {
  std::istringstream status(read_text("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Uid:", 0) == 0) return static_cast<unsigned>(std::stoul(line.substr(4)));
  return std::nullopt;
}

std::optional<pid_t> parent_of(pid_t pid) {
  auto stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string state;
  pid_t ppid;
  if (!(fields >> state >> ppid)) return std::nullopt;
  return ppid;
}

}  // namespace haco::testing
