// `down`: which fleets, each under its lock (interrupting an `up` that holds
// it), taken down through the supervisor client.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops.hpp"
#include "haco/ops_select.hpp"
#include "haco/pidfd.hpp"
#include "haco/printable.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops {
namespace {

// The fleet's lock; an `up` that holds it (still starting instances, or
// `up --foreground` keeping its fleet) is interrupted as Ctrl-C would: it
// stops and removes what it started, then `down` takes the rest. A `start`,
// `stop` or `restart` holding it is interrupted the same way: it stops
// waiting, and `down` takes what it started.
state::FleetLock lock_interrupting_up(const state::FleetPaths& paths, Sink& sink) {
  if (auto lock = state::FleetLock::try_acquire(paths, "down")) return std::move(*lock);
  if (auto holder = state::FleetLock::holder(paths); holder && holder->role != "down") {
    UniqueFd pidfd(::pidfd_open(holder->process.pid, 0));
    if (pidfd && state::is_alive(holder->process)) {
      sink.message(fmt::format("{}: `{}` is in progress (pid {}): interrupting it", paths.fleet, holder->role,
                               holder->process.pid));
      ::pidfd_send_signal(pidfd.get(), SIGINT, nullptr, 0);
    }
  }
  return state::FleetLock::acquire(paths, true, "down");
}

// Adds `more` to `fleets`, each name once.
void add_fleets(std::vector<std::string>& fleets, const std::vector<std::string>& more) {
  for (const auto& f : more)
    if (std::find(fleets.begin(), fleets.end(), f) == fleets.end()) fleets.push_back(f);
}

// The fleets a request names: --name (which must have left something, and
// not be another state root's fleet of that name; with --purge, trees kept
// by an earlier `down` count), --all (with those whose state is lost, and
// with --purge those whose trees were kept), or the only one.
std::vector<std::string> fleets_to_take_down(const DownRequest& request, SupervisorClient& supervisor) {
  if (request.all && !request.fleet.empty()) throw InputError("down: --name and --all exclude each other");
  auto existing = state::list_fleets(request.state_root);
  const auto kept = supervisor.fleets_with_kept_trees(request.data_root);
  const auto has_kept = [&](const std::string& f) { return std::find(kept.begin(), kept.end(), f) != kept.end(); };
  if (!request.fleet.empty()) {
    state::FleetPaths paths{request.state_root, request.data_root, request.fleet};
    if (auto other = supervisor.other_state_root(paths))
      throw InputError(supervisor::belongs_to_other_root(request.fleet, *other));
    // A state that is unreadable, or lost while the fleet's cgroups, claims
    // or unit remain, still has something to take down.
    if (!std::filesystem::exists(paths.state_file()) && !supervisor.left_traces(paths)) {
      if (has_kept(request.fleet) && request.purge) return {request.fleet};
      if (has_kept(request.fleet))
        throw InputError(fmt::format("fleet '{}' is already down; `haco-fleet down --name {} --purge` removes the "
                                     "rootfs trees and logs it kept",
                                     request.fleet, request.fleet));
      throw InputError("no fleet named '" + request.fleet + "' under " + request.state_root);
    }
    return {request.fleet};
  }
  if (request.all) {
    add_fleets(existing, supervisor.fleets_without_state(request.state_root));
    if (request.purge) add_fleets(existing, kept);
    return existing;
  }
  if (existing.empty() && request.purge) existing = kept;
  if (existing.size() <= 1) return existing;
  std::string names;
  for (const auto& f : existing) names += (names.empty() ? "" : ", ") + f;
  throw InputError(
      fmt::format("{} fleets are running ({}): say which with --name FLEET, or --all", existing.size(), names));
}

// down --ports: those instances leave the fleet, which keeps running; all of
// its instances: the whole fleet goes down (nullopt: the caller does that).
std::optional<DownResult> scale_down(const DownRequest& request, SupervisorClient& supervisor, Sink& sink) {
  if (request.all) throw InputError("down: --ports and --all exclude each other");
  auto paths = choose_fleet(request.state_root, request.data_root, request.fleet);
  if (auto other = supervisor.other_state_root(paths))
    throw InputError(supervisor::belongs_to_other_root(paths.fleet, *other));
  auto lock = lock_interrupting_up(paths, sink);
  auto fleet = load_fleet(paths);
  std::vector<state::InstanceRecord> records;
  for (const auto* r : instances_on_ports(fleet, request.ports)) records.push_back(*r);
  if (records.size() == fleet.instances.size()) {
    sink.message(fmt::format("{}: --ports names every instance of the fleet: the whole fleet goes down", paths.fleet));
    return std::nullopt;
  }
  if (!state::is_alive(fleet.supervisor) || !supervisor.answers(paths))
    throw Error(fmt::format("the supervisor of fleet '{}' is not running: `haco-fleet up` takes the fleet over "
                            "(adopting what still runs), or `haco-fleet down --name {}` takes all of it down",
                            paths.fleet, paths.fleet));
  DownResult result;
  result.fleets = {paths.fleet};
  supervisor::TeardownOptions teardown;
  teardown.timeout = request.timeout;
  teardown.purge = request.purge;
  teardown.progress = [&](std::string_view step) { sink.message(fmt::format("{}: {}", paths.fleet, step)); };
  sink.begin(records.size());
  try {
    supervisor.remove(paths, records, teardown, request.purge ? supervisor::TreePurge::all : supervisor::TreePurge::none);
    for (const auto& r : records) {
      sink.step("removed", r.name(), std::nullopt);
      result.removed.push_back(r.name());
    }
  } catch (const Error& e) {
    sink.failed(paths.fleet, printable(e.what(), LineBreaks::keep));
    ++result.failed;
  }
  sink.finish();
  return result;
}

}  // namespace

DownResult down(const DownRequest& request, SupervisorClient& supervisor, Sink& sink) {
  DownRequest whole = request;
  if (!request.ports.empty()) {
    if (auto scaled = scale_down(request, supervisor, sink)) return std::move(*scaled);
    whole.fleet = choose_fleet(request.state_root, request.data_root, request.fleet).fleet;
    whole.ports.clear();
    return down(whole, supervisor, sink);
  }
  DownResult result;
  result.fleets = fleets_to_take_down(request, supervisor);
  if (result.fleets.empty()) return result;
  sink.begin(result.fleets.size());
  for (const auto& fleet : result.fleets) {
    state::FleetPaths paths{request.state_root, request.data_root, fleet};
    supervisor::TeardownOptions teardown;
    teardown.timeout = request.timeout;
    teardown.purge = request.purge;
    teardown.progress = [&](std::string_view step) { sink.message(fmt::format("{}: {}", fleet, step)); };
    try {
      // Claims of this root under the name of another root's running fleet:
      // refused before the lock, which would make state here.
      if (auto other = supervisor.other_state_root(paths))
        throw InputError(supervisor::belongs_to_other_root(fleet, *other));
      auto lock = lock_interrupting_up(paths, sink);
      supervisor.shutdown(paths, teardown);
      sink.step("down", fleet, std::nullopt);
    } catch (const Error& e) {
      sink.failed(fleet, printable(e.what(), LineBreaks::keep));
      ++result.failed;
    }
  }
  sink.finish();
  return result;
}

}  // namespace haco::ops
