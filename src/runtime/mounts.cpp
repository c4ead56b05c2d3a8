#include "runtime/mounts.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>


#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/mount_api.hpp"
#include "runtime/syscalls.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

bool is_directory(const std::string& host_path) {
  struct stat st {};
  check_sys(::stat(host_path.c_str(), &st), "stat", host_path);
  return S_ISDIR(st.st_mode);
}

// Binds and tmpfs are made by the host side (and locked in the container);
// a filesystem tied to a namespace (proc, mqueue, ...) must be made by the
// container itself.
bool made_by_host_side(const MountPoint& m) { return m.fstype.empty() || m.fstype == "tmpfs"; }

std::string with_read_only(const MountPoint& m) {
  if (!m.read_only) return m.options;
  return m.options.empty() ? "ro" : m.options + ",ro";
}

std::optional<std::uint32_t> host_id(const std::vector<IdMapping>& map, std::uint32_t id) {
  for (const IdMapping& m : map)
    if (id >= m.inside && id - m.inside < m.count) return m.outside + (id - m.inside);
  return std::nullopt;
}

void plan_definition_points(const ContainerSpec& c, MountPlan& plan) {
  for (const MountPoint& m : c.mounts) {
    if (!made_by_host_side(m)) continue;
    with_context(fmt::format("mount point {}", m.target), [&] {
      StagedMount s;
      s.target = m.target;
      if (m.fstype.empty()) {
        s.mount = copy_tree(m.source, true, with_read_only(m));
        s.kind = is_directory(m.source) ? StagedMount::Kind::onto_directory : StagedMount::Kind::onto_file;
      } else {
        // nodev, as a tmpfs made inside the container's user namespace would be.
        s.mount = new_filesystem(m.fstype, m.source, tmpfs_options(c, with_read_only(m)) + ",nodev");
      }
      plan.push_back(std::move(s));
    });
  }
}

void plan_network_etc(const ContainerSpec& c, MountPlan& plan) {
  if (!c.network_etc_host_root) return;
  for (const char* file : {"resolv.conf", "hosts"}) {
    std::string host = *c.network_etc_host_root + "/" + file;
    std::string target = std::string("/etc/") + file;
    with_context(fmt::format("mount_network_etc {}", target), [&] {
      plan.push_back({StagedMount::Kind::onto_file, target, copy_tree(host, false, "ro,nosuid,nodev,noexec"), {}});
    });
  }
}

void apply(int root_fd, StagedMount& s, const std::optional<Owner>& owner) {
  switch (s.kind) {
    case StagedMount::Kind::onto_directory:
      attach(s.mount, ensure_dir_in_root(root_fd, s.target, owner), s.target);
      return;
    case StagedMount::Kind::onto_file:
      attach(s.mount, ensure_file_in_root(root_fd, s.target, owner), s.target);
      return;
    case StagedMount::Kind::over_existing:
    case StagedMount::Kind::read_only_again: {
      UniqueFd target(open_in_root(root_fd, s.target));
      if (!target) {
        if (errno == ENOENT) return;
        throw Error::from_errno("openat2", s.target, errno);
      }
      if (s.kind == StagedMount::Kind::read_only_again)
        s.mount = copy_tree(target, s.target, true, "ro,nosuid,nodev,noexec");
      attach(s.mount, target, s.target);
      return;
    }
    case StagedMount::Kind::symlink:
      ensure_symlink_in_root(root_fd, s.target, s.link, owner);
      return;
  }
}

}  // namespace

std::optional<Owner> container_root_on_host(const ContainerSpec& c) {
  if (!wants_user_namespace(c)) return Owner{0, 0};
  auto uid = host_id(c.uid_map, 0);
  auto gid = host_id(c.gid_map, 0);
  if (!uid || !gid) return std::nullopt;
  return Owner{*uid, *gid};
}

std::string tmpfs_options(const ContainerSpec& c, const std::string& options) {
  std::string out;
  auto add = [&](const std::string& opt) { out += (out.empty() ? "" : ",") + opt; };
  const bool shifted = wants_user_namespace(c);
  std::size_t pos = 0;
  while (pos <= options.size()) {
    auto end = options.find(',', pos);
    if (end == std::string::npos) end = options.size();
    std::string opt = options.substr(pos, end - pos);
    pos = end + 1;
    if (opt.empty()) continue;
    // The host side makes the tmpfs: the kernel reads uid= and gid= as host ids.
    bool is_uid = opt.rfind("uid=", 0) == 0, is_gid = opt.rfind("gid=", 0) == 0;
    if (shifted && (is_uid || is_gid)) {
      const std::string value = opt.substr(4);
      std::uint32_t id = 0;
      try {
        id = static_cast<std::uint32_t>(std::stoul(value));
      } catch (const std::exception&) {
        throw Error(fmt::format("tmpfs option {}: not a number", opt));
      }
      auto host = host_id(is_uid ? c.uid_map : c.gid_map, id);
      if (!host) throw Error(fmt::format("tmpfs option {}: {} {} is not mapped in the container", opt,
                                         is_uid ? "uid" : "gid", id));
      opt = fmt::format("{}={}", is_uid ? "uid" : "gid", *host);
    }
    add(opt);
  }
  if (!has_option(options, "size") && !has_option(options, "nr_blocks")) add(fmt::format("size={}", kTmpfsDefaultSize));
  if (!has_option(options, "nr_inodes")) add(fmt::format("nr_inodes={}", kTmpfsDefaultInodes));
  if (auto root = container_root_on_host(c)) {
    if (!has_option(options, "uid")) add(fmt::format("uid={}", root->uid));
    if (!has_option(options, "gid")) add(fmt::format("gid={}", root->gid));
  }
  return out;
}

UniqueFd rootfs_tree(const ContainerSpec& c) {
  if (c.rootfs.empty() || c.rootfs.front() != '/')
    throw Error(fmt::format("the rootfs \"{}\" is not an absolute path", c.rootfs));
  // A clone of the tree (an overlay mount included), every mount of it nodev:
  // no device node inside can be opened (docs/security.md, "Device nodes").
  UniqueFd tree = copy_tree(c.rootfs, true, "nodev");
  // Private: what is mounted in it from now on reaches no mount of the host
  // (a clone of a shared mount would be its peer).
  mount_attr attr{};
  attr.propagation = MS_PRIVATE;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    throw Error::from_errno("mount_setattr (private)", c.rootfs, errno);
  return tree;
}

void stage_rootfs(const UniqueFd& tree, const ContainerSpec& c) { stack_as_root(tree, c.rootfs); }

void mount_container_filesystems(const ContainerSpec& c, pid_t pid, StagingNamespace& staging) {
  const std::optional<Owner> owner = container_root_on_host(c);
  MountPlan plan;
  plan_definition_points(c, plan);
  plan_network_etc(c, plan);
  plan_independent_mounts(c, pid, plan);

  InsideStaging inside(staging);
  UniqueFd root(static_cast<int>(check_sys(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), "open", "rootfs")));
  for (StagedMount& s : plan) with_context(fmt::format("mounting {}", s.target), [&] { apply(root.get(), s, owner); });
}

void enter_own_mount_namespace(const ContainerSpec& c) {
  // The copy of the staging namespace: for a container with a user
  // namespace, every mount in it is locked.
  check_sys(::unshare(CLONE_NEWNS), "unshare", "mount namespace");
  UniqueFd root(static_cast<int>(check_sys(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), "open", "/")));
  for (const MountPoint& m : c.mounts) {
    if (made_by_host_side(m)) continue;
    with_context(fmt::format("mount point {}", m.target), [&] {
      UniqueFd fs = new_filesystem(m.fstype, m.source, with_read_only(m));
      attach(fs, ensure_dir_in_root(root.get(), m.target), m.target);
    });
  }
  mount_devpts(root.get(), c);
}

}  // namespace haco::runtime
