// Fakes of the ops library's interfaces: they record what `up` and `down`
// ask for and answer as a test sets them up, without a supervisor, a rootfs
// or a container.
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "haco/ops.hpp"

namespace haco::ops::testing {

class FakeSupervisor : public SupervisorClient {
 public:
  // Set up by the test.
  bool listening = false;                 // answers()
  std::set<std::string> fail_to_start;    // answered with a failed event
  std::set<std::string> exit_after_start;  // answered started, then exited
  std::string refuse;                     // the whole request refused with this error
  bool throw_on_start = false;            // start() throws (no supervisor listening)
  std::set<std::string> traces;           // fleets that left traces without state
  std::set<std::string> fail_shutdown;    // shutdown() throws for these fleets
  std::map<std::string, std::string> other_roots;  // fleet -> the other state root its cgroup names

  std::set<std::string> kept;             // fleets with kept trees (fleets_with_kept_trees)
  bool fail_stop = false;                 // stop() throws

  // What was asked, in order: "launch", "start", "remove", "stop",
  // "shutdown", "clear_leftovers", "clear_for_takeover".
  std::vector<std::string> calls;
  std::vector<std::string> started;                // names sent in start requests
  std::vector<std::vector<std::string>> removed;   // names of each remove()
  std::vector<supervisor::TreePurge> removed_trees;  // and its tree rule
  std::vector<std::vector<std::string>> stopped;   // names of each stop()
  std::vector<std::string> shut_down;              // fleets
  std::vector<supervisor::SupervisorConfig> launched;
  std::vector<supervisor::TeardownOptions> teardowns;  // of each shutdown()
  std::map<std::string, std::string> refuse_limits;   // update_limits(): instance -> why not applied
  std::vector<std::map<std::string, std::vector<CgroupSetting>>> limit_updates;  // of each update_limits()
  // Every start given to record_latencies() (not in `calls`).
  std::vector<supervisor::protocol::MeasuredStart> measured_starts;

  bool answers(const state::FleetPaths& paths) override;
  state::ProcessIdentity launch(const supervisor::SupervisorConfig& config) override;
  std::unique_ptr<StartCall> start(boost::asio::io_context& io, const state::FleetPaths& paths,
                                   const std::vector<state::InstanceRecord>& records,
                                   std::function<void(const StartEvent&)> on_event) override;
  void remove(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records,
              const supervisor::TeardownOptions& options, supervisor::TreePurge trees) override;
  void stop(const state::FleetPaths& paths, const std::vector<std::string>& instances,
            std::chrono::milliseconds timeout) override;
  void shutdown(const state::FleetPaths& paths, const supervisor::TeardownOptions& options) override;
  void clear_for_takeover(const state::FleetPaths& paths, const state::FleetState& fleet) override;
  void clear_leftovers(const state::FleetPaths& paths, const state::FleetState& fleet,
                       const std::function<bool(const std::string&)>& wanted) override;
  bool left_traces(const state::FleetPaths& paths) override;
  std::vector<std::string> fleets_without_state(const std::string& state_root) override;
  std::optional<std::string> other_state_root(const state::FleetPaths& paths) override;
  std::vector<std::string> fleets_with_kept_trees(const std::string& data_root) override;
  std::map<std::string, std::string> update_limits(
      const state::FleetPaths& paths, const std::map<std::string, std::vector<CgroupSetting>>& limits) override;
  std::map<std::string, std::string> record_latencies(
      const state::FleetPaths& paths, const std::vector<supervisor::protocol::MeasuredStart>& starts) override;
};

class FakeRootfs : public RootfsPreparer {
 public:
  std::set<std::string> existing;        // rootfs paths that exist
  std::set<std::string> fail_bootstrap;  // instances whose bootstrap throws
  std::vector<std::string> bootstrapped;  // instances, in order
  std::vector<dsl::Environment> bootstrap_envs;
  std::vector<std::string> images;        // instances given to prepare_images

  bool exists(const std::string& rootfs) override { return existing.count(rootfs) > 0; }
  std::vector<rootfs::PreparedRootfs> prepare_images(const std::vector<rootfs::InstanceRootfs>& images,
                                                     const rootfs::PrepareOptions& options) override;
  bool remove_incomplete(const ContainerSpec&) override { return false; }
  void bootstrap(const InstanceSpec& instance, const dsl::Environment& env, const std::atomic<bool>* cancel) override;
};

// Ready at once, or never (`ready` false: the probe gives up with "not
// ready"); `interrupt_on_watch` is set when the first watch starts, as a
// Ctrl-C during the readiness wait would be.
struct FakeProbes {
  bool ready = true;
  std::atomic<bool>* interrupt_on_watch = nullptr;
  std::vector<std::string> watched;
  std::size_t cancelled = 0;
  ProberFactory factory();
};

struct RecordingSink : Sink {
  std::vector<std::string> messages;
  std::vector<std::string> steps;     // "ready web-1"
  std::vector<std::string> failures;  // "web-1: reason"
  std::size_t total = 0;
  bool finished = false;

  void message(std::string_view text) override { messages.emplace_back(text); }
  void warning(std::string_view text) override { messages.push_back("haco-fleet: warning: " + std::string(text)); }
  void error(std::string_view text) override { messages.push_back("haco-fleet: " + std::string(text)); }
  void begin(std::size_t n) override { total = n; }
  void step(std::string_view step, std::string_view instance, std::optional<std::chrono::nanoseconds>) override {
    steps.push_back(std::string(step) + " " + std::string(instance));
  }
  void failed(std::string_view instance, std::string_view reason) override {
    failures.push_back(std::string(instance) + ": " + std::string(reason));
  }
  void tick() override {}
  void finish() override { finished = true; }
  void status(std::string_view) override {}
  bool said(std::string_view part) const;
};

}  // namespace haco::ops::testing
