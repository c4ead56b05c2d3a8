// Cgroups behind one interface: a v2 backend when its controllers are
// available, a v1 backend otherwise (one directory per mounted controller).
// Mount points and the caller's own cgroup come from /proc/self/mountinfo and
// /proc/self/cgroup. haconiwa's v1 keys and v2 keys go through one table.
//
// Where a fleet's cgroups live depends on the host (docs/cgroups.md):
//  - v1_hybrid:  cgroup v1 controllers (v2 mounted beside them, if at all):
//                <caller's cgroup>/haco-fleet/<fleet>/<instance> in each
//                hierarchy used.
//  - v2_systemd: cgroup v2 only, systemd as PID 1: the fleet owns a
//                delegated unit (haco-fleet-<fleet>.service, or the unit of
//                `up --foreground`); inside it <unit>/supervisor holds the
//                supervisor and its spawners, <unit>/instances/<instance>
//                each instance.
//  - v2_root:    cgroup v2 only, no systemd: /sys/fs/cgroup/haco-fleet/<fleet>
//                with the same supervisor/ and instances/ leaves.
// No v2 cgroup that holds processes ever enables controllers for its children.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/spec.hpp"

namespace haco::cgroups {

enum class Layout { v1_hybrid, v2_systemd, v2_root };
std::string_view layout_name(Layout layout);
// Throws haco::Error for a name that is none of the above.
Layout layout_from_name(std::string_view name);

// The host's layout: v2_* when /sys/fs/cgroup is a cgroup2 mount (systemd or
// not, from /run/systemd/system), v1_hybrid otherwise.
Layout detect_layout();

// Where one fleet's cgroups are. Decided once, when its supervisor starts,
// and recorded in the fleet's state so that `down` from any shell finds them.
struct FleetCgroup {
  std::string fleet;
  Layout layout = Layout::v1_hybrid;
  std::string dir;   // v2 layouts: the fleet's cgroup directory; empty for v1_hybrid
  std::string unit;  // v2_systemd: the systemd unit that owns `dir`
  bool operator==(const FleetCgroup&) const = default;

  // v2 layouts: dir/supervisor and dir/instances.
  std::string supervisor_dir() const { return dir + "/supervisor"; }
  std::string instances_dir() const { return dir + "/instances"; }
};

// The delegated cgroup the calling process runs in, under systemd on a v2
// host, and its unit ("haco-fleet-web.service"). Throws haco::Error naming
// the cgroup when it is not delegated (no Delegate=yes on its unit).
FleetCgroup delegated_own_cgroup(const std::string& fleet);

// Where a fleet goes when the calling process is a task of another engine
// that signals the processes of its task cgroup itself (Slurm's task_N or
// task_special: Slurm reads only those cgroups' own cgroup.procs, not their
// children). The caller stays in the task cgroup, so that the engine's
// SIGTERM reaches it and becomes `down`; the fleet's cgroup goes beside it,
// haco-fleet-<fleet> in the task cgroup's parent (Slurm's step_S/user), so
// it is still inside the engine's step. It is recorded as a directory
// without a unit. The fleet controllers that parent lacks (Slurm passes
// down only those its plugins use, not pids) are enabled from its nearest
// delegated ancestor down. Throws haco::Error when the caller runs in the
// root cgroup or directly below it, the parent is not writable, or a level
// refuses a controller.
FleetCgroup own_cgroup_of_engine_task(const std::string& fleet);

// True for a fleet placed by own_cgroup_of_engine_task(): its directory is
// its own to remove once the fleet is down (remove_fleet_cgroups).
bool is_beside_engine_task(const FleetCgroup& fleet);

// The extended attribute on a fleet's cgroup that names the state root
// (--root) the fleet belongs to: lost-state discovery under one state root
// leaves the fleets of another alone (docs/cgroups.md).
inline constexpr const char* kStateRootAttribute = "user.haco-fleet.state-root";

// `state_root` as the attribute records it: absolute, normal, symlinks
// resolved, so that two spellings of one root compare equal.
std::string state_root_identity(const std::string& state_root);

// The directory that carries the attribute: on v2 the fleet's directory
// (under systemd the unit's cgroup); on v1 the fleet's level that holds
// `.supervisor`. Empty when there is none.
std::string state_root_attribute_dir(const FleetCgroup& fleet);

// The state root recorded on the fleet's cgroup; nullopt when the cgroup or
// the attribute is missing (a fleet started before the attribute existed,
// or a cgroupfs without user.* attributes).
std::optional<std::string> recorded_state_root(const FleetCgroup& fleet);

// Makes the fleet's levels (once, before any instance starts): the
// directories and the controllers enabled down to instances/; with
// `join_supervisor_leaf` it moves the calling process (single-threaded) and
// any other in the fleet's directory into supervisor/ first. For v1_hybrid
// it only makes, with `join_supervisor_leaf`, the fleet's level that holds
// `.supervisor` and moves the caller there. `where` comes from
// delegated_own_cgroup() under systemd, or from own_cgroup_of_engine_task()
// (its directory is made here); for v2_root and v1_hybrid only its fleet
// and layout count.
// With a `state_root`, the fleet's cgroup is marked with it
// (kStateRootAttribute) before any process joins it; a cgroupfs that takes
// no user.* attribute (ENOTSUP) leaves it unmarked, which
// recorded_state_root() shows. A cgroup already marked with another state
// root throws: the fleet of that name there runs (or left its cgroups)
// under that root, and its cgroups would be shared.
FleetCgroup prepare_fleet_cgroup(FleetCgroup where, const std::string& state_root, bool join_supervisor_leaf = true);

// The pids.max every instance gets unless its definition sets one.
inline constexpr const char* kDefaultPidsMax = "512";

// One setting on its own: nullopt when its key is known and its value within
// the key's range, else a sentence naming the key, the value and what the
// key accepts. The DSL asks it for each cgroup[key] = value, at that line.
std::optional<std::string> setting_problem(const CgroupSetting& setting);

// Throws haco::InputError with setting_problem's sentence for the first
// unknown key or out-of-range value, or naming a setting that needs another
// (swap without a memory limit). Runs at expand time, before anything starts.
void validate_settings(const std::vector<CgroupSetting>& settings);

// The same settings written for v2 ("cpu.cfs_quota_us" + "cpu.cfs_period_us"
// -> "cpu.max", "memory.limit_in_bytes" -> "memory.max", ...) or for v1.
std::vector<CgroupSetting> translate_to_v2(const std::vector<CgroupSetting>& settings);
std::vector<CgroupSetting> translate_to_v1(const std::vector<CgroupSetting>& settings);

class InstanceCgroup {
 public:
  // Creates the instance's cgroup where `fleet` says, writes the settings and
  // reads each back from the kernel; a value the kernel did not take throws
  // with both values.
  static std::unique_ptr<InstanceCgroup> create(const FleetCgroup& fleet, const std::string& instance,
                                                const std::vector<CgroupSetting>& settings);
  // Finds an existing instance cgroup (for `down` after the supervisor died);
  // nullptr when there is none.
  static std::unique_ptr<InstanceCgroup> open(const FleetCgroup& fleet, const std::string& instance);

  virtual ~InstanceCgroup() = default;
  virtual void add_process(pid_t pid) const = 0;
  // Directory fd for CLONE_INTO_CGROUP (the v2 cgroup, also the membership
  // cgroup of a v1 backend on a hybrid host), or -1 when there is none.
  virtual int clone_into_fd() const = 0;
  // For a process cloned with CLONE_INTO_CGROUP(clone_into_fd()): joins the
  // hierarchies that clone did not (the v1 ones).
  virtual void add_cloned_process(pid_t pid) const = 0;
  virtual std::vector<pid_t> processes() const = 0;
  // Writes `settings` (a definition's keys, translated for the hierarchies
  // that hold this cgroup) into it and reads each back, as create() does:
  // a running instance's limits changed in place. Throws naming the key and
  // the controller when this cgroup has no directory for it (a v1
  // controller that no setting used when the instance started).
  virtual void update_settings(const std::vector<CgroupSetting>& settings) const = 0;
  // SIGKILL to every process (cgroup.kill on v2, freeze + kill + thaw on v1),
  // then waits until the cgroup is empty or the timeout passes.
  virtual void kill_all(std::chrono::milliseconds timeout) const = 0;
  // Removes the directories (the cgroup must be empty).
  virtual void remove() const = 0;
  // Every directory this cgroup lives in, for diagnostics and tests.
  virtual std::vector<std::string> paths() const = 0;
};

// The pids listed in dir/cgroup.procs. A cgroup that is gone (ENOENT, or
// ENODEV while systemd takes a stopped unit's tree away) holds none.
std::vector<pid_t> read_procs(const std::string& dir);

// SIGKILL to every process listed in dir/cgroup.procs, each through a pidfd
// and only while it is still listed there, so that a pid that ended and was
// reused elsewhere is never signalled. A missing directory holds nothing.
void kill_cgroup_members(const std::string& dir);

// Removes the fleet's cgroup directories that are empty (instances/, and
// with no supervisor left supervisor/ and the fleet level; a systemd unit's
// own directory is left to systemd, and the engine task's parent beside
// which is_beside_engine_task() fleets sit to the engine).
void remove_fleet_cgroups(const FleetCgroup& fleet);

// The names of the instance cgroups the fleet has now (the directories
// below its instances level; on v1, below the fleet's level in each
// hierarchy, from this process's cgroup), whatever its state recorded: how a
// container whose record was lost is still found.
std::vector<std::string> instance_cgroup_names(const FleetCgroup& fleet);

// Where the supervisor, its spawners and its log writer are: the supervisor
// leaf on v2; on v1, `.supervisor` beside the instance cgroups of the
// unified (membership only) hierarchy, or of the pids one (the leading dot
// keeps it apart from instance names). Empty when v1 has neither.
std::string supervisor_cgroup_dir(const FleetCgroup& fleet);

// The names of the fleets that have cgroups of their own outside a systemd
// unit (v1: below haco-fleet/ in each hierarchy, from this process's
// cgroup; v2_root: /sys/fs/cgroup/haco-fleet/).
std::vector<std::string> fleets_with_cgroups();

// Where a fleet's cgroups are when its state does not say (it was lost):
// v1 and v2_root from the fleet's name; under systemd (v2_systemd) `dir` and
// `unit` are left for the caller to find.
FleetCgroup unrecorded_fleet_cgroup(const std::string& fleet);

// Whether `read` (the file's content after writing `written` to `key`) shows
// that the kernel took the value: memory sizes are rounded down to pages,
// "max" reads back as the largest value on v1, cpuset lists are compared as
// sets, io.weight reads "default N".
bool kernel_took_value(std::string_view key, std::string_view written, std::string_view read);

}  // namespace haco::cgroups
