#include "vm/busybox_fleet.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "vm/systemd_host.hpp"

namespace haco::vm {
namespace fs = std::filesystem;
namespace {

// The image of scripts/build-busybox-image.sh, built (or found current) once.
const std::string& busybox_image() {
  static const std::string image = [] {
    std::string path = std::string(HACO_BUILD_DIR) + "/images/busybox.tar.gz";
    auto r = testing::run_command(fmt::format("{}/scripts/build-busybox-image.sh {}", HACO_SOURCE_DIR, path));
    if (r.status != 0) throw Error("scripts/build-busybox-image.sh failed: " + r.output);
    return path;
  }();
  return image;
}

// "key=value" from the line `up.sh` prints first ("haco-vm-caller cgroup=... session=...").
std::string caller_field(const std::string& output, const std::string& key) {
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("haco-vm-caller ", 0) != 0) continue;
    std::istringstream words(line);
    for (std::string word; words >> word;)
      if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  }
  return {};
}

}  // namespace

const char* caller_name(Caller caller) {
  switch (caller) {
    case Caller::delegated_service: return "a service with Delegate=yes";
    case Caller::scope: return "a scope (systemd-run --scope)";
    case Caller::login_session: return "a login session (su -l root)";
  }
  return "?";
}

BusyboxFleet::BusyboxFleet(const std::string& tag, std::uint16_t first_port, const std::string& extra_definition)
    : name_(fmt::format("vm{}-{}", ::getpid(), tag)), first_port_(first_port) {
  std::string pattern = "/var/tmp/haco-vm-test-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw Error::from_errno("mkdtemp", pattern, errno);
  dir_ = pattern;
  // The containers' root users (host ids port*100) must reach their rootfs.
  check_sys(::chmod(dir_.c_str(), 0755), "chmod", dir_.string());

  definition_ = fs::path(HACO_SOURCE_DIR) / "templates" / "busybox-httpd.haco";
  if (!extra_definition.empty()) {
    std::string text = read_text_file(definition_);
    const auto last_end = text.rfind("\nend");
    if (last_end == std::string::npos) throw Error("no final `end` in " + definition_.string());
    text.insert(last_end + 1, extra_definition + "\n");
    definition_ = dir_ / "busybox-httpd.haco";
    std::ofstream(definition_) << text;
  }

  // `up` runs from this script, so that every caller runs the same command
  // with the same environment (su -l starts from a clean one). Its first line
  // says where it ran.
  std::ofstream script(dir_ / "up.sh");
  script << "#!/bin/sh\n"
         << "echo \"haco-vm-caller cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup) session=${XDG_SESSION_ID:-}\"\n"
         << fmt::format("exec env HACO_BUSYBOX_IMAGE='{}' HACO_ROOTFS_BASE='{}' {} up --name '{}' --timeout 300 "
                        "--ports {}-{} '{}'\n",
                        busybox_image(), (dir_ / "rootfs").string(), haco_command(""), name_, first_port_,
                        first_port_ + kInstances - 1, definition_.string());
  if (!script.flush()) throw Error::from_errno("write", (dir_ / "up.sh").string(), errno);
}

BusyboxFleet::~BusyboxFleet() {
  try {
    remove_leftovers();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "removing what fleet " << name_ << " left: " << e.what();
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string BusyboxFleet::environment() const {
  return fmt::format("HACO_BUSYBOX_IMAGE={}\nHACO_ROOTFS_BASE={}\n", busybox_image(), (dir_ / "rootfs").string());
}

std::string BusyboxFleet::haco_command(const std::string& args) const {
  return fmt::format("{} --root '{}' --data-root '{}' {}", HACO_BINARY, (dir_ / "state").string(),
                     (dir_ / "data").string(), args);
}

UpResult BusyboxFleet::up(Caller caller) const {
  const std::string script = "sh " + (dir_ / "up.sh").string();
  if (caller == Caller::login_session) return up_from_login_session(script);
  const std::string command =
      caller == Caller::scope ? "systemd-run --scope --quiet " + script : script;
  auto r = testing::run_command(command);
  return UpResult{r.status, r.output, caller_field(r.output, "cgroup"), caller_field(r.output, "session")};
}

// su -l runs `up` and then stays, so that the session is still open (active)
// when the test ends it with loginctl terminate-session: su is started in
// the background and its results read from files.
UpResult BusyboxFleet::up_from_login_session(const std::string& script) const {
  const fs::path output = dir_ / "up.out", status = dir_ / "up.status";
  auto started = testing::run_command(fmt::format(
      "setsid su -l root -c '{} >{} 2>&1; echo $? >{}.new && mv {}.new {}; exec sleep 3600' "
      "</dev/null >/dev/null 2>&1 &",
      script, output.string(), status.string(), status.string(), status.string()));
  if (started.status != 0) return UpResult{started.status, "starting su: " + started.output, "", ""};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(600);
  std::error_code ec;
  while (!fs::exists(status, ec) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!fs::exists(status, ec)) return UpResult{-1, "up from su -l did not end within 600 s", "", ""};
  const std::string text = read_text_file(output);
  return UpResult{std::atoi(read_text_file(status).c_str()), text, caller_field(text, "cgroup"),
                  caller_field(text, "session")};
}

testing::CommandResult BusyboxFleet::down() const {
  return testing::run_command(haco_command(fmt::format("down --name '{}' --purge", name_)));
}

nlohmann::json BusyboxFleet::ps() const {
  auto r = testing::run_command(haco_command(fmt::format("ps --json --name '{}' 2>/dev/null", name_)));
  if (r.status != 0) throw Error("haco-fleet ps --json failed: " + r.output);
  auto doc = nlohmann::json::parse(r.output);
  if (doc.at("fleets").size() != 1) throw Error("ps --json does not list exactly fleet " + name_ + ": " + r.output);
  return doc.at("fleets").at(0);
}

std::vector<std::uint16_t> BusyboxFleet::ports() const {
  std::vector<std::uint16_t> ports;
  for (std::uint16_t i = 0; i < kInstances; ++i) ports.push_back(std::uint16_t(first_port_ + i));
  return ports;
}

std::pair<uid_t, uid_t> BusyboxFleet::host_ids() const {
  return {uid_t(first_port_) * 100, uid_t(first_port_ + kInstances - 1) * 100 + 99};
}

std::vector<std::string> BusyboxFleet::leftovers() const {
  std::vector<std::string> left;
  const std::string load = unit_property(unit(), "LoadState");
  if (load != "not-found")
    left.push_back(fmt::format("unit {}: LoadState={} ActiveState={}", unit(), load,
                               unit_property(unit(), "ActiveState")));
  for (const auto& dir : cgroups_containing(name_)) left.push_back("cgroup " + dir.string());
  for (const auto& mount : mounts_mentioning(dir_.string())) left.push_back("mount " + mount);
  std::error_code ec;
  if (fs::exists(dir_ / "state" / name_, ec)) left.push_back("state directory " + (dir_ / "state" / name_).string());
  auto [first, last] = host_ids();
  for (pid_t pid : processes_with_uid_in(first, last)) left.push_back(fmt::format("process {} in the fleet's uid range", pid));
  return left;
}

void BusyboxFleet::remove_leftovers() const {
  testing::run_command(haco_command(fmt::format("down --name '{}' --purge --timeout 1", name_)));
  testing::run_command(fmt::format("(systemctl stop '{0}'; systemctl reset-failed '{0}')", unit()));
  for (int round = 0; round < 100; ++round) {
    auto dirs = cgroups_containing(name_);
    if (dirs.empty()) break;
    for (const auto& dir : dirs) {
      std::ofstream(dir / "cgroup.kill") << "1";
      ::rmdir(dir.c_str());  // deepest first; fails while processes remain
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto [first, last] = host_ids();
  for (int round = 0; round < 100; ++round) {
    auto pids = processes_with_uid_in(first, last);
    if (pids.empty()) break;
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<std::string> mounts;
  for (const MountInfo& m : read_mountinfo())
    if (m.mount_point.rfind(dir_.string(), 0) == 0) mounts.push_back(m.mount_point);
  std::reverse(mounts.begin(), mounts.end());  // children before parents
  for (const auto& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
}

std::string http_get(std::uint16_t port) {
  auto r = testing::run_command(fmt::format("curl -sS --max-time 20 http://127.0.0.1:{}/", port));
  return r.status == 0 ? r.output : "";
}

}  // namespace haco::vm
