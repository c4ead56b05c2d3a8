#include "fleet_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "test_support.hpp"

namespace haco::e2e {
namespace {

namespace fs = std::filesystem;
using testing::read_text_file;

std::string last_line(const std::string& text) {
  auto end = text.find_last_not_of('\n');
  if (end == std::string::npos) return {};
  auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, sep);) out.push_back(item);
  return out;
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) pids.push_back(std::stoi(name));
  }
  return pids;
}

// Where each cgroup hierarchy is mounted, by its controller list ("cpu",
// "cpu,cpuacct", "" for cgroup2), from /proc/self/mountinfo.
std::vector<std::pair<std::string, fs::path>> cgroup_mounts() {
  std::vector<std::pair<std::string, fs::path>> mounts;
  std::istringstream in(read_text_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    auto fields = split(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (dash == fields.end() || fields.end() - dash < 4 || fields.size() < 5) continue;
    const std::string& type = *(dash + 1);
    if (type == "cgroup2") {
      mounts.emplace_back("", fields[4]);
    } else if (type == "cgroup") {
      std::string controllers;
      for (const auto& opt : split(*(dash + 3), ','))
        if (opt != "rw" && opt != "ro" && opt.find('=') == std::string::npos && opt != "relatime")
          controllers += (controllers.empty() ? "" : ",") + opt;
      mounts.emplace_back(controllers, fields[4]);
    }
  }
  return mounts;
}

bool lists(const std::string& controllers, const std::string& name) {
  auto items = split(controllers, ',');
  return std::find(items.begin(), items.end(), name) != items.end();
}

}  // namespace

std::string php_image(bool seed_layout) {
  auto r = testing::run_command(fmt::format("{}/scripts/build-php-image.sh{}", HACO_SOURCE_DIR,
                                            seed_layout ? " --seed-layout" : ""));
  if (r.status != 0) throw Error("scripts/build-php-image.sh failed: " + r.output);
  return last_line(r.output);
}

RunningFleet::RunningFleet(FleetOptions options) : options_(std::move(options)) {
  std::string pattern = (fs::temp_directory_path() / "haco-e2e-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw Error::from_errno("mkdtemp", pattern, errno);
  dir_ = pattern;
  // The containers' root users (host uids port*100) must reach their rootfs.
  check_sys(::chmod(dir_.c_str(), 0755), "chmod", dir_.string());
  remove_leftovers();
}

RunningFleet::~RunningFleet() {
  std::string output;
  down(output);
  remove_leftovers();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string RunningFleet::fleet_command(const std::string& args) const {
  return fmt::format("env HACO_PHP_IMAGE='{}' HACO_ROOTFS_BASE='{}' {} --root '{}' --data-root '{}' {}",
                     options_.image, (dir_ / "rootfs").string(), HACO_BINARY, (dir_ / "state").string(),
                     (dir_ / "data").string(), args);
}

int RunningFleet::up(std::string& output) {
  const char* extra = std::getenv("HACO_E2E_UP_ARGS");  // e.g. "--rootfs extract"
  auto r = testing::run_command(fleet_command(fmt::format("up --timeout 600 {} --ports {}-{} '{}'",
                                                          extra ? extra : "", first_port(), last_port(),
                                                          options_.definition)));
  output = r.output;
  return r.status;
}

int RunningFleet::down(std::string& output) {
  auto r = testing::run_command(fleet_command("down --purge"));
  output = r.output;
  return r.status;
}

nlohmann::json RunningFleet::ps() {
  auto r = testing::run_command(fleet_command("ps --json 2>/dev/null"));
  if (r.status != 0) throw Error("haco-fleet ps --json failed: " + r.output);
  auto doc = nlohmann::json::parse(r.output);
  if (doc.at("fleets").size() != 1) throw Error("expected one fleet in: " + r.output);
  return doc.at("fleets").at(0);
}

void RunningFleet::remove_leftovers() {
  const std::uint32_t first_id = std::uint32_t(first_port()) * 100;
  const std::uint32_t last_id = std::uint32_t(last_port()) * 100 + 99;
  for (int round = 0; round < 100; ++round) {
    auto pids = processes_with_uid_in(first_id, last_id);
    if (pids.empty()) break;
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto lines = mounts_mentioning(dir_.string());
  std::reverse(lines.begin(), lines.end());  // children before parents
  for (const auto& line : lines) ::umount2(split(line, ' ').at(4).c_str(), MNT_DETACH);
  std::error_code ec;
  for (const auto& path : options_.cleanup_paths) fs::remove_all(path, ec);
}

std::optional<std::string> http_get(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error::from_errno("socket", errno);
  timeval timeout{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return std::nullopt;
  const std::string request = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) return std::nullopt;
  std::string response;
  char buffer[16384];
  for (ssize_t n; (n = ::recv(fd.get(), buffer, sizeof buffer, 0)) > 0;) response.append(buffer, std::size_t(n));
  return response;
}

bool port_accepts(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error::from_errno("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

std::string php_version(const std::string& page) {
  static const std::regex version(R"(PHP Version ([0-9]+\.[0-9]+\.[0-9]+))");
  std::smatch m;
  return std::regex_search(page, m, version) ? m[1].str() : "";
}

ProcStatus proc_status(pid_t pid) {
  ProcStatus status;
  std::istringstream in(read_text_file(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    if (key == "Uid:") {
      fields >> status.real_uid;
    } else if (key == "NSpid:") {
      for (pid_t p; fields >> p;) status.ns_pids.push_back(p);
    }
  }
  return status;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  std::istringstream in(read_text_file(fmt::format("/proc/{}/task/{}/children", pid, pid)));
  for (pid_t child; in >> child;) children.push_back(child);
  return children;
}

std::optional<std::uint32_t> uid_inside(pid_t pid, std::uint32_t host_id) {
  std::istringstream in(read_text_file(fmt::format("/proc/{}/uid_map", pid)));
  for (std::uint64_t inside, outside, count; in >> inside >> outside >> count;)
    if (host_id >= outside && host_id < outside + count) return std::uint32_t(inside + (host_id - outside));
  return std::nullopt;
}

std::vector<fs::path> cgroup_dirs_of(pid_t pid) {
  auto mounts = cgroup_mounts();
  std::vector<fs::path> dirs;
  std::istringstream in(read_text_file(fmt::format("/proc/{}/cgroup", pid)));
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    for (const auto& [mounted, where] : mounts)
      if (mounted == controllers) dirs.push_back(where / fs::path(path).relative_path());
  }
  return dirs;
}

std::pair<long, long> cpu_quota_of(pid_t pid) {
  auto mounts = cgroup_mounts();
  std::istringstream in(read_text_file(fmt::format("/proc/{}/cgroup", pid)));
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    std::string controllers = line.substr(first + 1, second - first - 1);
    fs::path path = fs::path(line.substr(second + 1)).relative_path();
    for (const auto& [mounted, where] : mounts) {
      if (mounted != controllers) continue;
      if (lists(controllers, "cpu"))
        return {std::stol(read_text_file(where / path / "cpu.cfs_quota_us")),
                std::stol(read_text_file(where / path / "cpu.cfs_period_us"))};
      if (controllers.empty() && fs::exists(where / path / "cpu.max")) {
        std::istringstream max(read_text_file(where / path / "cpu.max"));
        std::string quota;
        long period = 0;
        max >> quota >> period;
        return {quota == "max" ? -1 : std::stol(quota), period};
      }
    }
  }
  throw Error(fmt::format("pid {} is in no cgroup with the cpu controller", pid));
}

std::vector<pid_t> processes_with_uid_in(std::uint32_t first, std::uint32_t last) {
  std::vector<pid_t> found;
  for (pid_t pid : all_pids()) {
    try {
      auto uid = proc_status(pid).real_uid;
      if (uid >= first && uid <= last) found.push_back(pid);
    } catch (const Error&) {
      // The process ended while we looked.
    }
  }
  return found;
}

std::vector<std::string> mounts_mentioning(const std::string& text) {
  std::vector<std::string> found;
  std::istringstream in(read_text_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);)
    if (line.find(text) != std::string::npos) found.push_back(line);
  return found;
}

}  // namespace haco::e2e
