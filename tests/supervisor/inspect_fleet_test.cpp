// `inspect` and `reload` on real fleets of busybox containers, checked
// against what the kernel shows from the host.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "fleet_fixture.hpp"
#include "haco/cgroup.hpp"
#include "haco/pidfd.hpp"

namespace haco::testing {
namespace {

std::string link_of(const std::string& path) {
  std::error_code ec;
  return std::filesystem::read_symlink(path, ec).string();
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class InspectFleetTest : public FleetTest {
 protected:
  std::string port(unsigned k = 0) const { return std::to_string(port_base_ + k); }

  nlohmann::json inspect_json(const std::string& instance) const {
    auto out = run_command(haco_command("-q inspect --json --name " + fleet_ + " " + instance) + " 2>/dev/null");
    EXPECT_EQ(out.status, 0) << out.output;
    return nlohmann::json::parse(out.output);
  }

  CommandResult reload(const std::string& env, const std::string& args = "") const {
    return run_command(env + " " + haco_command("reload --name " + fleet_ + " " + args));
  }

  // The supervisor writes fleet.json within moments of a change.
  void wait_for_state(std::size_t instance, state::InstanceState wanted) const {
    for (int k = 0; k < 300; ++k) {
      auto fleet = fleet_state();
      if (fleet && fleet->instances.size() > instance && fleet->instances[instance].state == wanted) return;
      ::usleep(10000);
    }
    ADD_FAILURE() << "instance " << instance << " never reached " << state::instance_state_name(wanted);
  }

  // The instance's pids.max as its cgroup holds it (the pids hierarchy on
  // v1, the instance's directory on v2).
  std::string kernel_pids_max(const state::InstanceRecord& r) const {
    for (const auto& dir : r.cgroup_paths)
      if (std::filesystem::exists(dir + "/pids.max")) return trimmed(read_text(dir + "/pids.max"));
    ADD_FAILURE() << "no cgroup directory of " << r.name() << " has pids.max";
    return "";
  }
};

TEST_F(InspectFleetTest, InspectShowsWhatTheKernelShows) {
  auto up_result = up(1);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet && fleet->instances.size() == 1u);
  const auto& record = fleet->instances[0];
  const pid_t init = record.process.pid;
  const std::string proc = "/proc/" + std::to_string(init);

  auto doc = inspect_json(port());
  EXPECT_EQ(doc.at("schema"), 1);
  EXPECT_EQ(doc.at("instance"), record.name());
  EXPECT_EQ(doc.at("state"), "running");
  EXPECT_EQ(doc.at("init").at("pid"), init);
  EXPECT_EQ(doc.at("init").at("running"), true);
  EXPECT_EQ(doc.at("spec").at("command"), nlohmann::json(record.spec.container.command));

  // Every process of its cgroup, as the kernel lists them.
  std::vector<pid_t> members;
  for (const auto& dir : record.cgroup_paths)
    for (pid_t pid : cgroups::read_procs(dir))
      if (std::find(members.begin(), members.end(), pid) == members.end()) members.push_back(pid);
  std::sort(members.begin(), members.end());
  EXPECT_EQ(doc.at("pids").get<std::vector<pid_t>>(), members);
  EXPECT_NE(std::find(members.begin(), members.end(), init), members.end());

  // Namespaces: the init's own inodes; pid, mnt, user apart from the host's,
  // net (not unshared by the test definition) the host's.
  std::map<std::string, nlohmann::json> namespaces;
  for (const auto& ns : doc.at("namespaces")) namespaces[ns.at("name")] = ns;
  for (const char* name : {"pid", "mnt", "user", "ipc", "uts"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(namespaces.count(name));
    EXPECT_EQ(namespaces[name].at("link"), link_of(proc + "/ns/" + name));
    EXPECT_EQ(namespaces[name].at("own"), true);
  }
  ASSERT_TRUE(namespaces.count("net"));
  EXPECT_EQ(namespaces["net"].at("own"), false);
  EXPECT_EQ(namespaces["net"].at("link"), link_of("/proc/self/ns/net"));

  // pids.max as asked and as the kernel reads it.
  auto limits = doc.at("cgroup").at("limits");
  auto pids_max = std::find_if(limits.begin(), limits.end(), [](const auto& l) { return l.at("key") == "pids.max"; });
  ASSERT_NE(pids_max, limits.end()) << limits.dump();
  EXPECT_EQ(pids_max->at("wanted"), "64");
  EXPECT_EQ(pids_max->at("kernel"), "64");
  EXPECT_EQ(pids_max->at("kernel"), kernel_pids_max(record));
  EXPECT_EQ(pids_max->at("matches"), true);

  // The container's own view of its mounts: its /proc.
  auto mounts = doc.at("mounts");
  EXPECT_NE(std::find_if(mounts.begin(), mounts.end(),
                         [](const auto& m) { return m.at("mount_point") == "/proc" && m.at("fstype") == "proc"; }),
            mounts.end())
      << mounts.dump();
  EXPECT_EQ(doc.at("logs").at(0).at("path"), record.log_path);
  EXPECT_TRUE(doc.at("logs").at(0).at("size").is_number());

  // The text form says the same.
  auto text = haco("inspect --name " + fleet_ + " " + record.name());
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("init pid " + std::to_string(init)), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("pids.max"), std::string::npos) << text.output;
}

// An instance whose init ended still inspects: its spec, history and log;
// what needs a running init is said to be unreadable.
TEST_F(InspectFleetTest, AnExitedInstanceStillInspects) {
  ::setenv("HACO_TEST_SH", "echo bye; exit 3", 1);
  auto up_result = up(1);
  EXPECT_EQ(up_result.status, 1) << up_result.output;
  wait_for_state(0, state::InstanceState::failed);
  auto doc = inspect_json(port());
  EXPECT_EQ(doc.at("state"), "failed");
  EXPECT_EQ(doc.at("init").at("running"), false);
  EXPECT_FALSE(doc.at("not_running").is_null());
  EXPECT_EQ(doc.at("namespaces"), nlohmann::json::array());
  EXPECT_FALSE(doc.at("namespaces_error").is_null());
  EXPECT_EQ(doc.at("last_exit"), "exit 3");
  ASSERT_EQ(doc.at("recent_exits").size(), 1u);
  EXPECT_EQ(doc.at("recent_exits").at(0).at("code"), 3);
  EXPECT_EQ(doc.at("recent_exits").at(0).at("restarted"), false);
  EXPECT_GT(doc.at("logs").at(0).at("size").get<std::uint64_t>(), 0u);
  EXPECT_EQ(doc.at("spec").at("command").at(2), "echo bye; exit 3");
}

TEST_F(InspectFleetTest, BadInputsAreRefusedWithExitTwo) {
  auto up_result = up(1);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  auto unknown_port = haco("inspect --name " + fleet_ + " 1");
  EXPECT_EQ(unknown_port.status, 2) << unknown_port.output;
  EXPECT_NE(unknown_port.output.find("no instance on port '1'"), std::string::npos) << unknown_port.output;
  EXPECT_NE(unknown_port.output.find(port()), std::string::npos) << unknown_port.output;
  auto unknown_name = haco("inspect --name " + fleet_ + " nosuch");
  EXPECT_EQ(unknown_name.status, 2) << unknown_name.output;
  auto unknown_fleet = haco("inspect --name nosuch-fleet " + port());
  EXPECT_EQ(unknown_fleet.status, 2) << unknown_fleet.output;
  auto reload_unknown = haco("reload --name nosuch-fleet");
  EXPECT_EQ(reload_unknown.status, 2) << reload_unknown.output;
  // A definition that no longer evaluates (a value out of pids.max's range):
  // nothing changes.
  auto broken = reload("HACO_TEST_PIDS_MAX=0");
  EXPECT_EQ(broken.status, 2) << broken.output;
  EXPECT_NE(broken.output.find("no longer evaluates"), std::string::npos) << broken.output;
  EXPECT_EQ(kernel_pids_max(fleet_state()->instances[0]), "64");
}

// reload writes the new pids.max into the running instances' cgroups: the
// kernel reads it back, the inits are the same processes, the records hold
// it, and `up` with the same definition finds nothing changed.
TEST_F(InspectFleetTest, ReloadAppliesANewPidsMaxWithoutARestart) {
  auto up_result = up(2);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  const auto before = *fleet_state();

  auto dry = reload("HACO_TEST_PIDS_MAX=100", "--dry-run");
  EXPECT_EQ(dry.status, 0) << dry.output;
  EXPECT_NE(dry.output.find("pids.max 64 -> 100: would be applied"), std::string::npos) << dry.output;
  EXPECT_NE(dry.output.find("2 instances with limits to apply"), std::string::npos) << dry.output;
  for (const auto& r : before.instances) EXPECT_EQ(kernel_pids_max(r), "64");

  auto applied = reload("HACO_TEST_PIDS_MAX=100");
  ASSERT_EQ(applied.status, 0) << applied.output;
  EXPECT_NE(applied.output.find("pids.max 64 -> 100: applied"), std::string::npos) << applied.output;
  const auto after = *fleet_state();
  ASSERT_EQ(after.instances.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    const auto& r = after.instances[k];
    SCOPED_TRACE(r.name());
    EXPECT_EQ(kernel_pids_max(r), "100");
    EXPECT_EQ(r.process, before.instances[k].process);
    EXPECT_TRUE(state::is_alive(r.process));
    EXPECT_EQ(r.restarts, 0u);
    EXPECT_EQ(r.spec.container.cgroup, (std::vector<CgroupSetting>{{"pids.max", "100"}}));
    EXPECT_EQ(r.spec_hash, state::spec_hash(r.spec));
  }
  auto doc = inspect_json(port(1));
  auto limits = doc.at("cgroup").at("limits");
  EXPECT_EQ(limits.at(0).at("kernel"), "100");
  EXPECT_EQ(limits.at(0).at("matches"), true);

  // Nothing left to do; `up` of the same definition finds it unchanged.
  auto again = reload("HACO_TEST_PIDS_MAX=100");
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("2 unchanged"), std::string::npos) << again.output;
  auto up_again = run_command("HACO_TEST_PIDS_MAX=100 " +
                              haco_command("up --name " + fleet_ + " --ports " + ports(2) + " --timeout 20 " +
                                           definition()));
  EXPECT_EQ(up_again.status, 0) << up_again.output;
  EXPECT_NE(up_again.output.find("already running"), std::string::npos) << up_again.output;
}

// A changed init command needs a restart: listed, not applied.
TEST_F(InspectFleetTest, ReloadListsAChangedInitCommandAndLeavesItAlone) {
  auto up_result = up(1);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  const auto before = *fleet_state();
  auto result = reload("HACO_TEST_SH='sleep 1000'", "--json");
  ASSERT_EQ(result.status, 0) << result.output;
  auto doc = nlohmann::json::parse(result.output.substr(result.output.find('{')));
  EXPECT_EQ(doc.at("schema"), 1);
  ASSERT_EQ(doc.at("instances").size(), 1u);
  EXPECT_EQ(doc.at("instances").at(0).at("needs_restart"), nlohmann::json::array({"init command"}));
  EXPECT_EQ(doc.at("instances").at(0).at("limits_outcome"), "none");
  const auto after = *fleet_state();
  EXPECT_EQ(after.instances[0].process, before.instances[0].process);
  EXPECT_EQ(after.instances[0].spec, before.instances[0].spec);
  EXPECT_EQ(after.instances[0].spec_hash, before.instances[0].spec_hash);
  EXPECT_TRUE(state::is_alive(after.instances[0].process));
}

// An instance that ended has no cgroup to write: its record takes the new
// limits for its next start. With the supervisor killed, nothing is applied (exit 1),
// and inspect says the supervisor is gone.
TEST_F(InspectFleetTest, ReloadOfAnEndedInstanceAndOfADeadSupervisor) {
  auto up_result = up(2);
  ASSERT_EQ(up_result.status, 0) << up_result.output;
  auto fleet = *fleet_state();
  ASSERT_EQ(::kill(fleet.instances[1].process.pid, SIGKILL), 0);
  wait_for_state(1, state::InstanceState::failed);
  auto result = reload("HACO_TEST_PIDS_MAX=80");
  EXPECT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find(fleet.instances[1].name() + ": pids.max 64 -> 80: recorded: not running"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(kernel_pids_max(fleet.instances[0]), "80");
  // The killed container still inspects: its end, no namespaces to read.
  auto history = inspect_json(port(1));
  EXPECT_EQ(history.at("state"), "failed");
  EXPECT_EQ(history.at("init").at("running"), false);
  EXPECT_FALSE(history.at("namespaces_error").is_null());
  EXPECT_EQ(history.at("last_exit"), "signal 9 (Killed)");
  ASSERT_EQ(history.at("recent_exits").size(), 1u);
  EXPECT_EQ(history.at("recent_exits").at(0).at("signal"), 9);

  ASSERT_EQ(::kill(fleet.supervisor.pid, SIGKILL), 0);
  for (int k = 0; k < 200 && state::is_alive(fleet.supervisor); ++k) ::usleep(10000);
  auto dead = reload("HACO_TEST_PIDS_MAX=90");
  EXPECT_EQ(dead.status, 1) << dead.output;
  EXPECT_NE(dead.output.find("does not answer"), std::string::npos) << dead.output;
  EXPECT_EQ(kernel_pids_max(fleet.instances[0]), "80");
  auto doc = inspect_json(port());
  EXPECT_EQ(doc.at("supervised"), false);
  EXPECT_EQ(doc.at("state"), "running (unsupervised)");
}

}  // namespace
}  // namespace haco::testing
