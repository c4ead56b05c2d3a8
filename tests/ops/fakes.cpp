#include "fakes.hpp"

#include <unistd.h>

#include <boost/asio/post.hpp>

#include "haco/error.hpp"

namespace haco::ops::testing {

bool FakeSupervisor::answers(const state::FleetPaths&) { return listening; }

state::ProcessIdentity FakeSupervisor::launch(const supervisor::SupervisorConfig& config) {
  calls.push_back("launch");
  launched.push_back(config);
  listening = true;
  return *state::identify(::getpid());
}

std::unique_ptr<StartCall> FakeSupervisor::start(boost::asio::io_context& io, const state::FleetPaths& paths,
                                                 const std::vector<state::InstanceRecord>& records,
                                                 std::function<void(const StartEvent&)> on_event) {
  calls.push_back("start");
  if (throw_on_start) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
  std::vector<std::string> names;
  for (const auto& r : records) names.push_back(r.name());
  started.insert(started.end(), names.begin(), names.end());
  boost::asio::post(io, [this, names, on_event] {
    if (!refuse.empty()) {
      StartEvent done;
      done.error = refuse;
      on_event(done);
      return;
    }
    pid_t pid = 100000;
    for (const auto& name : names) {
      StartEvent event;
      event.instance = name;
      if (fail_to_start.count(name)) {
        event.kind = StartEvent::Kind::failed;
        event.error = "exec /no/such/init: No such file or directory";
      } else {
        event.kind = StartEvent::Kind::started;
        event.process = {++pid, 1};
        // A launch that took 1 ms and ended now: readiness comes after it.
        event.exec_done = Clock::now();
        event.clone_started = event.exec_done - std::chrono::milliseconds(1);
      }
      on_event(event);
    }
    on_event(StartEvent{});  // done
    for (const auto& name : names)
      if (exit_after_start.count(name)) {
        StartEvent exited;
        exited.kind = StartEvent::Kind::exited;
        exited.instance = name;
        exited.exit = "exit 3";
        on_event(exited);
      }
  });
  return std::make_unique<StartCall>();
}

void FakeSupervisor::remove(const state::FleetPaths&, const std::vector<state::InstanceRecord>& records,
                            const supervisor::TeardownOptions&, supervisor::TreePurge trees) {
  calls.push_back("remove");
  std::vector<std::string> names;
  for (const auto& r : records) names.push_back(r.name());
  removed.push_back(names);
  removed_trees.push_back(trees);
}

void FakeSupervisor::stop(const state::FleetPaths& paths, const std::vector<std::string>& instances,
                          std::chrono::milliseconds) {
  calls.push_back("stop");
  if (fail_stop) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
  stopped.push_back(instances);
}

void FakeSupervisor::shutdown(const state::FleetPaths& paths, const supervisor::TeardownOptions& options) {
  calls.push_back("shutdown");
  shut_down.push_back(paths.fleet);
  teardowns.push_back(options);
  if (fail_shutdown.count(paths.fleet)) throw Error("down of fleet '" + paths.fleet + "' is incomplete");
}

void FakeSupervisor::clear_for_takeover(const state::FleetPaths&, const state::FleetState&) {
  calls.push_back("clear_for_takeover");
}

void FakeSupervisor::clear_leftovers(const state::FleetPaths&, const state::FleetState&,
                                     const std::function<bool(const std::string&)>&) {
  calls.push_back("clear_leftovers");
}

bool FakeSupervisor::left_traces(const state::FleetPaths& paths) { return traces.count(paths.fleet) > 0; }

std::vector<std::string> FakeSupervisor::fleets_without_state(const std::string&) {
  return {traces.begin(), traces.end()};
}

std::optional<std::string> FakeSupervisor::other_state_root(const state::FleetPaths& paths) {
  auto it = other_roots.find(paths.fleet);
  if (it == other_roots.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FakeSupervisor::fleets_with_kept_trees(const std::string&) {
  return {kept.begin(), kept.end()};
}

std::map<std::string, std::string> FakeSupervisor::update_limits(
    const state::FleetPaths&, const std::map<std::string, std::vector<CgroupSetting>>& limits) {
  calls.push_back("update_limits");
  limit_updates.push_back(limits);
  std::map<std::string, std::string> failures;
  for (const auto& [instance, settings] : limits)
    if (auto it = refuse_limits.find(instance); it != refuse_limits.end()) failures[instance] = it->second;
  return failures;
}

std::map<std::string, std::string> FakeSupervisor::record_latencies(
    const state::FleetPaths&, const std::vector<supervisor::protocol::MeasuredStart>& starts) {
  measured_starts.insert(measured_starts.end(), starts.begin(), starts.end());
  return {};
}

std::vector<rootfs::PreparedRootfs> FakeRootfs::prepare_images(const std::vector<rootfs::InstanceRootfs>& wanted,
                                                               const rootfs::PrepareOptions&) {
  std::vector<rootfs::PreparedRootfs> out;
  for (const auto& i : wanted) {
    images.push_back(i.instance);
    rootfs::PreparedRootfs p;
    p.instance = i.instance;
    p.rootfs = i.rootfs;
    out.push_back(p);
    existing.insert(i.rootfs);
  }
  return out;
}

void FakeRootfs::bootstrap(const InstanceSpec& instance, const dsl::Environment& env, const std::atomic<bool>*) {
  bootstrapped.push_back(instance.container.name);
  bootstrap_envs.push_back(env);
  if (fail_bootstrap.count(instance.container.name)) throw Error("the bootstrap script failed (exit 1)");
  existing.insert(instance.container.rootfs);
}

namespace {

class FakeProber : public ReadinessProber {
 public:
  FakeProber(boost::asio::io_context& io, FakeProbes& probes) : io_(io), probes_(probes) {}

  void watch(observe::InstanceId id, const InstanceSpec& instance, pid_t, Clock::time_point,
             observe::ProbeCallback callback) override {
    probes_.watched.push_back(instance.container.name);
    if (probes_.interrupt_on_watch) {
      probes_.interrupt_on_watch->store(true);
      pending_[id] = std::move(callback);  // never ready: the interrupt ends the wait
      return;
    }
    if (!probes_.ready) {
      pending_[id] = std::move(callback);  // reported by cancel(), or at the end
      boost::asio::post(io_, [this, id] { report(id, "not ready after 0.1 s: connection refused"); });
      return;
    }
    boost::asio::post(io_, [id, callback] {
      observe::ProbeResult ready;
      ready.ready = true;
      ready.finished_at = Clock::now();
      callback(id, ready);
    });
  }
  void cancel(observe::InstanceId id) override {
    ++probes_.cancelled;
    if (pending_.count(id)) boost::asio::post(io_, [this, id] { report(id, "cancelled"); });
  }
  void cancel_all() override { pending_.clear(); }

 private:
  void report(observe::InstanceId id, const std::string& error) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    auto callback = std::move(it->second);
    pending_.erase(it);
    observe::ProbeResult result;
    result.error = error;
    result.finished_at = Clock::now();
    callback(id, result);
  }

  boost::asio::io_context& io_;
  FakeProbes& probes_;
  std::map<observe::InstanceId, observe::ProbeCallback> pending_;
};

}  // namespace

ProberFactory FakeProbes::factory() {
  return [this](boost::asio::io_context& io) -> std::unique_ptr<ReadinessProber> {
    return std::make_unique<FakeProber>(io, *this);
  };
}

bool RecordingSink::said(std::string_view part) const {
  for (const auto& m : messages)
    if (m.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace haco::ops::testing
