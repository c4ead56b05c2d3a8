// `down`: which fleets, each under its lock (interrupting an `up` that holds
// it), taken down through the supervisor client.
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops.hpp"
#include "haco/pidfd.hpp"
#include "haco/printable.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops {
namespace {

// The fleet's lock; an `up` that holds it (still starting instances, or
// `up --foreground` keeping its fleet) is interrupted as Ctrl-C would: it
// stops and removes what it started, then `down` takes the rest.
state::FleetLock lock_interrupting_up(const state::FleetPaths& paths, Sink& sink) {
  if (auto lock = state::FleetLock::try_acquire(paths, "down")) return std::move(*lock);
  if (auto holder = state::FleetLock::holder(paths); holder && holder->role == "up") {
    UniqueFd pidfd(::pidfd_open(holder->process.pid, 0));
    if (pidfd && state::is_alive(holder->process)) {
      sink.message(fmt::format("{}: an `up` is in progress (pid {}): interrupting it", paths.fleet,
                               holder->process.pid));
      ::pidfd_send_signal(pidfd.get(), SIGINT, nullptr, 0);
    }
  }
  return state::FleetLock::acquire(paths, true, "down");
}

// The fleets a request names: --name (which must have left something, and
// not be another state root's fleet of that name), --all (with those whose
// state is lost), or the only one.
std::vector<std::string> fleets_to_take_down(const DownRequest& request, SupervisorClient& supervisor) {
  if (request.all && !request.fleet.empty()) throw InputError("down: --name and --all exclude each other");
  auto existing = state::list_fleets(request.state_root);
  if (!request.fleet.empty()) {
    state::FleetPaths paths{request.state_root, request.data_root, request.fleet};
    if (auto other = supervisor.other_state_root(paths))
      throw InputError(supervisor::belongs_to_other_root(request.fleet, *other));
    // A state that is unreadable, or lost while the fleet's cgroups, claims
    // or unit remain, still has something to take down.
    if (!std::filesystem::exists(paths.state_file()) && !supervisor.left_traces(paths))
      throw InputError("no fleet named '" + request.fleet + "' under " + request.state_root);
    return {request.fleet};
  }
  if (request.all) {
    for (const auto& f : supervisor.fleets_without_state(request.state_root)) existing.push_back(f);
    return existing;
  }
  if (existing.size() <= 1) return existing;
  std::string names;
  for (const auto& f : existing) names += (names.empty() ? "" : ", ") + f;
  throw InputError(
      fmt::format("{} fleets are running ({}): say which with --name FLEET, or --all", existing.size(), names));
}

}  // namespace

DownResult down(const DownRequest& request, SupervisorClient& supervisor, Sink& sink) {
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
