// Real fleets of busybox containers: up, ps, down, verified from the host.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <thread>

#include "fleet_fixture.hpp"
#include "haco/control_protocol.hpp"
#include "haco/layout.hpp"
#include "haco/supervisor.hpp"

namespace haco::testing {
namespace {

using namespace std::chrono_literals;

// -q keeps stderr to warnings and errors: `up` then prints its summary alone.
TEST_F(FleetTest, QuietUpPrintsItsSummaryAlone) {
  auto loud = up(1);
  ASSERT_EQ(loud.status, 0) << loud.output;
  std::string instance = "t-" + std::to_string(port_base_);
  // stderr is a pipe: one plain line per progress event.
  EXPECT_NE(loud.output.find("ready " + instance + " in "), std::string::npos) << loud.output;
  // The rootfs engine's line about the image is information too.
  EXPECT_NE(loud.output.find("haco-fleet: image "), std::string::npos) << loud.output;
  ASSERT_EQ(haco("-q down --name " + fleet_).status, 0);

  auto quiet = haco("-q up --name " + fleet_ + " --ports " + ports(1) + " --timeout 20 " + definition());
  ASSERT_EQ(quiet.status, 0) << quiet.output;
  EXPECT_EQ(quiet.output.rfind("fleet " + fleet_ + ": 1 of 1 instances ready\n", 0), 0u) << quiet.output;
  EXPECT_EQ(quiet.output.find(instance + " in "), std::string::npos) << quiet.output;
  EXPECT_EQ(quiet.output.find("haco-fleet: image "), std::string::npos) << quiet.output;
  auto down = haco("-q down --name " + fleet_);
  EXPECT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(down.output, "");
}

// up --json carries its schema, as expand --json and ps --json do; with -q
// stdout and stderr together are the document alone.
TEST_F(FleetTest, UpJsonCarriesItsSchema) {
  auto result = haco("-q up --json --name " + fleet_ + " --ports " + ports(2) + " --timeout 20 " + definition());
  ASSERT_EQ(result.status, 0) << result.output;
  auto doc = nlohmann::json::parse(result.output);
  EXPECT_EQ(doc.at("schema"), 1);
  EXPECT_EQ(doc.at("fleet"), fleet_);
  EXPECT_EQ(doc.at("started"), 2);
  EXPECT_EQ(doc.at("failed"), nlohmann::json::array());
  EXPECT_EQ(haco("-q down --name " + fleet_).status, 0);
}

TEST_F(FleetTest, UpPsDownLeavesNothing) {
  auto result = up(4, "--parallel 2");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("4 of 4 instances ready"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("exec_to_ready"), std::string::npos) << result.output;

  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(fleet->instances.size(), 4u);
  EXPECT_EQ(fleet->spawners.size(), 2u);
  EXPECT_EQ(read_text("/proc/" + std::to_string(fleet->supervisor.pid) + "/comm"), "supervisor " + fleet_.substr(0, 4) + "\n");
  EXPECT_EQ(read_text("/proc/" + std::to_string(fleet->supervisor.pid) + "/cmdline").c_str(),
            "haco-fleet: supervisor " + fleet_);
  EXPECT_EQ(read_text("/proc/" + std::to_string(fleet->spawners[1].pid) + "/cmdline").c_str(),
            "haco-fleet: spawner " + fleet_ + " 1");
  for (const auto& r : fleet->instances) {
    SCOPED_TRACE(r.name());
    ASSERT_TRUE(state::is_alive(r.process));
    // The supervisor is the parent of every init, not the spawner that cloned it.
    EXPECT_EQ(parent_of(r.process.pid), fleet->supervisor.pid);
    unsigned base = r.spec.port * 100u;
    EXPECT_EQ(host_uid(r.process.pid), base);
    std::istringstream uid_map(read_text("/proc/" + std::to_string(r.process.pid) + "/uid_map"));
    unsigned inside = 1, outside = 0, count = 0;
    uid_map >> inside >> outside >> count;
    EXPECT_EQ(inside, 0u);
    EXPECT_EQ(outside, base);
    EXPECT_EQ(count, 100u);
    EXPECT_TRUE(can_connect(r.spec.port));
    EXPECT_EQ(r.state, state::InstanceState::running);
    EXPECT_FALSE(r.cgroup_paths.empty());
    for (const auto& dir : r.cgroup_paths)
      EXPECT_NE(read_text(dir + "/cgroup.procs").find(std::to_string(r.process.pid)), std::string::npos) << dir;
  }

  auto ps = ps_json();
  EXPECT_EQ(ps["schema"], 1);
  ASSERT_EQ(ps["fleets"].size(), 1u);
  const auto& listed = ps["fleets"][0];
  EXPECT_TRUE(listed["supervisor"]["running"].get<bool>());
  EXPECT_GT(listed["memory"]["total"]["pss_kib"].get<std::uint64_t>(), 0u);
  ASSERT_EQ(listed["instances"].size(), 4u);
  EXPECT_EQ(listed["instances"][0]["state"], "running");
  EXPECT_EQ(listed["instances"][0]["uid_range"],
            std::to_string(port_base_ * 100) + "-" + std::to_string(port_base_ * 100 + 99));
  auto table = haco("ps --name " + fleet_);
  EXPECT_NE(table.output.find("RESTARTS"), std::string::npos) << table.output;

  auto down = haco("down --name " + fleet_ + " --timeout 2");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
  for (const auto& r : fleet->instances) EXPECT_FALSE(can_connect(r.spec.port)) << r.name();
  // Without --purge the overlay's upper layers stay in the data root, for a
  // later `up` to mount again; the empty mount points go.
  EXPECT_TRUE(std::filesystem::exists(layout::DataRoot(data_).instance_upper("t-" + std::to_string(port_base_))));
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_)));

}

TEST_F(FleetTest, TreesAreReusedWhenTheStateIsGone) {
  ASSERT_EQ(up(2, "--rootfs extract").status, 0);
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  std::string marker = fleet->instances[0].spec.container.rootfs + "/www/marker.txt";
  { std::ofstream(marker) << "kept"; }
  // As after a reboot: no state, the trees on disk.
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1").status, 0);
  expect_nothing_left(*fleet);
  auto again = up(2, "--rootfs extract");
  ASSERT_EQ(again.status, 0) << again.output;
  auto second = fleet_state();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(read_text(marker), "kept");
  for (const auto& r : second->instances) {
    ASSERT_TRUE(r.rootfs.has_value()) << r.name();
    EXPECT_TRUE(r.rootfs->reused) << r.name();
  }
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*second);
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_)));
}

TEST_F(FleetTest, DownAfterTheSupervisorWasKilled) {
  auto result = up(3, "--rootfs extract");
  ASSERT_EQ(result.status, 0) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(::kill(fleet->supervisor.pid, SIGKILL), 0);
  for (int i = 0; i < 100 && state::is_alive(fleet->supervisor); ++i) std::this_thread::sleep_for(20ms);

  auto table = haco("ps --name " + fleet_);
  EXPECT_NE(table.output.find("NOT running"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("running (unsupervised)"), std::string::npos) << table.output;

  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_)));
}

// A client of another control protocol version (a newer haco-fleet than the
// one that started the fleet, or one from before versions) is told both
// versions and nothing of its request is done; the same connection then
// serves a request of this version.
TEST_F(FleetTest, ARequestOfAnotherProtocolVersionIsRefusedNamingBothVersions) {
  namespace protocol = supervisor::protocol;
  auto result = up(1);
  ASSERT_EQ(result.status, 0) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(fleet->instances.size(), 1u);
  auto client = supervisor::ControlClient::connect({root_, data_, fleet_});
  ASSERT_TRUE(client.has_value());
  auto refusal_of = [&](const nlohmann::json& request) -> std::string {
    std::string line = request.dump() + "\n";
    EXPECT_EQ(::send(client->fd(), line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    auto reply = client->receive();
    auto* done = std::get_if<protocol::Done>(&reply);
    if (!done || !done->error) return "no refusal";
    return *done->error;
  };

  const int newer = protocol::kControlProtocolVersion + 1;
  auto refusal = refusal_of({{"version", newer}, {"op", "shutdown"}, {"grace", "1s"}});
  EXPECT_NE(refusal.find("protocol version " + std::to_string(newer)), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("speaks version " + std::to_string(protocol::kControlProtocolVersion)), std::string::npos)
      << refusal;
  auto unversioned = refusal_of({{"op", "shutdown"}, {"timeout_ms", 0}});
  EXPECT_NE(unversioned.find("without a protocol version"), std::string::npos) << unversioned;

  auto pong = client->call(protocol::PingRequest{});
  EXPECT_EQ(pong.pid, fleet->supervisor.pid);
  EXPECT_TRUE(state::is_alive(fleet->instances[0].process));
  EXPECT_TRUE(state::is_alive(fleet->supervisor));
}

// The mount point of the v1 hierarchy of `controller`, if there is one.
std::string v1_mount_of(const std::string& controller) {
  std::istringstream mountinfo(read_text("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(mountinfo, line)) {
    auto dash = line.find(" - cgroup ");
    if (dash == std::string::npos) continue;
    std::string options = line.substr(line.rfind(' ') + 1);
    if (("," + options + ",").find("," + controller + ",") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    return mount_point;
  }
  return {};
}

TEST_F(FleetTest, DownFromAnotherCgroupRemovesTheRecordedCgroups) {
  std::string pids = v1_mount_of("pids");
  if (pids.empty()) GTEST_SKIP() << "no v1 pids hierarchy";
  ASSERT_EQ(up(2).status, 0);
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  // `down` runs from a sibling cgroup, so its own cgroup/haco-fleet/... is not
  // where `up` created the instances' cgroups.
  std::string elsewhere = pids + "/haco-sup-elsewhere-" + std::to_string(::getpid());
  ASSERT_TRUE(std::filesystem::create_directory(elsewhere));
  auto down = run_command("sh -c 'echo $$ > " + elsewhere + "/cgroup.procs && exec " +
                          haco_command("down --name " + fleet_ + " --timeout 1 --purge") + "'");
  ::rmdir(elsewhere.c_str());
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, ExecErrorOfTheInitReachesUpWithExitOne) {
  ::setenv("HACO_TEST_INIT", "/no/such/init", 1);
  auto result = up(2);
  ::unsetenv("HACO_TEST_INIT");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("failed t-" + std::to_string(port_base_)), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("/no/such/init"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("No such file or directory"), std::string::npos) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  EXPECT_EQ(fleet->instances[0].state, state::InstanceState::failed);
  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  ASSERT_EQ(down.status, 0) << down.output;
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, OneFailureKeepsTheOthersUnlessAtomic) {
  ::setenv("HACO_TEST_FAIL_PORT", std::to_string(port_base_ + 1).c_str(), 1);
  auto result = up(3);
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("2 of 3 instances ready"), std::string::npos) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  EXPECT_TRUE(state::is_alive(fleet->instances[0].process));
  EXPECT_TRUE(state::is_alive(fleet->instances[2].process));
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*fleet);

  auto atomic = up(3, "--atomic");
  ::unsetenv("HACO_TEST_FAIL_PORT");
  EXPECT_EQ(atomic.status, 1) << atomic.output;
  EXPECT_NE(atomic.output.find("--atomic"), std::string::npos) << atomic.output;
  EXPECT_NE(atomic.output.find("/no/such/init"), std::string::npos) << atomic.output;
  // All or nothing: the fleet was new, so nothing of it is left.
  EXPECT_FALSE(fleet_state().has_value());
  EXPECT_EQ(fleet_cgroup_dirs(), std::vector<std::string>{});
  EXPECT_EQ(mounts_under_temp(), std::vector<std::string>{});
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_));
}

TEST_F(FleetTest, InitThatEndsBeforeItIsReadyFailsWithItsLog) {
  ::setenv("HACO_TEST_SH", "echo cannot bind the port >&2; exit 4", 1);
  auto started = std::chrono::steady_clock::now();
  auto result = up(2);
  EXPECT_EQ(result.status, 1) << result.output;
  // Reported when it ends, not when the 20 s readiness timeout passes.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  EXPECT_NE(result.output.find("exited (exit 4) before it was ready"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("cannot bind the port"), std::string::npos) << result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(haco("down --name " + fleet_ + " --purge").status, 0);
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, RestartPolicyRestartsAFailingInit) {
  ::setenv("HACO_TEST_SH", "exit 3", 1);
  auto result = up(1, "--no-wait --restart on-failure:2");
  ASSERT_EQ(result.status, 0) << result.output;
  nlohmann::json instance;
  for (int i = 0; i < 100; ++i) {
    instance = ps_json()["fleets"][0]["instances"][0];
    if (instance["state"] == "failed") break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(instance["state"], "failed") << instance.dump();
  EXPECT_EQ(instance["restarts"], 2) << instance.dump();
  EXPECT_EQ(instance["last_exit"], "exit 3") << instance.dump();
  // Its history: three ends, the first two restarted by the policy.
  auto exits = instance["recent_exits"];
  ASSERT_EQ(exits.size(), 3u) << instance.dump();
  for (std::size_t i = 0; i < exits.size(); ++i) {
    EXPECT_EQ(exits[i]["exit"], "exit 3") << exits.dump();
    EXPECT_EQ(exits[i]["code"], 3) << exits.dump();
    EXPECT_EQ(exits[i]["restarted"], i < 2) << exits.dump();
    EXPECT_EQ(exits[i]["stop_requested"], false) << exits.dump();
  }
  auto fleet = fleet_state();
  ASSERT_EQ(haco("down --name " + fleet_ + " --purge").status, 0);
  expect_nothing_left(*fleet);
}

TEST_F(FleetTest, UpOfARunningFleetStartsOnlyTheMissing) {
  ASSERT_EQ(up(2).status, 0);
  auto first = fleet_state();
  ASSERT_TRUE(first.has_value());
  auto more = up(3);
  ASSERT_EQ(more.status, 0) << more.output;
  EXPECT_NE(more.output.find("2 instances already running, starting the 1 missing"), std::string::npos)
      << more.output;
  auto second = fleet_state();
  ASSERT_EQ(second->instances.size(), 3u);
  EXPECT_EQ(second->supervisor, first->supervisor);
  EXPECT_EQ(second->instances[0].process, first->instances[0].process);

  // A changed definition is refused, and nothing is started.
  ::setenv("HACO_TEST_MARK", "b", 1);
  auto changed = up(4);
  EXPECT_EQ(changed.status, 2) << changed.output;
  EXPECT_NE(changed.output.find("changed"), std::string::npos) << changed.output;
  EXPECT_EQ(fleet_state()->instances.size(), 3u);

  auto final_state = fleet_state();
  ASSERT_EQ(haco("down --purge").status, 0);
  expect_nothing_left(*final_state);
}

TEST_F(FleetTest, BadInputStartsNothing) {
  auto result = haco("up --name " + fleet_ + " --ports 5-3 " + definition());
  EXPECT_EQ(result.status, 2) << result.output;
  result = haco("up --name " + fleet_ + " --restart sometimes --ports " + ports(1) + " " + definition());
  EXPECT_EQ(result.status, 2) << result.output;
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_ + "/fleet.json"));
  EXPECT_EQ(fleet_cgroup_dirs(), std::vector<std::string>{});
}

TEST_F(FleetTest, AnotherFleetCannotTakeTheSameIds) {
  ASSERT_EQ(up(1).status, 0);
  for (const char* verb : {"expand", "up"}) {
    auto other = haco(std::string(verb) + " --name " + fleet_ + "-b --ports " + ports(1) + " " + definition());
    EXPECT_EQ(other.status, 2) << verb << ": " << other.output;
    EXPECT_NE(other.output.find("instance 't-" + std::to_string(port_base_) + "' of fleet " + fleet_),
              std::string::npos)
        << other.output;
  }
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_ + "-b/fleet.json"));
}

// Two `up`s of different fleets over the same ports, started at the same
// moment: one claims the names, ports, ids and trees first, the other is
// refused (exit 2, naming it) before it creates anything.
TEST_F(FleetTest, TwoUpsStartedAtTheSameMomentNeverOverlap) {
  const std::string names[2] = {fleet_, fleet_ + "-b"};
  std::string script;
  for (int k = 0; k < 2; ++k) {
    const std::string dir = temp_->path().string(), index = std::to_string(k);
    script += "(";
    script += haco_command("up --name " + names[k] + " --ports " + ports(3) + " --timeout 20 " + definition());
    script += " >" + dir + "/out" + index + " 2>&1; echo $? >" + dir + "/status" + index + ") & ";
  }
  ASSERT_EQ(run_command("sh -c '" + script + "wait'").status, 0);
  int status[2];
  std::string output[2];
  for (int k = 0; k < 2; ++k) {
    status[k] = std::stoi(read_text(temp_->path().string() + "/status" + std::to_string(k)));
    output[k] = read_text(temp_->path().string() + "/out" + std::to_string(k));
  }
  ASSERT_EQ(status[0] + status[1], 2) << output[0] << "\n---\n" << output[1];
  const int winner = status[0] == 0 ? 0 : 1, loser = 1 - winner;
  EXPECT_EQ(status[loser], 2) << output[loser];
  EXPECT_NE(output[loser].find("of fleet " + names[winner]), std::string::npos) << output[loser];
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + names[loser])) << "the refused fleet left state";
  auto won = state::load_state({root_, data_, names[winner]});
  ASSERT_TRUE(won);
  EXPECT_EQ(won->instances.size(), 3u);
  for (const auto& r : won->instances) EXPECT_TRUE(state::is_alive(r.process)) << r.name();
  ASSERT_EQ(haco("down --all --purge --timeout 1").status, 0);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + names[winner]));
}

// One fleet's state is garbage: reported, and another fleet still comes up,
// is listed by `ps` (exit 1 for the unreadable one) and goes down.
TEST_F(FleetTest, ACorruptFleetDoesNotBlockTheOthers) {
  std::filesystem::create_directories(root_ + "/broken");
  std::ofstream(root_ + "/broken/fleet.json") << "{ truncated";
  std::ofstream(root_ + "/broken/claims.json") << "";
  auto result = up(1);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("fleet 'broken'"), std::string::npos) << result.output;
  auto listed = haco("ps");
  EXPECT_EQ(listed.status, 1) << listed.output;
  EXPECT_NE(listed.output.find("t-" + std::to_string(port_base_)), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("fleet 'broken'"), std::string::npos) << listed.output;
  auto before = fleet_state();
  ASSERT_EQ(haco("down --name " + fleet_ + " --purge").status, 0);
  expect_nothing_left(*before);
  std::filesystem::remove_all(root_ + "/broken");
}

TEST_F(FleetTest, BareDownWithSeveralFleetsAsksForOne) {
  ASSERT_EQ(up(1).status, 0);
  auto other = haco("up --name " + fleet_ + "-b --ports " + ports(1, 5) + " --timeout 20 --rootfs extract " + definition());
  ASSERT_EQ(other.status, 0) << other.output;
  auto bare = haco("down");
  EXPECT_EQ(bare.status, 2) << bare.output;
  EXPECT_NE(bare.output.find(fleet_ + "-b"), std::string::npos) << bare.output;
  auto a = fleet_state();
  auto b = state::load_state({root_, data_, fleet_ + "-b"});
  ASSERT_EQ(haco("down --all --purge --timeout 1").status, 0);
  expect_nothing_left(*a);
  EXPECT_FALSE(state::is_alive(b->supervisor));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/" + fleet_ + "-b"));
}

// Starts `up` of `count` instances slowly (one spawner, 400 ms apart) and
// sends it SIGINT once `running` of them run; returns its exit status and the
// state seen just before.
std::pair<int, std::optional<state::FleetState>> interrupt_up(const std::string& command,
                                                              std::size_t count, std::size_t running,
                                                              const std::function<std::optional<state::FleetState>()>& read) {
  pid_t up_pid = ::fork();
  if (up_pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  std::optional<state::FleetState> seen;
  for (int i = 0; i < 400; ++i) {
    seen = read();
    if (seen && seen->instances.size() == count &&
        static_cast<std::size_t>(std::count_if(seen->instances.begin(), seen->instances.end(), [](const auto& r) {
          return r.state == state::InstanceState::running;
        })) >= running)
      break;
    std::this_thread::sleep_for(25ms);
  }
  ::kill(up_pid, SIGINT);
  int status = 0;
  ::waitpid(up_pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, seen};
}

// The supervisor killed while `up` waits for its launches: the instances it
// never started are failed ("the supervisor went away") and `up` exits 1,
// rather than counting them ready.
TEST_F(FleetTest, UpFailsWhatTheSupervisorNeverStartedWhenItDies) {
  const std::string output = temp_->path().string() + "/up.out";
  const std::string command = haco_command("up --name " + fleet_ + " --ports " + ports(4) +
                                           " --parallel 1 --stagger 2000 --timeout 30 " + definition());
  pid_t up_pid = ::fork();
  ASSERT_GE(up_pid, 0);
  if (up_pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + command + " >" + output + " 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  std::optional<state::FleetState> seen;
  for (int i = 0; i < 400; ++i) {
    seen = fleet_state();
    if (seen && std::any_of(seen->instances.begin(), seen->instances.end(),
                            [](const auto& r) { return r.state == state::InstanceState::running; }))
      break;
    std::this_thread::sleep_for(25ms);
  }
  ASSERT_TRUE(seen.has_value());
  ASSERT_GT(seen->supervisor.pid, 0);
  ::kill(seen->supervisor.pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(up_pid, &status, 0), up_pid);
  std::string text = read_text(output);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ": " << text;
  EXPECT_NE(text.find("1 of 4 instances ready"), std::string::npos) << text;
  for (unsigned i = 1; i < 4; ++i)
    EXPECT_NE(text.find("\n  failed t-" + std::to_string(port_base_ + i) + ": the supervisor went away"),
              std::string::npos)
        << text;
}

TEST_F(FleetTest, InterruptedUpLeavesWhatRanBefore) {
  // Pacing is the supervisor's: set by the up that starts the fleet.
  ASSERT_EQ(up(2, "--parallel 1 --stagger 400").status, 0);
  auto before = fleet_state();
  ASSERT_TRUE(before.has_value());
  auto [status, seen] = interrupt_up(                                     haco_command("up --name " + fleet_ + " --ports " + ports(8) +
                                                  " --stagger 400 --timeout 30 " + definition()),
                                     8, 4, [&] { return fleet_state(); });
  EXPECT_EQ(status, 130);
  auto after = fleet_state();
  ASSERT_TRUE(after.has_value());
  ASSERT_EQ(after->instances.size(), 2u);
  EXPECT_EQ(after->supervisor, before->supervisor);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(after->instances[i].process, before->instances[i].process);
    EXPECT_TRUE(state::is_alive(after->instances[i].process));
  }
  ASSERT_TRUE(seen.has_value());
  for (std::size_t i = 2; i < seen->instances.size(); ++i) {
    const auto& r = seen->instances[i];
    EXPECT_FALSE(state::is_alive(r.process)) << r.name();
    EXPECT_FALSE(std::filesystem::exists(r.spec.container.rootfs)) << r.name();
  }
  ASSERT_EQ(haco("down --name " + fleet_ + " --timeout 1 --purge").status, 0);
  expect_nothing_left(*before);
}

TEST_F(FleetTest, InterruptedUpRemovesWhatItStarted) {
  auto [status, seen] = interrupt_up(                                     haco_command("up --name " + fleet_ + " --ports " + ports(8) +
                                                  " --parallel 1 --stagger 400 --timeout 30 --rootfs extract " +
                                                  definition()),
                                     8, 2, [&] { return fleet_state(); });
  EXPECT_EQ(status, 130);
  ASSERT_TRUE(seen.has_value());
  expect_nothing_left(*seen);
  // The trees this `up` created are removed too.
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_)));
}

// `down` while an `up` is still starting instances: the `up` is
// interrupted (it stops and removes what it started, exit 130), then `down`
// takes the rest; nothing is left.
TEST_F(FleetTest, DownDuringUpInterruptsItAndLeavesNothing) {
  const std::string out = temp_->path().string() + "/slow-up.out";
  pid_t up_pid = ::fork();
  if (up_pid == 0) {
    const std::string command = "exec " + haco_command("up --name " + fleet_ + " --ports " + ports(8) +
                                                       " --parallel 1 --stagger 400 --timeout 30 " +
                                                       definition()) +
                                " >" + out + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    ::_exit(127);
  }
  std::optional<state::FleetState> seen;
  for (int i = 0; i < 500; ++i) {
    seen = fleet_state();
    std::size_t running = 0;
    if (seen)
      for (const auto& r : seen->instances) running += state::is_alive(r.process) ? 1 : 0;
    if (running >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
  int status = 0;
  ::waitpid(up_pid, &status, 0);
  EXPECT_EQ(down.status, 0) << down.output;
  EXPECT_NE(down.output.find("`up` is in progress"), std::string::npos) << down.output;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << read_text(out);
  ASSERT_TRUE(seen.has_value());
  expect_nothing_left(*seen);
  for (unsigned i = 0; i < 8; ++i)
    EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + std::to_string(port_base_ + i))) << i;
}

}  // namespace
}  // namespace haco::testing
