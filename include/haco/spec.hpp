// The validated description of one container (what a .haco file says) and of
// one instance of a fleet (a container spec bound to a port). The DSL and the
// command line fill these; nothing downstream knows about Ruby.
#pragma once

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/capabilities.hpp"

namespace haco {

enum class Namespace { mount, uts, ipc, pid, net, user, cgroup };

// "mount", "uts", ... ; also accepts haconiwa's aliases ("mnt", "ns").
std::optional<Namespace> namespace_from_name(std::string_view name);
std::string_view namespace_name(Namespace ns);
// CLONE_NEWNS, CLONE_NEWUTS, ...
unsigned long namespace_clone_flag(Namespace ns);

// One line of /proc/PID/uid_map: ids inside..inside+count-1 in the container
// are outside..outside+count-1 on the host.
struct IdMapping {
  std::uint32_t inside = 0;
  std::uint32_t outside = 0;
  std::uint32_t count = 0;
  bool operator==(const IdMapping&) const = default;
};

struct Owner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  bool operator==(const Owner&) const = default;
};

// A mount asked for with add_mount_point. `target` is the path inside the
// container (a host path under the rootfs given in the definition is made
// relative to it). An empty fstype means a bind mount of `source`.
struct MountPoint {
  std::string source;
  std::string target;
  std::string fstype;
  std::string options;
  bool read_only = false;
  bool operator==(const MountPoint&) const = default;
};

enum class IndependentMount { procfs, sysfs, devtmpfs, devpts, shm };
std::optional<IndependentMount> independent_mount_from_name(std::string_view name);
std::string_view independent_mount_name(IndependentMount m);

// How the rootfs of an instance is prepared.
//  - none:    the rootfs must already exist.
//  - tarball: the rootfs engine lays down `archive_path` (declarative form).
//  - shell:   `code` runs with /bin/sh once, when the rootfs does not exist yet.
//  - block:   the definition's Ruby block (backtick commands) runs as written,
//             when the rootfs does not exist yet, by re-evaluating the file.
//  - oci:     the rootfs engine lays down the layers of `image`, an OCI layout
//             or a docker archive (haco/oci.hpp names the forms).
enum class BootstrapKind { none, tarball, shell, block, oci };
std::string_view bootstrap_kind_name(BootstrapKind k);

struct Bootstrap {
  BootstrapKind kind = BootstrapKind::none;
  std::string archive_path;
  std::vector<std::string> tar_options;
  std::string code;
  // block: the commands the block issued while the definition was evaluated
  // (recorded, not run), or why they could not be recorded (the block raised).
  // They depend on the host's files at that moment, so they are not part of
  // what identifies an instance (state::spec_hash leaves them out).
  std::vector<std::string> commands;
  std::string recording_error;
  std::string image;  // oci: as written in the definition
  bool operator==(const Bootstrap&) const = default;
};

// A cgroup setting as the definition wrote it (a v1 or v2 key); the runtime
// translates it for the hierarchy it finds.
struct CgroupSetting {
  std::string key;
  std::string value;
  bool operator==(const CgroupSetting&) const = default;
};

// config.seccomp.filter (haconiwa's form): what a rule does to a matching
// call, and the comparisons of Seccomp::ARG(op, value[, value2]), the n-th
// ARG of a rule testing argument n.
enum class SeccompAction { allow, kill, trap };
std::optional<SeccompAction> seccomp_action_from_name(std::string_view name);
std::string_view seccomp_action_name(SeccompAction a);

enum class SeccompCompare { eq, ne, lt, le, gt, ge, masked_eq };
std::optional<SeccompCompare> seccomp_compare_from_name(std::string_view name);
std::string_view seccomp_compare_name(SeccompCompare c);

struct SeccompArg {
  std::uint32_t index = 0;  // which argument of the call (0..5)
  SeccompCompare op = SeccompCompare::eq;
  std::uint64_t value = 0;  // masked_eq: (argument & mask) == value
  std::uint64_t mask = 0;
  bool operator==(const SeccompArg&) const = default;
};

struct SeccompRule {
  SeccompAction action = SeccompAction::kill;
  std::string syscall;  // the name libseccomp knows it by ("mkdir")
  std::vector<SeccompArg> args;
  bool operator==(const SeccompRule&) const = default;
};

struct SeccompFilter {
  SeccompAction default_action = SeccompAction::allow;
  std::vector<SeccompRule> rules;
  bool operator==(const SeccompFilter&) const = default;
};

struct ContainerSpec {
  std::string name;                      // config.name; also the hostname
  std::vector<std::string> command;      // config.init_command (argv)
  bool daemonize = false;                // config.daemonize!
  std::string rootfs;                    // config.chroot_to (absolute host path)
  std::vector<Namespace> namespaces;     // unique, in the order first asked
  std::vector<IdMapping> uid_map;        // set_uid_mapping (implies user ns)
  std::vector<IdMapping> gid_map;        // set_gid_mapping
  std::optional<Owner> rootfs_owner;     // config.rootfs_owner
  std::vector<MountPoint> mounts;        // add_mount_point, in order
  std::optional<std::string> network_etc_host_root;  // mount_network_etc host_root:
  std::vector<IndependentMount> independent_mounts;  // mount_independent, unique
  std::vector<CgroupSetting> cgroup;     // config.cgroup[key] = value
  Bootstrap bootstrap;                   // config.bootstrap
  std::vector<std::string> environment;  // config.environ, "KEY=VALUE"
  // config.workdir; empty until the definition or its image sets one (the
  // fleet's expansion makes it "/" then).
  std::string workdir;
  // config.user (or the image's User): "name", "uid", "uid:gid",
  // "name:group", resolved against the container's /etc/passwd and
  // /etc/group when it starts; empty: the container's root.
  std::string user;
  int stop_signal = SIGTERM;             // config.stop_signal
  CapabilitySet capabilities = default_capabilities();  // config.capabilities: the bounding set
  bool no_new_privs = false;             // config.no_new_privs
  bool seccomp_default_filter = true;    // config.seccomp.default_filter
  std::optional<SeccompFilter> seccomp_filter;  // config.seccomp.filter
  std::string source_file;               // the .haco file it came from

  bool has_namespace(Namespace ns) const;
  bool operator==(const ContainerSpec&) const = default;
};

// One member of a fleet: the definition evaluated with `port` in its
// environment.
struct InstanceSpec {
  std::size_t index = 0;
  std::uint16_t port = 0;
  ContainerSpec container;
  bool operator==(const InstanceSpec&) const = default;
};

}  // namespace haco
