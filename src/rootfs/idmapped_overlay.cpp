#include "rootfs/idmapped_overlay.hpp"

#include <atomic>
#include <memory>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "haco/error.hpp"

namespace haco::rootfs {
namespace {

// The child that holds the namespace open until its maps are written: made
// by clone(CLONE_NEWUSER | CLONE_VM), so it shares this process's memory
// instead of copying it. A fork here copied the page tables of a large,
// threaded process and every page written afterwards was faulted in again,
// which made up most of the time of an instance's overlay. The child only
// waits, on a stack of its own, with every signal blocked, for the SIGKILL
// that ends it.
class NamespaceChild {
 public:
  NamespaceChild() : stack_(std::make_unique<char[]>(kStackSize)) {
    sigset_t all, previous;
    sigfillset(&all);
    // Blocked before the clone, so the child never runs a handler of this
    // process (on this thread's errno and stack); restored here at once.
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_ = clone(wait_for_kill, stack_.get() + kStackSize, CLONE_NEWUSER | CLONE_VM | SIGCHLD, nullptr);
    const int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (pid_ < 0) throw Error::from_errno("clone(CLONE_NEWUSER)", clone_errno);
  }
  NamespaceChild(const NamespaceChild&) = delete;
  NamespaceChild& operator=(const NamespaceChild&) = delete;
  ~NamespaceChild() {
    kill(pid_, SIGKILL);
    int st = 0;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  pid_t pid() const { return pid_; }

 private:
  static constexpr std::size_t kStackSize = 64 * 1024;

  static int wait_for_kill(void*) {
    for (;;) pause();
  }

  std::unique_ptr<char[]> stack_;  // the child's, until it is reaped
  pid_t pid_ = -1;
};

void write_map(pid_t pid, const char* file, const std::vector<IdMapping>& map) {
  std::string text;
  for (const IdMapping& m : map) text += fmt::format("{} {} {}\n", m.inside, m.outside, m.count);
  std::string path = fmt::format("/proc/{}/{}", pid, file);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw Error::from_errno("open", path, errno);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw Error::from_errno("write", path, errno);
}

// The kernel explains a refused fsconfig through the fs context fd.
std::string fs_context_log(int fs_fd) {
  std::string log;
  char buf[512];
  ssize_t n;
  while ((n = read(fs_fd, buf, sizeof buf - 1)) > 0) {
    if (!log.empty()) log += "; ";
    log.append(buf, static_cast<std::size_t>(n));
  }
  return log;
}

}  // namespace

UniqueFd make_userns(const std::vector<IdMapping>& uid_map, const std::vector<IdMapping>& gid_map) {
  NamespaceChild child;
  write_map(child.pid(), "uid_map", uid_map);
  write_map(child.pid(), "gid_map", gid_map);
  std::string path = fmt::format("/proc/{}/ns/user", child.pid());
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error::from_errno("open", path, errno);
  return fd;
}

UniqueFd idmapped_tree(const std::string& path, int userns_fd) {
  UniqueFd tree(open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (!tree) throw Error::from_errno("open_tree", path, errno);
  mount_attr attr{};
  // nodev: a device node of the image is never usable (docs/security.md).
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
  if (userns_fd >= 0) {
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<__u64>(userns_fd);
  }
  if (mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    throw Error::from_errno("mount_setattr(MOUNT_ATTR_IDMAP)", path, errno);
  return tree;
}

namespace {

// Overlay's own escape for a layer path: ':' separates lower layers, ','
// options (in the monolithic form of kernels before 6.5), '\\' escapes both.
std::string escape_layer_path(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ':' || c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Builds and mounts the overlay; `set_lower` configures the lower layer.
template <typename SetLower>
void mount_overlay_with(SetLower set_lower, const std::string& upper, const std::string& work,
                        const std::string& target, const std::string& source) {
  UniqueFd fs(fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) throw Error::from_errno("fsopen", "overlay", errno);
  auto config = [&](unsigned cmd, const char* key, const void* value, int aux, const std::string& what) {
    if (fsconfig(fs.get(), cmd, key, value, aux) < 0) {
      int err = errno;
      std::string log = fs_context_log(fs.get());
      Error e = Error::from_errno(fmt::format("fsconfig({})", key ? key : "create"), what, err);
      if (!log.empty()) e.with_context("overlay: " + log);
      throw e;
    }
  };
  config(FSCONFIG_SET_STRING, "source", source.c_str(), 0, source);
  set_lower(config);
  config(FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0, upper);
  config(FSCONFIG_SET_STRING, "workdir", work.c_str(), 0, work);
  config(FSCONFIG_CMD_CREATE, nullptr, nullptr, 0, target);
  UniqueFd mnt(fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV));
  if (!mnt) throw Error::from_errno("fsmount", target, errno);
  if (move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
    throw Error::from_errno("move_mount", target, errno);
}

// Whether this kernel takes a lower layer as an fd ("lowerdir+", 6.8 and
// later); decided by the first attempt in this process.
std::atomic<bool> lower_layer_by_fd{true};

bool lower_layer_fd_refused(const Error& e) {
  // EINVAL: an unknown parameter; EOPNOTSUPP: an fd given to overlay's
  // monolithic option parser (before 6.5); ENOPARAM (519) seen by callers of
  // older fs_parse.
  return e.call() == "fsconfig(lowerdir+)" &&
         (e.sys_errno() == EINVAL || e.sys_errno() == EOPNOTSUPP || e.sys_errno() == 519);
}

}  // namespace

void mount_overlay(const std::vector<UniqueFd>& lower_fds, const std::string& lower_attach_point,
                   const std::string& upper, const std::string& work, const std::string& target,
                   const std::string& source) {
  if (lower_layer_by_fd.load()) {
    try {
      // Each "lowerdir+" adds a layer below those given before it.
      mount_overlay_with(
          [&](auto& config) {
            for (const UniqueFd& fd : lower_fds)
              config(FSCONFIG_SET_FD, "lowerdir+", nullptr, fd.get(), "lower layer");
          },
          upper, work, target, source);
      return;
    } catch (const Error& e) {
      if (!lower_layer_fd_refused(e)) throw;
      lower_layer_by_fd.store(false);
    }
  }
  // The idmapped lower layers are attached at private paths just long
  // enough for overlay to take its own private clones of them.
  struct AttachPoint {
    std::string path;
    bool made = false, mounted = false;
    ~AttachPoint() {
      if (mounted) umount2(path.c_str(), MNT_DETACH);
      if (made) rmdir(path.c_str());
    }
  };
  std::vector<std::unique_ptr<AttachPoint>> points;
  std::string lowerdir;
  for (std::size_t i = 0; i < lower_fds.size(); ++i) {
    auto point = std::make_unique<AttachPoint>();
    point->path = i == 0 ? lower_attach_point : fmt::format("{}-{}", lower_attach_point, i);
    rmdir(point->path.c_str());  // an empty one left by an interrupted run
    check_sys(mkdir(point->path.c_str(), 0700), "mkdir", point->path);
    point->made = true;
    if (move_mount(lower_fds[i].get(), "", AT_FDCWD, point->path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
      throw Error::from_errno("move_mount", point->path, errno);
    point->mounted = true;
    lowerdir += (lowerdir.empty() ? "" : ":") + escape_layer_path(point->path);
    points.push_back(std::move(point));
  }
  mount_overlay_with(
      [&](auto& config) { config(FSCONFIG_SET_STRING, "lowerdir", lowerdir.c_str(), 0, lower_attach_point); },
      upper, work, target, source);
}

}  // namespace haco::rootfs
