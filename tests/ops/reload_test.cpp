// ops::reload over a fake supervisor client and a made-up expansion: what is
// compared, what is applied live, what is listed as needing a restart, and
// what a definition that no longer evaluates does; fleet state and locks are
// real files in a temporary directory.
#include <gtest/gtest.h>

#include "../supervisor/sample_instance.hpp"
#include "fakes.hpp"
#include "haco/error.hpp"
#include "haco/ops_reload.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using haco::testing::sample_instance;
using testing::FakeSupervisor;
using testing::RecordingSink;
using Settings = std::vector<CgroupSetting>;

TEST(DiffSpecs, ChangedAndAddedLimitsApplyLiveEverythingElseNeedsARestart) {
  auto recorded = sample_instance(10001);
  recorded.container.cgroup = {{"pids.max", "64"}, {"cpu.cfs_quota_us", "30000"}};
  auto now = recorded;
  now.index = 7;  // the port list's order is not the instance
  now.container.source_file = "/elsewhere/web.haco";
  EXPECT_TRUE(diff_specs(recorded, now).unchanged());

  now.container.cgroup = {{"cpu.cfs_quota_us", "30000"}, {"pids.max", "100"}, {"memory.limit_in_bytes", "67108864"}};
  auto diff = diff_specs(recorded, now);
  EXPECT_EQ(diff.limits, (std::vector<LimitChange>{{"pids.max", "64", "100"}, {"memory.limit_in_bytes", std::nullopt, "67108864"}}));
  EXPECT_TRUE(diff.needs_restart.empty());
  EXPECT_EQ(diff.cgroup, (Settings{{"pids.max", "100"}, {"cpu.cfs_quota_us", "30000"}, {"memory.limit_in_bytes", "67108864"}}));

  // A removed limit stays in the kernel: listed, and kept in the record.
  now.container.cgroup = {{"pids.max", "100"}};
  now.container.command = {"/bin/busybox", "httpd", "-f", "-v"};
  now.container.environment = {"MARK=b"};
  now.container.uid_map = {{0, 5000000, 100}};
  now.container.namespaces.push_back(Namespace::net);
  now.container.bootstrap.commands = {"mkdir -p /x"};  // recorded, not what identifies it
  diff = diff_specs(recorded, now);
  EXPECT_EQ(diff.limits, (std::vector<LimitChange>{{"pids.max", "64", "100"}}));
  EXPECT_EQ(diff.cgroup, (Settings{{"pids.max", "100"}, {"cpu.cfs_quota_us", "30000"}}));
  ASSERT_EQ(diff.needs_restart.size(), 5u);
  EXPECT_EQ(diff.needs_restart[0], "init command");
  EXPECT_EQ(diff.needs_restart[1], "namespaces");
  EXPECT_EQ(diff.needs_restart[2], "uid mapping");
  EXPECT_EQ(diff.needs_restart[3], "environment");
  EXPECT_NE(diff.needs_restart[4].find("cgroup cpu.cfs_quota_us removed"), std::string::npos) << diff.needs_restart[4];
}

class ReloadTest : public ::testing::Test {
 protected:
  ReloadTest() {
    request_.state_root = (dir_.path() / "state").string();
    request_.data_root = (dir_.path() / "data").string();
    supervisor_.listening = true;
  }

  state::FleetPaths paths() const { return {request_.state_root, request_.data_root, "web"}; }

  // web-10001 running, web-10002 running, web-10003 stopped; all with
  // pids.max 64, expanded with --port-env HTTP_PORT and --pids-max 512.
  void record_fleet(bool with_expansion = true) {
    state::FleetState state;
    state.fleet = "web";
    state.definition = "/defs/web.haco";
    for (std::uint16_t port : {10001, 10002, 10003}) {
      state::InstanceRecord r;
      r.spec = sample_instance(port);
      r.spec_hash = state::spec_hash(r.spec);
      r.state = port == 10003 ? state::InstanceState::stopped : state::InstanceState::running;
      if (with_expansion) r.expansion = state::RecordedExpansion{{"HTTP_PORT"}, "512", false};
      state.instances.push_back(r);
    }
    paths().make_directories();
    state::save_state(paths(), state);
  }

  // The definition as it is now: `change` edits every port's instance.
  Expander expander(std::function<void(InstanceSpec&)> change) {
    return [this, change](const std::string& definition, const std::vector<std::uint16_t>& ports,
                          const fleet::ExpandOptions& options) {
      evaluated_definition_ = definition;
      evaluated_ports_.insert(evaluated_ports_.end(), ports.begin(), ports.end());
      options_.push_back(options);
      std::vector<InstanceSpec> out;
      for (auto port : ports) {
        auto spec = sample_instance(port);
        change(spec);
        out.push_back(spec);
      }
      return out;
    };
  }

  ReloadResult run(Expander expand) { return reload(request_, supervisor_, expand, sink_); }

  haco::testing::TempDir dir_;
  ReloadRequest request_;
  FakeSupervisor supervisor_;
  RecordingSink sink_;
  std::string evaluated_definition_;
  std::vector<std::uint16_t> evaluated_ports_;
  std::vector<fleet::ExpandOptions> options_;
};

TEST_F(ReloadTest, EvaluatesTheRecordedDefinitionAsUpDid) {
  record_fleet();
  request_.base_environment = {{"HACO_TEST_PIDS_MAX", "100"}};
  auto result = run(expander([](InstanceSpec&) {}));
  EXPECT_EQ(evaluated_definition_, "/defs/web.haco");
  EXPECT_EQ(evaluated_ports_, (std::vector<std::uint16_t>{10001, 10002, 10003}));
  ASSERT_EQ(options_.size(), 1u);
  EXPECT_EQ(options_[0].port_env_names, std::vector<std::string>{"HTTP_PORT"});
  EXPECT_EQ(options_[0].default_pids_max, "512");
  EXPECT_EQ(options_[0].base_environment.at("HACO_TEST_PIDS_MAX"), "100");
  // Nothing changed: nothing asked of the supervisor.
  EXPECT_TRUE(supervisor_.calls.empty());
  for (const auto& i : result.instances) EXPECT_TRUE(i.diff.unchanged()) << i.instance;
}

TEST_F(ReloadTest, ChangedLimitsGoToTheRunningInstancesAndToTheRecordsOfTheOthers) {
  record_fleet();
  auto result = run(expander([](InstanceSpec& s) { s.container.cgroup = {{"pids.max", "100"}}; }));
  ASSERT_EQ(supervisor_.limit_updates.size(), 1u);
  const auto& sent = supervisor_.limit_updates[0];
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent.at("web-10001"), (Settings{{"pids.max", "100"}}));
  EXPECT_EQ(sent.at("web-10002"), (Settings{{"pids.max", "100"}}));
  EXPECT_EQ(sent.at("web-10003"), (Settings{{"pids.max", "100"}}));
  ASSERT_EQ(result.instances.size(), 3u);
  EXPECT_EQ(result.instances[0].limits, LimitsOutcome::applied);
  EXPECT_EQ(result.instances[1].limits, LimitsOutcome::applied);
  EXPECT_EQ(result.instances[2].limits, LimitsOutcome::recorded);
  EXPECT_EQ(result.failed(), 0u);
}

TEST_F(ReloadTest, AnInstanceTheSupervisorRefusedIsAFailure) {
  record_fleet();
  supervisor_.refuse_limits["web-10002"] = "pids.max: wrote \"100\" but the kernel reads back \"64\"";
  auto result = run(expander([](InstanceSpec& s) { s.container.cgroup = {{"pids.max", "100"}}; }));
  EXPECT_EQ(result.instances[0].limits, LimitsOutcome::applied);
  EXPECT_EQ(result.instances[1].limits, LimitsOutcome::failed);
  EXPECT_NE(result.instances[1].error.find("reads back"), std::string::npos);
  EXPECT_EQ(result.failed(), 1u);
}

TEST_F(ReloadTest, ARestartOnlyChangeIsListedAndNothingIsSent) {
  record_fleet();
  auto result = run(expander([](InstanceSpec& s) { s.container.command = {"/bin/sh", "-c", "sleep 1000"}; }));
  EXPECT_TRUE(supervisor_.calls.empty());
  for (const auto& i : result.instances) {
    EXPECT_EQ(i.limits, LimitsOutcome::none);
    EXPECT_EQ(i.diff.needs_restart, std::vector<std::string>{"init command"});
  }
}

TEST_F(ReloadTest, DryRunSendsNothingAndNeedsNoSupervisor) {
  record_fleet();
  request_.dry_run = true;
  supervisor_.listening = false;
  auto result = run(expander([](InstanceSpec& s) { s.container.cgroup = {{"pids.max", "100"}}; }));
  EXPECT_TRUE(supervisor_.calls.empty());
  EXPECT_EQ(result.instances[0].limits, LimitsOutcome::would_apply);
  EXPECT_EQ(result.instances[2].limits, LimitsOutcome::not_running);
}

TEST_F(ReloadTest, WithoutASupervisorNothingIsAppliedAndItSaysWhy) {
  record_fleet();
  supervisor_.listening = false;
  try {
    run(expander([](InstanceSpec& s) { s.container.cgroup = {{"pids.max", "100"}}; }));
    FAIL() << "no error";
  } catch (const InputError& e) {
    FAIL() << "not bad input: " << e.what();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not answer"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(supervisor_.limit_updates.empty());
}

TEST_F(ReloadTest, ADefinitionThatNoLongerEvaluatesIsBadInput) {
  record_fleet();
  Expander broken = [](const std::string&, const std::vector<std::uint16_t>&,
                       const fleet::ExpandOptions&) -> std::vector<InstanceSpec> {
    throw Error("web.haco:3: unknown method 'add_mountpoint'");
  };
  try {
    run(broken);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no longer evaluates"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("add_mountpoint"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(supervisor_.calls.empty());
}

TEST_F(ReloadTest, AnUnknownFleetIsBadInput) {
  record_fleet();
  request_.fleet = "nosuch";
  EXPECT_THROW(run(expander([](InstanceSpec&) {})), InputError);
}

TEST_F(ReloadTest, RecordsWithoutAnExpansionAreEvaluatedWithTheDefaultsAndSaidSo) {
  record_fleet(false);
  run(expander([](InstanceSpec&) {}));
  ASSERT_EQ(options_.size(), 1u);
  EXPECT_TRUE(options_[0].port_env_names.empty());
  EXPECT_EQ(options_[0].default_pids_max, "512");
  EXPECT_TRUE(sink_.said("evaluated with the defaults"));
}

TEST_F(ReloadTest, AnotherCommandHoldingTheLockStopsIt) {
  record_fleet();
  auto held = state::FleetLock::acquire(paths(), false, "up");
  EXPECT_THROW(run(expander([](InstanceSpec& s) { s.container.cgroup = {{"pids.max", "100"}}; })), Error);
  EXPECT_TRUE(supervisor_.limit_updates.empty());
}

}  // namespace
}  // namespace haco::ops
