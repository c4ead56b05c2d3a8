// haco-fleet exec: the decisions (which instance, whether it runs, as whom,
// with which environment) and the real InstanceEntry.
#include <fmt/format.h>

#include "haco/ops_exec.hpp"
#include "haco/ops_select.hpp"
#include "haco/pidfd.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops {
namespace {

using state::InstanceState;

bool maps(const std::vector<IdMapping>& map, std::uint32_t id) {
  for (const auto& m : map)
    if (id >= m.inside && std::uint64_t(id) < std::uint64_t(m.inside) + m.count) return true;
  return false;
}

std::string inside_ranges(const std::vector<IdMapping>& map) {
  std::string out;
  for (const auto& m : map)
    out += fmt::format("{}{}-{}", out.empty() ? "" : ",", m.inside, std::uint64_t(m.inside) + m.count - 1);
  return out.empty() ? "none" : out;
}

std::string_view variable_name(std::string_view assignment) { return assignment.substr(0, assignment.find('=')); }

std::string instance_label(const state::InstanceRecord& r, const std::string& fleet) {
  return fmt::format("instance {} (port {}) of fleet '{}'", r.name(), r.spec.port, fleet);
}

// NotRunningError unless the record says running and its init is alive.
void check_running(const state::FleetState& fleet, const state::InstanceRecord& r, InstanceEntry& entry) {
  std::string label = instance_label(r, fleet.fleet);
  if (r.state != InstanceState::running || r.process.pid <= 0) {
    std::string last = r.last_exit ? ", last exit: " + state::describe_exit(*r.last_exit) : "";
    throw NotRunningError(fmt::format("{} is not running (state {}{}): only a running instance can be entered",
                                      label, state::instance_state_name(r.state), last));
  }
  if (!entry.alive(r.process))
    throw NotRunningError(fmt::format(
        "{} is recorded as running, but its init (pid {}) is gone: the container is dead ('haco-fleet ps' "
        "checks every instance)",
        label, r.process.pid));
}

class KernelEntry : public InstanceEntry {
 public:
  bool alive(const state::ProcessIdentity& init) override { return state::is_alive(init); }

  runtime::CommandEnd enter(const state::ProcessIdentity& init, runtime::EnterRequest request) override {
    UniqueFd pidfd(::pidfd_open(init.pid, 0));
    // Opened first, checked after: while the pidfd's process lives, its pid
    // is not reused, so a matching start time is that process's.
    if (!pidfd || !state::is_alive(init) || ::pidfd_send_signal(pidfd.get(), 0, nullptr, 0) != 0)
      throw NotRunningError(fmt::format("its init (pid {}) ended", init.pid));
    request.init_pidfd = pidfd.get();
    request.init_pid = init.pid;
    return runtime::enter_and_run(request);
  }
};

}  // namespace

std::unique_ptr<InstanceEntry> kernel_entry() { return std::make_unique<KernelEntry>(); }

void check_environment_assignment(std::string_view assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw InputError(fmt::format("-e '{}': expected KEY=VALUE", assignment));
}

std::pair<uid_t, gid_t> exec_ids(const ContainerSpec& c, std::optional<std::uint32_t> user) {
  if (!user) return {0, 0};
  if (*user == static_cast<std::uint32_t>(-1)) throw InputError("--user 4294967295: not a valid uid");
  // Without maps the container runs on host ids.
  if (c.uid_map.empty() && c.gid_map.empty()) return {*user, *user};
  if (!maps(c.uid_map, *user))
    throw InputError(fmt::format("--user {}: the container of {} maps uids {} only", *user, c.name,
                                 inside_ranges(c.uid_map)));
  if (!maps(c.gid_map, *user))
    throw InputError(fmt::format("--user {}: the container of {} maps gids {} only (the command's gid is its uid)",
                                 *user, c.name, inside_ranges(c.gid_map)));
  return {*user, *user};
}

std::vector<std::string> exec_environment(const ContainerSpec& c, const std::vector<std::string>& assignments,
                                          bool tty, std::string_view term) {
  std::vector<std::string> env = runtime::init_environment(c);
  auto set = [&env](const std::string& assignment) {
    for (auto& e : env)
      if (variable_name(e) == variable_name(assignment)) {
        e = assignment;
        return;
      }
    env.push_back(assignment);
  };
  for (const auto& a : assignments) {
    check_environment_assignment(a);
    set(a);
  }
  if (tty && !term.empty()) {
    bool has_term = false;
    for (const auto& e : env) has_term = has_term || variable_name(e) == "TERM";
    if (!has_term) env.push_back("TERM=" + std::string(term));
  }
  return env;
}

int exit_status(const runtime::CommandEnd& end) {
  switch (end.how) {
    case runtime::CommandEnd::How::exited: return end.code;
    case runtime::CommandEnd::How::signalled: return 128 + end.signal;
    case runtime::CommandEnd::How::not_started: return end.exec_errno == ENOENT ? 127 : 126;
  }
  return 1;
}

ExecPlan plan_exec(const ExecRequest& request, InstanceEntry& entry) {
  if (request.command.empty()) throw InputError("no command to run: exec PORT|NAME -- COMMAND [ARG...]");
  if (!request.workdir.empty() && request.workdir.front() != '/')
    throw InputError(fmt::format("--workdir '{}': must be an absolute path inside the container", request.workdir));
  auto paths = choose_fleet(request.state_root, request.data_root, request.fleet);
  auto fleet = load_fleet(paths);
  const auto& record = find_instance(fleet, request.instance);
  const ContainerSpec& c = record.spec.container;
  // Bad input is bad input whether the instance runs or not.
  auto [uid, gid] = exec_ids(c, request.user);
  auto environment = exec_environment(c, request.environment, request.tty, request.term);
  check_running(fleet, record, entry);

  ExecPlan plan;
  plan.fleet = fleet.fleet;
  plan.instance = record.name();
  plan.init = record.process;
  plan.request.instance = record.spec;
  plan.request.cgroup_dirs = record.cgroup_paths;
  plan.request.command = request.command;
  plan.request.environment = std::move(environment);
  plan.request.workdir = request.workdir.empty() ? c.workdir : request.workdir;
  plan.request.uid = uid;
  plan.request.gid = gid;
  plan.request.tty = request.tty;
  return plan;
}

ExecResult exec(const ExecRequest& request, InstanceEntry& entry) {
  ExecPlan plan = plan_exec(request, entry);
  ExecResult result;
  result.end = with_context(fmt::format("cannot enter instance {} of fleet '{}'", plan.instance, plan.fleet),
                            [&] { return entry.enter(plan.init, std::move(plan.request)); });
  result.status = exit_status(result.end);
  return result;
}

}  // namespace haco::ops
