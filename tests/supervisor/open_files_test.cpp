// A fleet larger than the caller's soft limit of open files: `up` and the
// supervisor raise theirs to the hard limit (the supervisor holds a pidfd and
// a pipe per instance, the log writer inherits its limit), the containers
// start with the caller's, and a fleet that cannot fit under the hard limit
// is refused before anything starts.
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "haco/unique_fd.hpp"

#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

struct OpenFilesLimit {
  std::uint64_t soft = 0, hard = 0;
};

// "Max open files  64  20000  files" of /proc/PID/limits ("unlimited" is 0).
std::optional<OpenFilesLimit> open_files_limit(pid_t pid) {
  std::istringstream limits(read_text("/proc/" + std::to_string(pid) + "/limits"));
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(14));
    std::string soft, hard;
    fields >> soft >> hard;
    return OpenFilesLimit{std::strtoull(soft.c_str(), nullptr, 10), std::strtoull(hard.c_str(), nullptr, 10)};
  }
  return std::nullopt;
}

// Descriptors of `pid` whose link target starts with `kind`.
std::size_t descriptors_of(pid_t pid, const std::string& kind) {
  std::size_t count = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind(kind, 0) == 0) ++count;
  }
  return count;
}

std::size_t pidfds_of(pid_t pid) { return descriptors_of(pid, "anon_inode:[pidfd]"); }

constexpr unsigned kInstances = 60;
constexpr unsigned kCallerSoftLimit = 64;

TEST_F(FleetTest, AFleetLargerThanTheCallersSoftOpenFileLimitIsTracked) {
  auto own = open_files_limit(::getpid());
  ASSERT_TRUE(own.has_value());
  if (own->hard != 0 && own->hard < 4 * kInstances) GTEST_SKIP() << "the hard limit of open files is " << own->hard;
  auto result = run_command("sh -c 'ulimit -Sn " + std::to_string(kCallerSoftLimit) + " && exec " +
                            haco_command("up --name " + fleet_ + " --ports " + ports(kInstances) +
                                         " --parallel 4 --timeout 120 " + definition()) +
                            "'");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find(std::to_string(kInstances) + " of " + std::to_string(kInstances) + " instances ready"),
            std::string::npos)
      << result.output;

  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(fleet->instances.size(), kInstances);
  // The supervisor went up to its hard limit, and holds a pidfd for each.
  auto supervisor = open_files_limit(fleet->supervisor.pid);
  ASSERT_TRUE(supervisor.has_value());
  EXPECT_EQ(supervisor->soft, supervisor->hard);
  EXPECT_GT(supervisor->soft, kCallerSoftLimit);
  EXPECT_GE(pidfds_of(fleet->supervisor.pid), kInstances);
  // It keeps the read end of each instance's output pipe, and the log writer
  // reads them all.
  EXPECT_GE(descriptors_of(fleet->supervisor.pid, "pipe:"), kInstances);
  auto writer = open_files_limit(fleet->log_writer.pid);
  ASSERT_TRUE(writer.has_value());
  EXPECT_EQ(writer->soft, supervisor->soft);
  EXPECT_GE(descriptors_of(fleet->log_writer.pid, "pipe:"), kInstances);
  for (const auto& r : fleet->instances) {
    SCOPED_TRACE(r.name());
    EXPECT_EQ(r.state, state::InstanceState::running);
    ASSERT_TRUE(state::is_alive(r.process));
    EXPECT_EQ(parent_of(r.process.pid), fleet->supervisor.pid);
    EXPECT_TRUE(can_connect(r.spec.port));
    // The init starts with the caller's soft limit, not the supervisor's.
    auto init = open_files_limit(r.process.pid);
    ASSERT_TRUE(init.has_value());
    EXPECT_EQ(init->soft, kCallerSoftLimit);
  }
  auto ps = ps_json();
  ASSERT_EQ(ps["fleets"][0]["instances"].size(), kInstances);
  for (const auto& i : ps["fleets"][0]["instances"]) EXPECT_EQ(i["state"], "running") << i.dump();

  auto down = haco("down --name " + fleet_ + " --timeout 5 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, AFleetBeyondTheHardOpenFileLimitIsRefusedBeforeItStarts) {
  auto result = run_command("sh -c 'ulimit -n 64 && exec " +
                            haco_command("up --name " + fleet_ + " --ports " + ports(kInstances) + " --timeout 20 " +
                                         definition()) +
                            "'");
  EXPECT_EQ(result.status, 2) << result.output;
  EXPECT_NE(result.output.find("a fleet of " + std::to_string(kInstances) + " instances needs about"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("but the hard limit of open files is 64"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_)) << "state of the refused fleet";
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_)));
  EXPECT_EQ(fleet_cgroup_dirs(), std::vector<std::string>{});
}

// A client of the control socket that connects and says nothing.
UniqueFd silent_client(const std::string& socket_path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  return fd;
}

// The supervisor runs out of descriptors while clients connect: accept
// fails (EMFILE), and once descriptors are free again it accepts again: a
// later `stop` is answered. It used to stop accepting for good.
TEST_F(FleetTest, TheSupervisorAcceptsAgainAfterRunningOutOfDescriptors) {
  ASSERT_EQ(up(2).status, 0);
  auto fleet = *fleet_state();
  const pid_t supervisor = fleet.supervisor.pid;
  rlimit before{};
  ASSERT_EQ(::prlimit(supervisor, RLIMIT_NOFILE, nullptr, &before), 0);
  std::size_t open = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(supervisor) + "/fd")) {
    (void)e;
    ++open;
  }
  rlimit tight{open, before.rlim_max};
  ASSERT_EQ(::prlimit(supervisor, RLIMIT_NOFILE, &tight, nullptr), 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(silent_client(root_ + "/" + fleet_ + "/control.sock"));
  const std::string log = root_ + "/" + fleet_ + "/supervisor.log";
  bool failed = false;
  for (int i = 0; i < 100 && !failed; ++i) {
    failed = read_text(log).find("control socket: accept failed") != std::string::npos;
    if (!failed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(failed) << read_text(log);
  ASSERT_EQ(::prlimit(supervisor, RLIMIT_NOFILE, &before, nullptr), 0);
  clients.clear();

  auto started = std::chrono::steady_clock::now();
  auto stop = haco("stop --name " + fleet_ + " --ports " + std::to_string(port_base_) + " --timeout 1");
  EXPECT_EQ(stop.status, 0) << stop.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5)) << stop.output;
  EXPECT_NE(read_text(log).find("control socket: accepting again"), std::string::npos) << read_text(log);
}

}  // namespace
}  // namespace haco::testing
