// `inspect`: one instance as its record says it was asked for and as the
// kernel shows it now (pids, namespaces, cgroup limits read back, mounts),
// with its logs and restart history. What cannot be read (the instance is
// not running, a file is gone) is said in the result, never thrown: a
// stopped or dead instance still inspects.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "haco/spec.hpp"
#include "haco/state.hpp"

namespace haco::ops {

// One namespace of the init: /proc/PID/ns/NAME against the one haco-fleet
// itself runs in (/proc/self/ns/NAME: the host's, run on the host; pid 1's
// may be unreadable even to root).
struct NamespaceView {
  std::string name;       // "pid", "mnt", "user", ...
  std::string link;       // "pid:[4026532345]"
  std::string host_link;  // the host's, "" when it could not be read
  bool own() const { return !host_link.empty() && link != host_link; }
};

// One limit the spec asks for, in the form of the hierarchy that holds it,
// and what the kernel's file says.
struct LimitView {
  std::string key;                     // the kernel's file ("pids.max", "cpu.max")
  std::string wanted;                  // the spec's value in that form
  std::string dir;                     // the cgroup directory holding the file ("" when none)
  std::optional<std::string> kernel;   // the file's content (trimmed); nullopt when unread
  std::string error;                   // why it was not read
  bool matches() const;                // the kernel holds `wanted` (cgroups::kernel_took_value)
};

struct MountView {
  std::string mount_point;  // in the container's view
  std::string fstype;
  std::string source;
  std::string options;      // the superblock's options
};

struct LogView {
  std::string path;
  std::optional<std::uint64_t> size;  // nullopt when the file does not exist
};

struct InspectResult {
  std::string fleet;
  std::string definition;
  bool supervised = false;        // the fleet's supervisor runs
  state::InstanceRecord record;   // as fleet.json holds it
  std::string state;              // the record's state, checked against the kernel without a supervisor
  bool init_running = false;      // the recorded init (pid and start time) runs
  std::string not_running;        // why what follows could not be read ("" when the init runs)

  std::vector<pid_t> pids;        // every process of the instance's cgroup
  std::string pids_error;
  std::vector<NamespaceView> namespaces;
  std::string namespaces_error;
  std::vector<std::string> cgroup_dirs;  // as recorded
  std::vector<LimitView> limits;
  std::vector<MountView> mounts;  // /proc/PID/mountinfo of the init
  std::string mounts_error;
  std::vector<LogView> logs;      // the log and its previous generation
};

// The instance on `port_or_name` of the fleet `fleet` (ops::choose_fleet's
// rule: empty for the only one). Throws haco::InputError for an unknown
// fleet, port or name.
InspectResult inspect(const std::string& state_root, const std::string& data_root, const std::string& fleet,
                      const std::string& port_or_name);

// The limits `settings` ask for, read back from `dirs` (an instance's
// cgroup directories as recorded): with v1 directories among them, in v1
// keys, each from the hierarchy whose directory has its file; otherwise in
// v2 keys from the v2 directory. A limit no directory has is unread, with
// the reason.
std::vector<LimitView> read_limits(const std::vector<CgroupSetting>& settings, const std::vector<std::string>& dirs);

// The namespaces of `pid` against the host's; throws haco::Error when
// /proc/PID/ns cannot be read.
std::vector<NamespaceView> read_namespaces(pid_t pid);

}  // namespace haco::ops
