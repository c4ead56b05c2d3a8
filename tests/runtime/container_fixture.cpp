#include "runtime/container_fixture.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "haco/pidfd.hpp"

namespace haco::testing {
namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) throw std::runtime_error("popen " + command);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  if (status != 0) throw std::runtime_error(fmt::format("`{}` failed with status {}", command, status));
  return out;
}

}  // namespace

const std::string& busybox_image() {
  static const std::string image = [] {
    std::string out = run(fmt::format("{}/scripts/build-busybox-image.sh {}/images/busybox.tar.gz", HACO_SOURCE_DIR,
                                      HACO_BUILD_DIR));
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }();
  return image;
}

std::uint32_t test_id_base() {
  static std::uint32_t next = 3100000;
  return next += 100;
}

TempRootfs::TempRootfs(std::uint32_t owner, const std::string& name) {
  char tmpl[] = "/tmp/haco-runtime-test.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  // Left 0700, as mkdtemp makes it: the host side mounts the rootfs, the
  // container's ids never walk the host path to it.
  dir_ = tmpl;
  path_ = dir_ / name;
  std::filesystem::create_directory(path_);
  run(fmt::format("tar -xzf {} -C {} && chown -R -h {}:{} {}", busybox_image(), path_.string(), owner, owner,
                  path_.string()));
}

TempRootfs::~TempRootfs() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

ContainerSpec busybox_spec(const std::string& name, const TempRootfs& rootfs, std::uint32_t base,
                           const std::string& script) {
  ContainerSpec c;
  c.name = name;
  c.command = {"/bin/sh", "-c", script};
  c.daemonize = true;
  c.rootfs = rootfs.path().string();
  c.namespaces = {Namespace::user, Namespace::pid, Namespace::ipc, Namespace::uts, Namespace::mount};
  c.uid_map = {{0, base, 100}};
  c.gid_map = {{0, base, 100}};
  c.rootfs_owner = Owner{base, base};
  c.independent_mounts = {IndependentMount::procfs, IndependentMount::devtmpfs};
  return c;
}

cgroups::FleetCgroup test_fleet_cgroup(const std::string& fleet) {
  auto layout = cgroups::detect_layout();
  if (layout == cgroups::Layout::v1_hybrid) return {fleet, layout, "", ""};
  return cgroups::prepare_fleet_cgroup({fleet, cgroups::Layout::v2_root, "", ""}, "", false);
}

CgroupGuard::~CgroupGuard() {
  try {
    if (cg_) {
      cg_->kill_all(std::chrono::seconds(5));
      cg_->remove();
    }
    cgroups::remove_fleet_cgroups(fleet_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cleaning up the test cgroup: %s\n", e.what());
  }
}

Container::Container(const runtime::LaunchRequest& request) : launched_(runtime::launch(request)) {}

Container::~Container() {
  if (launched_.pidfd < 0) return;
  if (!reaped_) {
    ::pidfd_send_signal(launched_.pidfd, SIGKILL, nullptr, 0);
    ::waitpid(launched_.pid, nullptr, 0);
  }
  ::close(launched_.pidfd);
}

int Container::wait_exit(std::chrono::milliseconds timeout) {
  pollfd p{launched_.pidfd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return -1;
  int status = 0;
  ::waitpid(launched_.pid, &status, 0);
  reaped_ = true;
  return status;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<MountEntry> mounts_of(pid_t pid) {
  std::vector<MountEntry> out;
  std::istringstream in(read_file(fmt::format("/proc/{}/mountinfo", pid)));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point, options, field;
    f >> id >> parent >> dev >> root >> point >> options;
    while (f >> field && field != "-") {
    }
    std::string fstype, source, super_options;
    f >> fstype >> source >> super_options;
    out.push_back({point, fstype, options, super_options});
  }
  return out;
}

const MountEntry* find_mount(const std::vector<MountEntry>& mounts, const std::string& point) {
  const MountEntry* found = nullptr;
  for (const auto& m : mounts)
    if (m.mount_point == point) found = &m;  // the last one is on top
  return found;
}

std::string wait_for_text(const std::filesystem::path& path, const std::string& marker,
                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  while ((text = read_file(path)).find(marker) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return text;
}

std::string status_field(pid_t pid, const std::string& key) {
  std::istringstream in(read_file(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 2);
  return {};
}

}  // namespace haco::testing
