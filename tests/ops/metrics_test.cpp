// ops::format_metrics over fabricated fleets, checked by a strict reader of
// the Prometheus text format as node-exporter's textfile collector takes it
// (one HELP and TYPE per family before its samples, each family's samples
// together, no timestamps, escaped label values, cumulative histogram
// buckets ending at +Inf = _count, a final newline); ops::read_cgroup_usage
// over directories that stand for cgroup v1 hierarchies; collect_metrics
// over state files. tests/supervisor/metrics_fleet_test.cpp runs it on a
// real fleet.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "../supervisor/sample_instance.hpp"
#include "prometheus_text.hpp"
#include "haco/error.hpp"
#include "haco/ops_metrics.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using haco::testing::parse_strictly;
using haco::testing::sample_instance;

state::InstanceRecord record(std::uint16_t port, state::InstanceState s) {
  state::InstanceRecord r;
  r.spec = sample_instance(port);
  r.state = s;
  return r;
}

FleetMetrics fleet(const std::string& name) {
  FleetMetrics m;
  m.state.fleet = name;
  return m;
}

TEST(Metrics, EveryStateIsListedAndEachFamilyIsTogether) {
  auto web = fleet("web");
  web.supervised = true;
  web.state.instances = {record(10001, state::InstanceState::running), record(10002, state::InstanceState::running),
                         record(10003, state::InstanceState::failed)};
  web.state.instances[2].restarts = 4;
  auto api = fleet("api");
  api.state.instances = {record(20001, state::InstanceState::stopped)};
  auto x = parse_strictly(format_metrics({web, api}));
  EXPECT_EQ(x.types["haco_fleet_instances"], "gauge");
  EXPECT_EQ(x.named("haco_fleet_instances").size(), 2 * state::kInstanceStates.size());
  EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", "web"}, {"state", "running"}}), 2);
  EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", "web"}, {"state", "failed"}}), 1);
  EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", "web"}, {"state", "restarting"}}), 0);
  EXPECT_EQ(x.value("haco_fleet_instances", {{"fleet", "api"}, {"state", "stopped"}}), 1);
  EXPECT_EQ(x.value("haco_fleet_supervisor_up", {{"fleet", "web"}}), 1);
  EXPECT_EQ(x.value("haco_fleet_supervisor_up", {{"fleet", "api"}}), 0);
  EXPECT_EQ(x.types["haco_instance_restarts_total"], "counter");
  EXPECT_EQ(x.value("haco_instance_restarts_total", {{"instance", "web-10003"}, {"port", "10003"}}), 4);
  EXPECT_EQ(x.value("haco_instance_restarts_total", {{"fleet", "api"}, {"instance", "web-20001"}}), 0);
  // No start measured, no cgroup read: those families are left out whole.
  EXPECT_FALSE(x.types.count("haco_start_latency_seconds"));
  EXPECT_FALSE(x.types.count("haco_instance_cpu_usage_seconds_total"));
}

TEST(Metrics, LabelValuesAreEscaped) {
  auto m = fleet("web");
  m.state.instances = {record(10001, state::InstanceState::running)};
  // Names are checked before they become records; the format must not rely on it.
  m.state.instances[0].spec.container.name = "a\"b\\c\nd";
  const auto text = format_metrics({m});
  EXPECT_NE(text.find(R"(instance="a\"b\\c\nd")"), std::string::npos) << text;
  auto x = parse_strictly(text);
  EXPECT_EQ(x.value("haco_instance_restarts_total", {{"instance", "a\"b\\c\nd"}}), 0);
  EXPECT_EQ(escape_label_value("plain-10001"), "plain-10001");
}

TEST(Metrics, LatencyHistogramsSumTheInstancesWithCumulativeBuckets) {
  auto m = fleet("web");
  m.state.instances = {record(10001, state::InstanceState::running), record(10002, state::InstanceState::running)};
  for (double s : {0.003, 0.004, 0.02}) state::add_start_latency(m.state.instances[0], "clone_to_exec", s);
  for (double s : {0.004, 90.0}) state::add_start_latency(m.state.instances[1], "clone_to_exec", s);
  state::add_start_latency(m.state.instances[1], "exec_to_ready", 1.2);
  auto x = parse_strictly(format_metrics({m}));
  EXPECT_EQ(x.types["haco_start_latency_seconds"], "histogram");
  const std::map<std::string, std::string> clone{{"fleet", "web"}, {"phase", "clone_to_exec"}};
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", clone), 5);
  EXPECT_NEAR(x.value("haco_start_latency_seconds_sum", clone), 0.003 + 0.004 + 0.02 + 0.004 + 90.0, 1e-9);
  auto bucket = [&](const std::string& le) {
    auto labels = clone;
    labels["le"] = le;
    return x.value("haco_start_latency_seconds_bucket", labels);
  };
  EXPECT_EQ(bucket("0.001"), 0);
  EXPECT_EQ(bucket("0.0025"), 0);
  EXPECT_EQ(bucket("0.005"), 3);
  EXPECT_EQ(bucket("0.025"), 4);
  EXPECT_EQ(bucket("60"), 4);
  EXPECT_EQ(bucket("+Inf"), 5);
  EXPECT_EQ(x.named("haco_start_latency_seconds_bucket", clone).size(), state::kLatencyBoundsSeconds.size() + 1);
  EXPECT_EQ(x.value("haco_start_latency_seconds_count", {{"phase", "exec_to_ready"}}), 1);
}

TEST(Metrics, UsageOnlyForInstancesThatHaveIt) {
  auto m = fleet("web");
  m.state.instances = {record(10001, state::InstanceState::running), record(10002, state::InstanceState::stopped),
                       record(10003, state::InstanceState::running)};
  m.usage["web-10001"] = CgroupUsage{1.25, 4096 * 100, 64u << 20};
  m.usage["web-10003"] = CgroupUsage{0.5, 8192, std::nullopt};
  auto x = parse_strictly(format_metrics({m}));
  EXPECT_EQ(x.types["haco_instance_cpu_usage_seconds_total"], "counter");
  EXPECT_EQ(x.value("haco_instance_cpu_usage_seconds_total", {{"instance", "web-10001"}}), 1.25);
  EXPECT_EQ(x.value("haco_instance_memory_bytes", {{"instance", "web-10003"}}), 8192);
  EXPECT_EQ(x.value("haco_instance_memory_limit_bytes", {{"instance", "web-10001"}}), 64 << 20);
  EXPECT_TRUE(x.named("haco_instance_memory_limit_bytes", {{"instance", "web-10003"}}).empty());
  EXPECT_TRUE(x.named("haco_instance_cpu_usage_seconds_total", {{"instance", "web-10002"}}).empty());
}

// The reader the tests above rely on refuses what the collector would.
TEST(Metrics, TheStrictReaderRefusesBrokenTexts) {
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a_total x\n# TYPE a_total counter\na_total 1"), "newline");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a_total x\n# TYPE a_total counter\na_total 1 1700000000000\n"),
                          "timestamp");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\na 1\n"),
                          "not together");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n"), "second TYPE");
  EXPECT_NONFATAL_FAILURE(parse_strictly("a 1\n"), "before its HELP");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a x\n# TYPE a gauge\na{l=\"x\"y\"} 1\n"), "label");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP a x\n# TYPE a counter\na 1\n"), "a");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                         "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
                          "not cumulative");
  EXPECT_NONFATAL_FAILURE(parse_strictly("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                         "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n"),
                          "h");
}

TEST(Metrics, NoFleetIsAnEmptyText) { EXPECT_EQ(format_metrics({}), ""); }

TEST(Metrics, CgroupUsageFromV1Files) {
  testing::TempDir dir;
  auto cpu = dir.file("cpu,cpuacct/web-10001/cpuacct.usage", "2500000000\n");
  dir.file("memory/web-10001/memory.usage_in_bytes", "1048576\n");
  dir.file("memory/web-10001/memory.limit_in_bytes", "9223372036854771712\n");
  const std::string cpu_dir = (dir.path() / "cpu,cpuacct/web-10001").string();
  const std::string memory_dir = (dir.path() / "memory/web-10001").string();
  auto usage = read_cgroup_usage({cpu_dir, memory_dir, (dir.path() / "gone").string()});
  ASSERT_TRUE(usage.cpu_seconds);
  EXPECT_DOUBLE_EQ(*usage.cpu_seconds, 2.5);
  EXPECT_EQ(usage.memory_bytes, 1048576u);
  EXPECT_FALSE(usage.memory_limit_bytes) << "v1's 'unlimited' is no limit";
  dir.file("memory/web-10001/memory.limit_in_bytes", "67108864\n");
  EXPECT_EQ(read_cgroup_usage({memory_dir}).memory_limit_bytes, 67108864u);
  auto none = read_cgroup_usage({(dir.path() / "gone").string()});
  EXPECT_FALSE(none.cpu_seconds || none.memory_bytes || none.memory_limit_bytes);
}

TEST(Metrics, CollectsEveryFleetOrTheOneNamed) {
  testing::TempDir dir;
  const std::string state_root = (dir.path() / "state").string(), data_root = (dir.path() / "data").string();
  for (const std::string name : {"web", "api"}) {
    state::FleetPaths paths{state_root, data_root, name};
    paths.make_directories();
    state::FleetState s;
    s.fleet = name;
    s.supervisor = {999999999, 1};  // gone
    s.instances = {record(10001, state::InstanceState::running)};
    s.instances[0].process = {999999998, 1};  // gone: no usage read
    state::save_state(paths, s);
  }
  auto all = collect_metrics(state_root, data_root, "");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].state.fleet, "api");
  EXPECT_FALSE(all[0].supervised);
  EXPECT_TRUE(all[0].usage.empty());
  auto one = collect_metrics(state_root, data_root, "web");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].state.fleet, "web");
  EXPECT_THROW(collect_metrics(state_root, data_root, "nope"), InputError);
  // A state file that cannot be read leaves its fleet out, said, not the others.
  dir.file("state/api/fleet.json", "{not json");
  std::vector<std::string> unreadable;
  auto rest = collect_metrics(state_root, data_root, "", &unreadable);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].state.fleet, "web");
  ASSERT_EQ(unreadable.size(), 1u);
  EXPECT_EQ(unreadable[0].rfind("api: ", 0), 0u) << unreadable[0];
  EXPECT_THROW(collect_metrics(state_root, data_root, "api"), Error);
  EXPECT_TRUE(collect_metrics((dir.path() / "none").string(), data_root, "").empty());
}

}  // namespace
}  // namespace haco::ops
