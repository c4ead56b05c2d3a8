// The supervisor's decisions, driven without processes: a fake clock, launch
// results made up by the test, effects read back.
#include <gtest/gtest.h>

#include <algorithm>

#include "haco/overloaded.hpp"
#include "supervisor/fleet_machine.hpp"

namespace haco::supervisor {
namespace {

using namespace std::chrono_literals;
using state::InstanceState;

class FakeClock final : public FleetClock {
 public:
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::int64_t unix_now_ms() const override {
    return 1'700'000'000'000 + std::chrono::duration_cast<std::chrono::milliseconds>(now_ - start_).count();
  }
  void advance(std::chrono::milliseconds by) { now_ += by; }
  std::chrono::steady_clock::time_point start() const { return start_; }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::time_point{} + 1h;
  std::chrono::steady_clock::time_point now_ = start_;
};

state::InstanceRecord record(const std::string& name) {
  state::InstanceRecord r;
  r.spec.container.name = name;
  r.log_path = "/logs/" + name + ".log";
  return r;
}

std::vector<state::InstanceRecord> records(std::initializer_list<const char*> names) {
  std::vector<state::InstanceRecord> out;
  for (const char* name : names) out.push_back(record(name));
  return out;
}

template <typename T>
std::vector<T> all(const Effects& effects) {
  std::vector<T> out;
  for (const auto& effect : effects)
    if (auto* e = std::get_if<T>(&effect)) out.push_back(*e);
  return out;
}

template <typename T>
bool has(const Effects& effects) {
  return !all<T>(effects).empty();
}

// "a@0 b@1": each launch as instance@spawner.
std::string launches(const Effects& effects) {
  std::string out;
  for (const auto& launch : all<effect::Launch>(effects))
    out += (out.empty() ? "" : " ") + launch.instance + "@" + std::to_string(launch.spawner);
  return out;
}

// The replies to `operation`, one word each: "started:a failed:b done".
std::string replies(const Effects& effects, OperationId operation) {
  std::string out;
  auto add = [&](const std::string& word) { out += (out.empty() ? "" : " ") + word; };
  for (const auto& reply : all<effect::Reply>(effects)) {
    if (reply.operation != operation) continue;
    std::visit(Overloaded{[&](const protocol::StartedEvent& e) { add("started:" + e.instance); },
                          [&](const protocol::FailedEvent& e) { add("failed:" + e.instance); },
                          [&](const protocol::ExitedEvent& e) { add("exited:" + e.instance); },
                          [&](const protocol::Done& d) { add(d.error ? "done:" + *d.error : "done"); }},
               reply.reply);
  }
  return out;
}

state::ExitRecord exit_code(int code) {
  state::ExitRecord e;
  e.code = code;
  return e;
}

class FleetMachineTest : public ::testing::Test {
 protected:
  FleetMachine& make(unsigned spawners, std::string_view restart = "no", std::chrono::milliseconds stagger = 0ms) {
    machine_.emplace(FleetMachineConfig{parse_restart_policy(restart), spawners, stagger}, clock_);
    return *machine_;
  }
  Effects succeed(unsigned spawner, pid_t pid = 100) {
    return machine_->launch_succeeded(spawner, {pid, 42}, {"/sys/fs/cgroup/x"}, 1, 2);
  }
  InstanceState state_of(const std::string& name) { return machine_->record(name)->state; }

  FakeClock clock_;
  std::optional<FleetMachine> machine_;
};

TEST_F(FleetMachineTest, StartOfFiveWithTwoSpawnersDispatchesTwoAtATimeInOrder) {
  auto& m = make(2);
  auto effects = m.start(1, records({"a", "b", "c", "d", "e"}));
  EXPECT_EQ(launches(effects), "a@0 b@1");
  EXPECT_EQ(replies(effects, 1), "");
  effects = succeed(1);
  EXPECT_EQ(launches(effects), "c@1");
  EXPECT_EQ(replies(effects, 1), "started:b");
  effects = m.launch_failed(0, "no such file");
  EXPECT_EQ(launches(effects), "d@0");
  EXPECT_EQ(replies(effects, 1), "failed:a");
  EXPECT_EQ(state_of("a"), InstanceState::failed);
  EXPECT_EQ(m.record("a")->error, "no such file");
  EXPECT_EQ(launches(succeed(0)), "e@0");
  EXPECT_EQ(launches(succeed(1)), "");
  effects = succeed(0);
  EXPECT_EQ(replies(effects, 1), "started:e done");
  EXPECT_EQ(state_of("e"), InstanceState::running);
  EXPECT_EQ(m.record("e")->process.pid, 100);
}

TEST_F(FleetMachineTest, ALostSpawnerIsNotUsedUntilReplaced) {
  auto& m = make(2);
  m.start(1, records({"a", "b", "c"}));
  auto effects = m.spawner_lost(0, "the spawner died while starting it");
  EXPECT_EQ(replies(effects, 1), "failed:a");
  EXPECT_EQ(launches(effects), "");
  EXPECT_EQ(launches(succeed(1)), "c@1");
  EXPECT_EQ(launches(m.spawner_replaced(0)), "");
  EXPECT_EQ(replies(succeed(1), 1), "started:c done");
}

TEST_F(FleetMachineTest, StaggerSpacesDispatches) {
  auto& m = make(4, "no", 100ms);
  auto effects = m.start(1, records({"a", "b", "c"}));
  EXPECT_EQ(launches(effects), "a@0");
  auto armed = all<effect::ArmStaggerTimer>(effects);
  ASSERT_EQ(armed.size(), 1u);
  EXPECT_EQ(armed[0].at, clock_.start() + 100ms);
  // A spawner freed meanwhile does not shorten the wait, nor arm it twice.
  effects = succeed(0);
  EXPECT_EQ(launches(effects), "");
  EXPECT_FALSE(has<effect::ArmStaggerTimer>(effects));
  clock_.advance(60ms);
  effects = m.stagger_due();
  EXPECT_EQ(launches(effects), "");
  ASSERT_EQ(all<effect::ArmStaggerTimer>(effects).size(), 1u);
  EXPECT_EQ(all<effect::ArmStaggerTimer>(effects)[0].at, clock_.start() + 100ms);
  clock_.advance(40ms);
  effects = m.stagger_due();
  EXPECT_EQ(launches(effects), "b@0");
  ASSERT_EQ(all<effect::ArmStaggerTimer>(effects).size(), 1u);
  EXPECT_EQ(all<effect::ArmStaggerTimer>(effects)[0].at, clock_.start() + 200ms);
  clock_.advance(100ms);
  EXPECT_EQ(launches(m.stagger_due()), "c@1");
}

TEST_F(FleetMachineTest, WithoutStaggerEveryIdleSpawnerIsUsedAtOnce) {
  auto& m = make(3);
  auto effects = m.start(1, records({"a", "b", "c"}));
  EXPECT_EQ(launches(effects), "a@0 b@1 c@2");
  EXPECT_FALSE(has<effect::ArmStaggerTimer>(effects));
}

TEST_F(FleetMachineTest, ASecondStartOfARunningInstanceIsRefused) {
  auto& m = make(1);
  m.start(1, records({"a"}));
  // Launching.
  auto effects = m.start(2, records({"a"}));
  EXPECT_EQ(replies(effects, 2), "failed:a done");
  EXPECT_EQ(launches(effects), "");
  succeed(0);
  // Running.
  effects = m.start(3, records({"a", "b"}));
  EXPECT_EQ(replies(effects, 3), "failed:a");
  EXPECT_EQ(launches(effects), "b@0");
  auto refused = all<effect::Reply>(effects);
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(std::get<protocol::FailedEvent>(refused[0].reply).error, "already running");
  // Ended: it may start again.
  m.instance_exited("a", exit_code(0));
  EXPECT_EQ(state_of("a"), InstanceState::exited);
  succeed(0);
  effects = m.start(4, records({"a"}));
  EXPECT_EQ(launches(effects), "a@0");
  EXPECT_EQ(state_of("a"), InstanceState::starting);
}

TEST_F(FleetMachineTest, OnFailureTwoRestartsTwiceWithGrowingDelaysThenFails) {
  auto& m = make(1, "on-failure:2");
  m.start(1, records({"a"}));
  succeed(0);
  std::vector<std::chrono::milliseconds> delays;
  for (int round = 0; round < 2; ++round) {
    auto effects = m.instance_exited("a", exit_code(3));
    EXPECT_EQ(state_of("a"), InstanceState::restarting);
    auto timers = all<effect::ArmRestartTimer>(effects);
    ASSERT_EQ(timers.size(), 1u);
    delays.push_back(timers[0].delay);
    auto exited = all<effect::ReplyAfterOutput>(effects);
    ASSERT_EQ(exited.size(), 1u);
    EXPECT_EQ(exited[0].operation, 1u);
    EXPECT_TRUE(exited[0].event.restarting);
    EXPECT_EQ(exited[0].event.exit, "exit 3");
    EXPECT_EQ(launches(m.restart_due("a")), "a@0");
    EXPECT_EQ(state_of("a"), InstanceState::starting);
    succeed(0, 200 + round);
    EXPECT_EQ(state_of("a"), InstanceState::running);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{100ms, 200ms}));
  auto effects = m.instance_exited("a", exit_code(3));
  EXPECT_FALSE(has<effect::ArmRestartTimer>(effects));
  EXPECT_EQ(state_of("a"), InstanceState::failed);
  EXPECT_EQ(m.record("a")->restarts, 2u);
  ASSERT_TRUE(m.record("a")->last_exit);
  EXPECT_EQ(m.record("a")->last_exit->code, 3);
  EXPECT_EQ(m.record("a")->last_exit->at_unix_ms, clock_.unix_now_ms());
  ASSERT_EQ(all<effect::ReplyAfterOutput>(effects).size(), 1u);
  EXPECT_FALSE(all<effect::ReplyAfterOutput>(effects)[0].event.restarting);
}

// A client's measured starts go into the records; a restart by the policy
// (no client waits for it) adds its own clone_to_exec, a client's start
// does not (the client sends it).
TEST_F(FleetMachineTest, StartLatenciesComeFromClientsAndFromRestartsByThePolicy) {
  auto& m = make(1, "always");
  m.start(1, records({"a"}));
  machine_->launch_succeeded(0, {100, 42}, {"/sys/fs/cgroup/x"}, 1'000'000, 4'000'000);
  EXPECT_TRUE(m.record("a")->start_latency.empty());
  auto effects = m.record_latencies(2, {{"a", {{"clone_to_exec", 0.003}, {"exec_to_ready", 0.5}}},
                                        {"nobody", {{"clone_to_exec", 0.003}}},
                                        {"a", {{"Bad Phase", 1.0}}}});
  EXPECT_EQ(replies(effects, 2), "failed:nobody failed:a done");
  EXPECT_TRUE(has<effect::SaveStateNow>(effects));
  EXPECT_EQ(m.record("a")->start_latency.at("clone_to_exec").count(), 1u);
  EXPECT_EQ(m.record("a")->start_latency.at("exec_to_ready").count(), 1u);
  EXPECT_TRUE(m.take_changed().count("a"));

  m.instance_exited("a", exit_code(0));
  m.restart_due("a");
  machine_->launch_succeeded(0, {101, 43}, {"/sys/fs/cgroup/x"}, 1'000'000, 21'000'000);
  const auto& clone = m.record("a")->start_latency.at("clone_to_exec");
  EXPECT_EQ(clone.count(), 2u);
  EXPECT_DOUBLE_EQ(clone.sum_seconds, 0.003 + 0.020);
  EXPECT_EQ(m.record("a")->start_latency.at("exec_to_ready").count(), 1u);

  // A new start of the stopped instance keeps its latencies.
  m.stop(3, {"a"}, 1000ms, false, false);
  m.instance_exited("a", exit_code(0));
  m.start(4, records({"a"}));
  EXPECT_EQ(m.record("a")->start_latency.at("clone_to_exec").count(), 2u);
}

TEST_F(FleetMachineTest, OnFailureDoesNotRestartAnExitZero) {
  auto& m = make(1, "on-failure:2");
  m.start(1, records({"a"}));
  succeed(0);
  auto effects = m.instance_exited("a", exit_code(0));
  EXPECT_FALSE(has<effect::ArmRestartTimer>(effects));
  EXPECT_EQ(state_of("a"), InstanceState::exited);
}

TEST_F(FleetMachineTest, AlwaysRestartsAfterExitZero) {
  auto& m = make(1, "always");
  m.start(1, records({"a"}));
  succeed(0);
  auto effects = m.instance_exited("a", exit_code(0));
  ASSERT_EQ(all<effect::ArmRestartTimer>(effects).size(), 1u);
  EXPECT_EQ(state_of("a"), InstanceState::restarting);
  EXPECT_EQ(launches(m.restart_due("a")), "a@0");
  // The timer of a restart that was already made does nothing.
  EXPECT_EQ(launches(m.restart_due("a")), "");
}

TEST_F(FleetMachineTest, StopDuringTheRestartDelayCancelsTheRestart) {
  auto& m = make(1, "always");
  m.start(1, records({"a"}));
  succeed(0);
  m.instance_exited("a", exit_code(0));
  auto effects = m.stop(2, {"a"}, 5000ms, false, false);
  EXPECT_EQ(state_of("a"), InstanceState::stopped);
  EXPECT_FALSE(has<effect::SignalStop>(effects));
  EXPECT_EQ(replies(effects, 2), "done");
  EXPECT_EQ(launches(m.restart_due("a")), "");
  EXPECT_EQ(state_of("a"), InstanceState::stopped);
}

TEST_F(FleetMachineTest, StopDuringLaunchSignalsOnceTheLaunchSucceeds) {
  auto& m = make(1);
  m.start(1, records({"a"}));
  auto effects = m.stop(2, {"a"}, 5000ms, false, false);
  EXPECT_FALSE(has<effect::SignalStop>(effects));
  EXPECT_EQ(replies(effects, 2), "");
  EXPECT_EQ(state_of("a"), InstanceState::stopping);
  effects = succeed(0);
  auto signals = all<effect::SignalStop>(effects);
  ASSERT_EQ(signals.size(), 1u);
  EXPECT_EQ(signals[0].instances, std::vector<std::string>{"a"});
  EXPECT_EQ(replies(effects, 1), "started:a done");
  effects = m.instance_exited("a", exit_code(143));
  EXPECT_EQ(state_of("a"), InstanceState::stopped);
  EXPECT_EQ(replies(effects, 2), "done");
}

TEST_F(FleetMachineTest, StopBeforeDispatchAnswersTheStartAndLaunchesNothing) {
  auto& m = make(1);
  m.start(1, records({"a", "b"}));
  auto effects = m.stop(2, {"b"}, 5000ms, false, false);
  EXPECT_EQ(replies(effects, 1), "failed:b");
  EXPECT_EQ(replies(effects, 2), "done");
  EXPECT_EQ(state_of("b"), InstanceState::stopped);
  effects = succeed(0);
  EXPECT_EQ(launches(effects), "");
  EXPECT_EQ(replies(effects, 1), "started:a done");
}

TEST_F(FleetMachineTest, StopThenExitFinishesTheStop) {
  auto& m = make(2);
  m.start(1, records({"a", "b"}));
  succeed(0);
  succeed(1);
  auto effects = m.stop(2, {"a", "b"}, 5000ms, false, false);
  auto signals = all<effect::SignalStop>(effects);
  ASSERT_EQ(signals.size(), 1u);
  EXPECT_EQ(signals[0].instances, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(signals[0].kill_if_deaf);
  auto deadlines = all<effect::ArmStopDeadline>(effects);
  ASSERT_EQ(deadlines.size(), 1u);
  EXPECT_EQ(deadlines[0].operation, 2u);
  EXPECT_EQ(deadlines[0].after, 5000ms);
  effects = m.instance_exited("a", exit_code(0));
  EXPECT_EQ(replies(effects, 2), "");
  EXPECT_EQ(state_of("a"), InstanceState::stopped);
  // The deadline kills only what still runs.
  auto kills = all<effect::Kill>(m.stop_deadline_passed(2));
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].instances, std::vector<std::string>{"b"});
  effects = m.instance_exited("b", state::ExitRecord{-1, 9, 0});
  EXPECT_EQ(replies(effects, 2), "done");
  EXPECT_TRUE(has<effect::CancelStopDeadline>(effects));
  EXPECT_FALSE(has<effect::Kill>(m.stop_deadline_passed(2)));
}

TEST_F(FleetMachineTest, ForgetRemovesTheRecordOnceStopped) {
  auto& m = make(2);
  m.start(1, records({"a", "b"}));
  succeed(0);
  succeed(1);
  m.take_changed();
  auto effects = m.stop(2, {"a"}, 5000ms, true, false);
  ASSERT_NE(m.record("a"), nullptr);
  EXPECT_FALSE(has<effect::Forgotten>(effects));
  effects = m.instance_exited("a", exit_code(0));
  EXPECT_EQ(m.record("a"), nullptr);
  EXPECT_EQ(m.order(), std::vector<std::string>{"b"});
  auto forgotten = all<effect::Forgotten>(effects);
  ASSERT_EQ(forgotten.size(), 1u);
  EXPECT_EQ(forgotten[0].instance, "a");
  EXPECT_EQ(m.take_changed(), std::set<std::string>{"a"});
  EXPECT_EQ(replies(effects, 2), "done");
}

TEST_F(FleetMachineTest, ALaterStopWithoutForgetKeepsTheRecord) {
  auto& m = make(2);
  m.start(1, records({"a", "b"}));
  succeed(0);
  succeed(1);
  m.stop(2, {"a", "b"}, 5000ms, true, false);
  m.stop(3, {"a"}, 5000ms, false, false);
  m.instance_exited("a", exit_code(0));
  m.instance_exited("b", exit_code(0));
  EXPECT_NE(m.record("a"), nullptr);
  EXPECT_EQ(m.record("b"), nullptr);
}

TEST_F(FleetMachineTest, ShutdownRefusesNewStartsAndEndsOnceAllStopped) {
  auto& m = make(1);
  m.start(1, records({"a"}));
  succeed(0);
  auto effects = m.stop(2, m.names(), 10000ms, false, true);
  EXPECT_TRUE(m.shutting_down());
  EXPECT_FALSE(has<effect::ShutDown>(effects));
  effects = m.start(3, records({"b"}));
  EXPECT_EQ(replies(effects, 3), "done:the fleet is shutting down");
  EXPECT_EQ(launches(effects), "");
  EXPECT_EQ(m.record("b"), nullptr);
  effects = m.instance_exited("a", exit_code(0));
  EXPECT_EQ(replies(effects, 2), "done");
  EXPECT_TRUE(has<effect::ShutDown>(effects));
}

TEST_F(FleetMachineTest, ChangedRecordsDriveStateSaving) {
  auto& m = make(1);
  auto effects = m.start(1, records({"a", "b"}));
  // Saved before the first clone.
  auto save = std::find_if(effects.begin(), effects.end(),
                           [](const Effect& e) { return std::holds_alternative<effect::SaveStateNow>(e); });
  auto launch = std::find_if(effects.begin(), effects.end(),
                             [](const Effect& e) { return std::holds_alternative<effect::Launch>(e); });
  ASSERT_NE(save, effects.end());
  ASSERT_NE(launch, effects.end());
  EXPECT_LT(save, launch);
  EXPECT_EQ(m.take_changed(), (std::set<std::string>{"a", "b"}));
  EXPECT_TRUE(m.take_changed().empty());
  effects = succeed(0);
  EXPECT_TRUE(has<effect::StateChanged>(effects));
  EXPECT_EQ(m.take_changed(), std::set<std::string>{"a"});
  effects = m.launch_failed(0, "boom");
  EXPECT_TRUE(has<effect::StateChanged>(effects));
  // The last answer of the start is saved first.
  EXPECT_TRUE(has<effect::SaveStateNow>(effects));
  EXPECT_EQ(m.take_changed(), std::set<std::string>{"b"});
  EXPECT_EQ(m.order(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FleetMachineTest, AdoptedInstancesRunOrEnd) {
  auto& m = make(1, "on-failure");
  auto running = record("a");
  running.state = InstanceState::running;
  running.process = {300, 7};
  auto gone = record("b");
  gone.state = InstanceState::running;
  gone.process = {301, 8};
  auto exited = record("c");
  exited.state = InstanceState::exited;
  EXPECT_EQ(m.adopt(running, true), FleetMachine::Adopted::running);
  EXPECT_EQ(m.adopt(gone, false), FleetMachine::Adopted::ended);
  EXPECT_EQ(m.adopt(exited, false), FleetMachine::Adopted::kept);
  EXPECT_EQ(state_of("b"), InstanceState::failed);
  EXPECT_EQ(m.record("b")->process.pid, -1);
  EXPECT_EQ(m.order(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(replies(m.start(1, records({"a"})), 1), "failed:a done");
  // An adopted init that ends is handled by the restart policy; nobody waits
  // for its events.
  auto effects = m.instance_exited("a", state::ExitRecord{state::ExitRecord::kUnknown, 0, 0});
  EXPECT_EQ(state_of("a"), InstanceState::restarting);
  EXPECT_FALSE(has<effect::ReplyAfterOutput>(effects));
}

// Each end of an init is kept in the record's history (when, how, whether
// the policy restarted it, whether it was asked to stop), the last ten only;
// a new start of the instance keeps it.
TEST_F(FleetMachineTest, RecentExitsKeepTheLastTenEnds) {
  auto& m = make(1, "on-failure:10");
  m.start(1, records({"a"}));
  succeed(0);
  for (int code = 1; code <= 11; ++code) {
    clock_.advance(1000ms);
    m.instance_exited("a", exit_code(code));
    if (m.record("a")->state == InstanceState::restarting) {
      m.restart_due("a");
      succeed(0);
    }
  }
  ASSERT_EQ(m.record("a")->state, InstanceState::failed);
  auto exits = m.record("a")->recent_exits;
  ASSERT_EQ(exits.size(), state::kRecentExitsKept);
  // The first end (exit 1) went; exit 2 .. exit 11 are kept, oldest first.
  EXPECT_EQ(exits.front().exit.code, 2);
  EXPECT_EQ(exits.back().exit.code, 11);
  EXPECT_EQ(exits.back().exit.at_unix_ms, clock_.unix_now_ms());
  EXPECT_TRUE(exits.front().restarted);
  // The eleventh end found on-failure:10 spent.
  EXPECT_FALSE(exits.back().restarted);
  EXPECT_FALSE(exits.back().stop_requested);

  m.start(2, records({"a"}));
  succeed(0);
  m.stop(3, {"a"}, 1000ms, false, false);
  state::ExitRecord stopped;
  stopped.signal = 15;
  m.instance_exited("a", stopped);
  exits = m.record("a")->recent_exits;
  ASSERT_EQ(exits.size(), state::kRecentExitsKept);
  EXPECT_EQ(exits.front().exit.code, 3);
  EXPECT_EQ(exits[exits.size() - 2].exit.code, 11);
  EXPECT_EQ(exits.back().exit.signal, 15);
  EXPECT_TRUE(exits.back().stop_requested);
  EXPECT_FALSE(exits.back().restarted);
}

// reload: a running instance's limits are written into its cgroup and
// recorded (with the spec's new hash) once written; one waiting to restart
// takes them for its next launch, and so does a stopped one; one being
// launched and an unknown name are answered why not.
TEST_F(FleetMachineTest, UpdateLimitsWritesRunningInstancesRecordsStoppedOnesAndRefusesTheOthers) {
  auto& m = make(2, "always");
  m.start(1, records({"run", "wait", "launching", "ended"}));
  succeed(0, 101);  // run
  succeed(1, 102);  // wait
  m.instance_exited("wait", exit_code(1));  // restarting, timer armed
  ASSERT_EQ(state_of("wait"), InstanceState::restarting);
  // "launching" is on spawner 0 now, "ended" on spawner 1.
  succeed(1, 104);
  m.stop(5, {"ended"}, 1000ms, false, false);
  m.instance_exited("ended", exit_code(0));
  ASSERT_EQ(state_of("ended"), InstanceState::stopped);
  const std::string old_hash = m.record("run")->spec_hash;

  std::vector<CgroupSetting> limits{{"pids.max", "100"}};
  auto effects = m.update_limits(7, {{"run", limits}, {"wait", limits}, {"launching", limits}, {"ended", limits},
                                     {"nobody", limits}});
  auto writes = all<effect::WriteLimits>(effects);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].limits.instance, "run");
  EXPECT_EQ(writes[0].operation, 7u);
  EXPECT_EQ(replies(effects, 7), "failed:launching failed:nobody done");
  // The write comes before the answer and the save.
  auto write_at = std::find_if(effects.begin(), effects.end(),
                               [](const Effect& e) { return std::holds_alternative<effect::WriteLimits>(e); });
  auto save_at = std::find_if(effects.begin(), effects.end(),
                              [](const Effect& e) { return std::holds_alternative<effect::SaveStateNow>(e); });
  EXPECT_LT(write_at, save_at);
  // Waiting to restart: recorded at once, for its next launch.
  EXPECT_EQ(m.record("wait")->spec.container.cgroup, limits);
  EXPECT_EQ(m.record("wait")->spec_hash, state::spec_hash(m.record("wait")->spec));
  // Stopped: recorded too, for its next `start`.
  EXPECT_EQ(m.record("ended")->spec.container.cgroup, limits);
  // Running: unchanged until the supervisor says it wrote them.
  EXPECT_EQ(m.record("run")->spec_hash, old_hash);
  m.take_changed();
  auto written = m.limits_written(7, writes[0].limits, "");
  EXPECT_EQ(replies(written, 7), "");
  EXPECT_EQ(m.record("run")->spec.container.cgroup, limits);
  EXPECT_NE(m.record("run")->spec_hash, old_hash);
  EXPECT_EQ(m.record("run")->spec_hash, state::spec_hash(m.record("run")->spec));
  EXPECT_EQ(m.take_changed(), std::set<std::string>{"run"});
  EXPECT_EQ(state_of("run"), InstanceState::running);

  // A write the kernel refused is answered with its reason; the record keeps
  // what it had.
  std::vector<CgroupSetting> more{{"pids.max", "200"}};
  auto refused = m.limits_written(8, {"run", more}, "pids.max: wrote \"200\" but the kernel reads back \"100\"");
  EXPECT_EQ(replies(refused, 8), "failed:run");
  EXPECT_EQ(m.record("run")->spec.container.cgroup, limits);
}

}  // namespace
}  // namespace haco::supervisor
