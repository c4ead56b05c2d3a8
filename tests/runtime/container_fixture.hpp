// Real containers for the runtime's tests: the busybox image extracted into
// a temporary rootfs shifted to a uid range, a cgroup, a launched container,
// each removed (killed, reaped, rmdir'ed, deleted) by its destructor even
// when the test fails.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "haco/cgroup.hpp"
#include "haco/runtime.hpp"
#include "haco/spec.hpp"

namespace haco::testing {

// Tests that start containers or make cgroups: skipped unless run as root.
class RootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "starting containers and making cgroups needs root";
  }
};

// The image built by scripts/build-busybox-image.sh (once per run).
const std::string& busybox_image();

// A uid/gid range per test, far from the host's users and other tests'.
std::uint32_t test_id_base();

class TempRootfs {
 public:
  // Extracts the image with tar into <temporary dir>/<name> and shifts
  // ownership to `owner` (chown -R -h). The temporary dir is mode 0700.
  explicit TempRootfs(std::uint32_t owner, const std::string& name = "rootfs");
  ~TempRootfs();
  TempRootfs(const TempRootfs&) = delete;
  TempRootfs& operator=(const TempRootfs&) = delete;
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& dir() const { return dir_; }  // holds the rootfs and logs

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

// A container spec in the template's shape: user (100 ids at `base`), pid,
// ipc, uts and mount namespaces, procfs and /dev, running `script` with
// /bin/sh, daemonized.
ContainerSpec busybox_spec(const std::string& name, const TempRootfs& rootfs, std::uint32_t base,
                           const std::string& script);

// A fleet's cgroup levels for tests, on whatever layout the host has (on a
// v2 host the v2_root layout, without moving the test process).
cgroups::FleetCgroup test_fleet_cgroup(const std::string& fleet);

class CgroupGuard {
 public:
  CgroupGuard(std::unique_ptr<cgroups::InstanceCgroup> cg, cgroups::FleetCgroup fleet)
      : cg_(std::move(cg)), fleet_(std::move(fleet)) {}
  ~CgroupGuard();
  const cgroups::InstanceCgroup* get() const { return cg_.get(); }
  const cgroups::InstanceCgroup* operator->() const { return cg_.get(); }

 private:
  std::unique_ptr<cgroups::InstanceCgroup> cg_;
  cgroups::FleetCgroup fleet_;
};

// A container launched from the test process (its parent), killed and
// reaped at the end.
class Container {
 public:
  explicit Container(const runtime::LaunchRequest& request);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  pid_t pid() const { return launched_.pid; }
  int pidfd() const { return launched_.pidfd; }
  // Waits for the init to exit; its wait status, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout);
  bool exited() const { return reaped_; }

 private:
  runtime::LaunchedContainer launched_;
  bool reaped_ = false;
};

std::string read_file(const std::filesystem::path& p);

// One line of /proc/PID/mountinfo, as the container's namespace shows it.
struct MountEntry {
  std::string mount_point;
  std::string fstype;
  std::string options;        // per-mount flags ("ro,nodev,relatime")
  std::string super_options;  // the filesystem's ("rw,size=65536k")
};
std::vector<MountEntry> mounts_of(pid_t pid);
// The mount on top at `point`, or null.
const MountEntry* find_mount(const std::vector<MountEntry>& mounts, const std::string& point);
// Polls `path` until it contains `marker` (the container's log); its content.
std::string wait_for_text(const std::filesystem::path& path, const std::string& marker,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The value of a "Key:\t..." line of /proc/PID/status.
std::string status_field(pid_t pid, const std::string& key);

}  // namespace haco::testing
