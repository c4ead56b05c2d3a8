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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>

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

void add_masks(const MaskedPath* begin, const MaskedPath* end, MountPlan& plan) {
  for (const MaskedPath* m = begin; m != end; ++m) {
    // The container's proc and sys show what the host's do.
    struct stat st {};
    if (::lstat(m->path, &st) != 0) continue;
    if (m->mask == Mask::read_only) {
      plan.push_back({StagedMount::Kind::read_only_again, m->path, {}, {}});
    } else if (S_ISDIR(st.st_mode)) {
      plan.push_back({StagedMount::Kind::over_existing, m->path,
                      new_filesystem("tmpfs", "haco-mask", "ro,nosuid,nodev,noexec,size=4k,mode=0555"), {}});
    } else {
      plan.push_back({StagedMount::Kind::over_existing, m->path, copy_tree("/dev/null", false, "ro,nosuid,noexec"), {}});
    }
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
  plan.push_back({StagedMount::Kind::onto_directory, "/proc", proc_for(pid), {}});
  add_masks(std::begin(kProcMasks), std::end(kProcMasks), plan);
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
  plan.push_back({StagedMount::Kind::onto_directory, "/sys", std::move(sys), {}});
  add_masks(std::begin(kSysMasks), std::end(kSysMasks), plan);
}

// A tmpfs /dev holding binds of the host's harmless character devices,
// with or without a user namespace: never the host's devtmpfs.
void plan_dev(const ContainerSpec& c, MountPlan& plan) {
  plan.push_back({StagedMount::Kind::onto_directory, "/dev",
                  new_filesystem("tmpfs", "tmpfs", tmpfs_options(c, "mode=0755,size=64k,nr_inodes=1024,nosuid,nodev,noexec")),
                  {}});
  for (const char* dev : kHostDevices) {
    std::string target = fmt::format("/dev/{}", dev);
    with_context(fmt::format("binding the host's {}", target), [&] {
      plan.push_back({StagedMount::Kind::onto_file, target, copy_tree(target, false, "nosuid,noexec"), {}});
    });
  }
  plan.push_back({StagedMount::Kind::symlink, "/dev/fd", {}, "/proc/self/fd"});
  plan.push_back({StagedMount::Kind::symlink, "/dev/stdin", {}, "/proc/self/fd/0"});
  plan.push_back({StagedMount::Kind::symlink, "/dev/stdout", {}, "/proc/self/fd/1"});
  plan.push_back({StagedMount::Kind::symlink, "/dev/stderr", {}, "/proc/self/fd/2"});
}

}  // namespace

void plan_independent_mounts(const ContainerSpec& c, pid_t pid, MountPlan& plan) {
  if (asked(c, IndependentMount::procfs)) with_context("procfs", [&] { plan_procfs(pid, plan); });
  if (asked(c, IndependentMount::sysfs)) with_context("sysfs", [&] { plan_sysfs(c, pid, plan); });
  if (asked(c, IndependentMount::devtmpfs)) with_context("/dev", [&] { plan_dev(c, plan); });
  if (asked(c, IndependentMount::shm))
    plan.push_back({StagedMount::Kind::onto_directory, "/dev/shm",
                    new_filesystem("tmpfs", "shm", tmpfs_options(c, "mode=1777,nosuid,nodev,noexec")), {}});
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
