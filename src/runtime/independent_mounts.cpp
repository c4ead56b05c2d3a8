// mount_independent: the kernel filesystems a container gets of its own,
// made by the host side for the container's namespaces (proc for its pid
// namespace, sysfs for its net namespace) and locked in the container. Inside
// a user namespace the kernel refuses sysfs unless the container also has its
// own network namespace: the host's /sys is bound read-only then. devtmpfs is
// never mounted, with or without a user namespace: a small tmpfs holding binds
// of the host's harmless devices takes its place (see docs/runtime.md for
// what the container can reach).
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/fd_passing.hpp"
#include "runtime/mount_api.hpp"
#include "runtime/mounts.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

constexpr std::array<const char*, 6> kHostDevices{"null", "zero", "full", "random", "urandom", "tty"};

// What of /proc and /sys shows or changes the host, as the mainstream
// engines' defaults mask it: hidden (an empty read-only tmpfs on a directory,
// a read-only /dev/null on a file) or made read-only. A path this kernel does
// not have is skipped.
enum class Mask { hide, read_only };
struct MaskedPath {
  const char* path;
  Mask mask;
};
constexpr MaskedPath kProcMasks[] = {
    {"/proc/acpi", Mask::hide},          {"/proc/asound", Mask::hide},      {"/proc/interrupts", Mask::hide},
    {"/proc/kcore", Mask::hide},         {"/proc/keys", Mask::hide},        {"/proc/latency_stats", Mask::hide},
    {"/proc/sched_debug", Mask::hide},   {"/proc/scsi", Mask::hide},        {"/proc/timer_list", Mask::hide},
    {"/proc/timer_stats", Mask::hide},   {"/proc/bus", Mask::read_only},    {"/proc/fs", Mask::read_only},
    {"/proc/irq", Mask::read_only},      {"/proc/sys", Mask::read_only},    {"/proc/sysrq-trigger", Mask::read_only},
};
constexpr MaskedPath kSysMasks[] = {
    {"/sys/firmware", Mask::hide},
    {"/sys/devices/virtual/powercap", Mask::hide},
};

bool asked(const ContainerSpec& c, IndependentMount m) {
  return std::find(c.independent_mounts.begin(), c.independent_mounts.end(), m) != c.independent_mounts.end();
}

bool gid_mapped_inside(const ContainerSpec& c, std::uint32_t gid) {
  if (!wants_user_namespace(c)) return true;
  return std::any_of(c.gid_map.begin(), c.gid_map.end(),
                     [&](const IdMapping& m) { return gid >= m.inside && gid - m.inside < m.count; });
}

UniqueFd open_namespace(const std::string& path) {
  return UniqueFd(static_cast<int>(check_sys(::open(path.c_str(), O_RDONLY | O_CLOEXEC), "open", path)));
}

UniqueFd open_namespace(pid_t pid, const char* ns) { return open_namespace(fmt::format("/proc/{}/ns/{}", pid, ns)); }

// A detached mount that every container gets an identical copy of: made
// once per process, then cloned (open_tree OPEN_TREE_CLONE) for each
// container. A clone keeps the mount flags of its source, so a container's
// copy costs one open_tree instead of a new filesystem or a path lookup and a
// mount_setattr. Only what no container can change is made so: a read-only
// empty tmpfs, binds of device nodes (their inodes are the host's anyway).
class MountTemplate {
 public:
  MountTemplate(std::string name, std::function<UniqueFd()> make) : name_(std::move(name)), make_(std::move(make)) {}

  UniqueFd clone() {
    if (!source_) source_ = make_();
    try {
      return copy_tree(source_, name_, false, "");
    } catch (const Error& e) {
      // The kernel clones a detached mount only in the mount namespace it
      // was made in: made again in the caller's.
      if (e.sys_errno() != EINVAL) throw;
    }
    source_ = make_();
    return copy_tree(source_, name_, false, "");
  }

 private:
  std::string name_;
  std::function<UniqueFd()> make_;
  UniqueFd source_;
};

MountTemplate& hidden_directory() {
  static MountTemplate t("a hiding tmpfs",
                         [] { return new_filesystem("tmpfs", "haco-mask", "ro,nosuid,nodev,noexec,size=4k,mode=0555"); });
  return t;
}

MountTemplate& hidden_file() {
  static MountTemplate t("/dev/null (hiding a file)", [] { return copy_tree("/dev/null", false, "ro,nosuid,noexec"); });
  return t;
}

// Applies the masks to `tree`, the detached mount the container will see at
// `root` ("/proc", "/sys"), before it is attached: each mask's target is
// looked up in that filesystem alone (the final symlink not followed), not
// through the container's rootfs. A path this kernel does not have is
// skipped.
void apply_masks(const UniqueFd& tree, std::string_view root, const MaskedPath* begin, const MaskedPath* end) {
  for (const MaskedPath* m = begin; m != end; ++m) {
    const std::string inside(std::string_view(m->path).substr(root.size() + 1));
    UniqueFd mask;
    if (m->mask == Mask::read_only) {
      // The target bound onto itself read-only.
      mask.reset(::open_tree(tree.get(), inside.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
      if (!mask) {
        if (errno == ENOENT) continue;
        throw Error::from_errno("open_tree", m->path, errno);
      }
      mount_attr attr{};
      attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
      if (::mount_setattr(mask.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
        throw Error::from_errno("mount_setattr", m->path, errno);
    } else {
      struct stat st {};
      if (::fstatat(tree.get(), inside.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        throw Error::from_errno("fstatat", m->path, errno);
      }
      mask = S_ISDIR(st.st_mode) ? hidden_directory().clone() : hidden_file().clone();
    }
    if (::move_mount(mask.get(), "", tree.get(), inside.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
      throw Error::from_errno("move_mount", m->path, errno);
  }
}

constexpr const char* kProcOptions = "nosuid,nodev,noexec";

// Kernels before 6.18 have no "pidns" parameter for proc: an instance shows
// the pid namespace of the process that makes it. A helper forked into the
// container's pid namespace makes it and hands the mount back.
UniqueFd proc_made_inside(pid_t pid) {
  UniqueFd own = open_namespace("/proc/thread-self/ns/pid_for_children");
  UniqueFd target = open_namespace(pid, "pid");
  int pair[2];
  check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
  UniqueFd ours(pair[0]), theirs(pair[1]);
  check_sys(::setns(target.get(), CLONE_NEWPID), "setns", "the container's pid namespace");
  pid_t helper = ::fork();
  int fork_errno = errno;
  ::setns(own.get(), CLONE_NEWPID);
  if (helper < 0) throw Error::from_errno("fork", "proc helper", fork_errno);
  if (helper == 0) {
    try {
      UniqueFd fs = new_filesystem("proc", "proc", kProcOptions);
      send_with_fd(theirs.get(), "p", fs.get(), "proc helper socket");
    } catch (...) {
    }
    ::_exit(0);
  }
  theirs.reset();
  ReceivedMessage received;
  try {
    received = receive_with_fd(ours.get(), 1, "proc helper socket");
  } catch (...) {
    while (::waitpid(helper, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  while (::waitpid(helper, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (received.fd_lost)
    throw Error("the proc mount made inside the container's pid namespace was lost on its way back (MSG_CTRUNC: no "
                "descriptor free in this process)");
  if (!received.fd) throw Error("mounting proc inside the container's pid namespace failed");
  return std::move(received.fd);
}

UniqueFd proc_for(pid_t pid) {
  // Whether this kernel takes "pidns", learned once per process.
  static bool has_pidns_parameter = true;
  if (has_pidns_parameter) {
    UniqueFd pidns = open_namespace(pid, "pid");
    try {
      return new_filesystem("proc", "proc", kProcOptions, {{"pidns", pidns.get()}});
    } catch (const Error& e) {
      if (e.sys_errno() != EINVAL) throw;
      has_pidns_parameter = false;
    }
  }
  return proc_made_inside(pid);
}

void plan_procfs(pid_t pid, MountPlan& plan) {
  // The container's pid namespace, whose user namespace then owns the mount.
  UniqueFd proc = proc_for(pid);
  apply_masks(proc, "/proc", std::begin(kProcMasks), std::end(kProcMasks));
  plan.push_back({StagedMount::Kind::onto_directory, "/proc", std::move(proc)});
}

// sysfs shows the network devices of the net namespace it is created in.
UniqueFd sysfs_of_net_namespace(pid_t pid) {
  UniqueFd own = open_namespace("/proc/thread-self/ns/net");
  UniqueFd container = open_namespace(pid, "net");
  check_sys(::setns(container.get(), CLONE_NEWNET), "setns", "the container's net namespace");
  UniqueFd fs;
  try {
    fs = new_filesystem("sysfs", "sysfs", "ro,nosuid,nodev,noexec");
  } catch (...) {
    ::setns(own.get(), CLONE_NEWNET);
    throw;
  }
  check_sys(::setns(own.get(), CLONE_NEWNET), "setns", "the host's net namespace");
  return fs;
}

void plan_sysfs(const ContainerSpec& c, pid_t pid, MountPlan& plan) {
  UniqueFd sys;
  if (c.has_namespace(Namespace::net))
    sys = sysfs_of_net_namespace(pid);
  else if (wants_user_namespace(c))
    sys = with_context("binding the host's /sys read-only",
                       [] { return copy_tree("/sys", true, "ro,nosuid,nodev,noexec"); });
  else
    sys = new_filesystem("sysfs", "sysfs", "ro,nosuid,nodev,noexec");
  apply_masks(sys, "/sys", std::begin(kSysMasks), std::end(kSysMasks));
  plan.push_back({StagedMount::Kind::onto_directory, "/sys", std::move(sys)});
}

// The bind of the host's /dev/<name> (nosuid, noexec), cloned from one
// template per device.
UniqueFd host_device(const char* name) {
  static std::vector<MountTemplate> templates = [] {
    std::vector<MountTemplate> out;
    for (const char* dev : kHostDevices) {
      std::string path = fmt::format("/dev/{}", dev);
      out.emplace_back(path, [path] {
        return with_context(fmt::format("binding the host's {}", path),
                            [&] { return copy_tree(path, false, "nosuid,noexec"); });
      });
    }
    return out;
  }();
  auto at = std::find(kHostDevices.begin(), kHostDevices.end(), std::string_view(name));
  return templates.at(static_cast<std::size_t>(at - kHostDevices.begin())).clone();
}

// Gives what was just created as `name` in the new /dev to `owner`.
void own_in_dev(int dev, const char* name, const std::optional<Owner>& owner) {
  if (owner && ::fchownat(dev, name, owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) != 0)
    throw Error::from_errno("fchownat", fmt::format("/dev/{}", name), errno);
}

// A tmpfs /dev holding binds of the host's harmless character devices,
// with or without a user namespace: never the host's devtmpfs. Filled while
// still detached (a fresh tmpfs no one else reaches: no lookup inside the
// rootfs needed) and attached with its binds as one tree.
UniqueFd dev_tree(const ContainerSpec& c) {
  const std::optional<Owner> owner = container_root_on_host(c);
  UniqueFd dev = new_filesystem("tmpfs", "tmpfs", tmpfs_options(c, "mode=0755,size=64k,nr_inodes=1024,nosuid,nodev,noexec"));
  for (const char* name : kHostDevices) {
    const std::string target = fmt::format("/dev/{}", name);
    int created = ::openat(dev.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (created < 0) throw Error::from_errno("openat (create)", target, errno);
    ::close(created);
    own_in_dev(dev.get(), name, owner);
    UniqueFd device = host_device(name);
    if (::move_mount(device.get(), "", dev.get(), name, MOVE_MOUNT_F_EMPTY_PATH) != 0)
      throw Error::from_errno("move_mount", target, errno);
  }
  for (const auto& [name, link] : {std::pair{"fd", "/proc/self/fd"}, std::pair{"stdin", "/proc/self/fd/0"},
                                   std::pair{"stdout", "/proc/self/fd/1"}, std::pair{"stderr", "/proc/self/fd/2"}}) {
    if (::symlinkat(link, dev.get(), name) != 0) throw Error::from_errno("symlinkat", fmt::format("/dev/{}", name), errno);
    own_in_dev(dev.get(), name, owner);
  }
  return dev;
}

}  // namespace

void plan_independent_mounts(const ContainerSpec& c, pid_t pid, MountPlan& plan) {
  if (asked(c, IndependentMount::procfs)) with_context("procfs", [&] { plan_procfs(pid, plan); });
  if (asked(c, IndependentMount::sysfs)) with_context("sysfs", [&] { plan_sysfs(c, pid, plan); });
  if (asked(c, IndependentMount::devtmpfs))
    with_context("/dev", [&] { plan.push_back({StagedMount::Kind::onto_directory, "/dev", dev_tree(c)}); });
  if (asked(c, IndependentMount::shm))
    plan.push_back({StagedMount::Kind::onto_directory, "/dev/shm",
                    new_filesystem("tmpfs", "shm", tmpfs_options(c, "mode=1777,nosuid,nodev,noexec"))});
}

void mount_devpts(int root_fd, const ContainerSpec& c) {
  if (!asked(c, IndependentMount::devpts)) return;
  // The container's own instance: its user namespace owns the ptys.
  std::string options = "newinstance,ptmxmode=0666,mode=0620,nosuid,noexec";
  if (gid_mapped_inside(c, 5)) options += ",gid=5";
  with_context("mounting devpts on /dev/pts", [&] {
    UniqueFd fs = new_filesystem("devpts", "devpts", options);
    attach(fs, ensure_dir_in_root(root_fd, "/dev/pts"), "/dev/pts");
  });
  ensure_symlink_in_root(root_fd, "/dev/ptmx", "pts/ptmx");
}

}  // namespace haco::runtime
