// `metrics` on a real fleet of busybox containers: the state gauges, the
// start latencies `up` measured and those of a restart by the policy, the
// restart counter, and cpu and memory as the instances' cgroup files say.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "../ops/prometheus_text.hpp"
#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

constexpr std::uint64_t kMemoryMax = 64u << 20;

class MetricsFleetTest : public FleetTest {
 protected:
  Exposition metrics() const {
    auto out = run_command(haco_command("metrics --name " + fleet_) + " 2>&1");
    EXPECT_EQ(out.status, 0) << out.output;
    return parse_strictly(out.output);
  }

  std::map<std::string, std::string> of(const std::string& instance) const {
    return {{"fleet", fleet_}, {"instance", instance}};
  }
  std::map<std::string, std::string> phase(const std::string& name) const {
    return {{"fleet", fleet_}, {"phase", name}};
  }
};

// The first of `dirs` that has `file`, as a number; nullopt when none has it.
std::optional<double> cgroup_number(const std::vector<std::string>& dirs, const std::string& file,
                                    const std::string& key = "") {
  for (const auto& dir : dirs) {
    if (!std::filesystem::exists(dir + "/" + file)) continue;
    std::istringstream in(read_text(dir + "/" + file));
    if (key.empty()) return std::stod(in.str());
    for (std::string name, value; in >> name >> value;)
      if (name == key) return std::stod(value);
  }
  return std::nullopt;
}

// cpu seconds and memory bytes of an instance as the test reads them: v1's
// files where a v1 directory has them, v2's otherwise.
std::optional<double> cpu_seconds(const state::InstanceRecord& r) {
  if (auto ns = cgroup_number(r.cgroup_paths, "cpuacct.usage")) return *ns / 1e9;
  if (auto us = cgroup_number(r.cgroup_paths, "cpu.stat", "usage_usec")) return *us / 1e6;
  return std::nullopt;
}
std::optional<double> memory_bytes(const state::InstanceRecord& r) {
  if (auto v1 = cgroup_number(r.cgroup_paths, "memory.usage_in_bytes")) return v1;
  return cgroup_number(r.cgroup_paths, "memory.current");
}

TEST_F(MetricsFleetTest, StatesLatenciesRestartsAndCgroupUsageOfARealFleet) {
  ::setenv("HACO_TEST_MEMORY_MAX", std::to_string(kMemoryMax).c_str(), 1);
  auto started = up(3, "--restart always");
  ASSERT_EQ(started.status, 0) << started.output;
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet && fleet->instances.size() == 3u);

  std::map<std::string, double> cpu_before;
  for (const auto& r : fleet->instances) {
    auto cpu = cpu_seconds(r);
    ASSERT_TRUE(cpu) << r.name() << ": no cpu figure in " << ::testing::PrintToString(r.cgroup_paths);
    cpu_before[r.name()] = *cpu;
  }
  auto x = metrics();
  for (auto s : state::kInstanceStates) {
    const std::string name(state::instance_state_name(s));
    EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", fleet_}, {"state", name}}),
              s == state::InstanceState::running ? 3 : 0)
        << name;
  }
  EXPECT_EQ(x.value("haco_fleet_supervisor_up", {{"fleet", fleet_}}), 1);
  // Every phase `up` measured, once per instance.
  for (const char* name : {"expand", "rootfs", "clone_to_exec", "exec_to_ready"})
    EXPECT_EQ(x.value("haco_start_latency_seconds_count", phase(name)), 3) << name;
  EXPECT_GT(x.value("haco_start_latency_seconds_sum", phase("clone_to_exec")), 0);

  for (const auto& r : fleet->instances) {
    SCOPED_TRACE(r.name());
    EXPECT_EQ(x.value("haco_instance_restarts_total", of(r.name())), 0);
    // cpu: between what the cgroup said before and after `metrics` read it.
    auto cpu_after = cpu_seconds(r);
    ASSERT_TRUE(cpu_after);
    const double cpu = x.value("haco_instance_cpu_usage_seconds_total", of(r.name()));
    EXPECT_GE(cpu, cpu_before[r.name()]);
    EXPECT_LE(cpu, *cpu_after);
    // memory moves between reads: the same order of magnitude.
    auto memory = memory_bytes(r);
    ASSERT_TRUE(memory) << ::testing::PrintToString(r.cgroup_paths);
    const double shown = x.value("haco_instance_memory_bytes", of(r.name()));
    EXPECT_GT(shown, 0);
    EXPECT_GT(shown, *memory / 10);
    EXPECT_LT(shown, *memory * 10);
    EXPECT_EQ(x.value("haco_instance_memory_limit_bytes", of(r.name())), double(kMemoryMax));
    EXPECT_EQ(x.named("haco_instance_restarts_total", of(r.name())).front().labels.at("port"),
              std::to_string(r.spec.port));
  }

  // An init killed: the policy starts it again, and that launch's
  // clone_to_exec counts; nobody probes its readiness.
  const auto& victim = fleet->instances[1];
  ASSERT_EQ(::kill(victim.process.pid, SIGKILL), 0);
  ASSERT_TRUE(wait_for(
      [&] {
        auto now = fleet_state();
        const auto* r = now ? now->find(victim.name()) : nullptr;
        return r && r->restarts == 1 && r->state == state::InstanceState::running && r->process.pid > 0 &&
               r->process.pid != victim.process.pid && !r->start_latency.empty() &&
               r->start_latency.at("clone_to_exec").count() == 2;
      },
      std::chrono::seconds(15)))
      << "the killed instance was not restarted";
  x = metrics();
  EXPECT_EQ(x.value("haco_instance_restarts_total", of(victim.name())), 1);
  EXPECT_EQ(x.value("haco_instance_restarts_total", of(fleet->instances[0].name())), 0);
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", phase("clone_to_exec")), 4);
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", phase("exec_to_ready")), 3);
  EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", fleet_}, {"state", "running"}}), 3);

  // `restart` of one instance through the command measures every phase of
  // its start again.
  auto restarted = haco("restart --name " + fleet_ + " --ports " + ports(1, 2) + " --timeout 20");
  ASSERT_EQ(restarted.status, 0) << restarted.output;
  x = metrics();
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", phase("clone_to_exec")), 5);
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", phase("exec_to_ready")), 4);

  // --output: the same text, replaced whole, readable by a collector that is
  // not root, with no temporary file left beside it.
  const auto dir = temp_->path() / "textfile";
  std::filesystem::create_directories(dir);
  const auto file = (dir / "haco.prom").string();
  auto written = haco("metrics --name " + fleet_ + " --output " + file);
  ASSERT_EQ(written.status, 0) << written.output;
  EXPECT_EQ(written.output, "");
  auto from_file = parse_strictly(read_text(file));
  EXPECT_EQ(from_file.value("haco_start_latency_seconds_count", phase("clone_to_exec")), 5);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);

  // Checked by Prometheus's own tool where it is installed.
  if (run_command("command -v promtool >/dev/null").status == 0) {
    auto checked = run_command("promtool check metrics < " + file + " 2>&1");
    EXPECT_EQ(checked.status, 0) << checked.output;
  }

  auto bad = haco("metrics --name no-such-fleet");
  EXPECT_EQ(bad.status, 2) << bad.output;

  // Once the fleet is down it is gone from the output.
  auto down = haco("down --name " + fleet_);
  ASSERT_EQ(down.status, 0) << down.output;
  auto after = run_command(haco_command("metrics") + " 2>&1");
  EXPECT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(after.output.find("fleet=\"" + fleet_ + "\""), std::string::npos) << after.output;
  parse_strictly(after.output);
}

}  // namespace
}  // namespace haco::testing
