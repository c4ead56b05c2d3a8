#include "rootfs/mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <unordered_map>

#include "haco/error.hpp"

namespace haco::rootfs {
namespace {

struct statx statx_of(int fd, const std::string& path) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0)
    throw Error::from_errno("statx", path, errno);
  // Both since 5.8; the minimum kernel is 5.19 (docs/kernel.md).
  if (!(stx.stx_mask & STATX_MNT_ID)) throw Error::from_errno("statx(STATX_MNT_ID)", path, EOPNOTSUPP);
  if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
    throw Error::from_errno("statx(STATX_ATTR_MOUNT_ROOT)", path, EOPNOTSUPP);
  return stx;
}

bool at_or_under(const std::string& mount_point, const std::string& base) {
  if (base == "/") return true;
  return mount_point.size() >= base.size() && mount_point.compare(0, base.size(), base) == 0 &&
         (mount_point.size() == base.size() || mount_point[base.size()] == '/');
}

// The ids from `id` up through its parents as mountinfo lists them, `id`
// first. Bounded by the number of mounts: the listing is read while mounts
// come and go, so it is not trusted to be a tree.
std::vector<std::uint64_t> ancestry(std::uint64_t id, const std::unordered_map<std::uint64_t, const MountInfo*>& by_id) {
  std::vector<std::uint64_t> chain{id};
  for (auto it = by_id.find(id); it != by_id.end() && chain.size() <= by_id.size();) {
    const std::uint64_t parent = it->second->parent_id;
    if (parent == it->second->id) break;
    it = by_id.find(parent);
    if (it == by_id.end()) break;
    chain.push_back(parent);
  }
  return chain;
}

bool contains(const std::vector<std::uint64_t>& ids, std::uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// The value of overlay's upperdir option. Overlay shows its options in a
// fixed order, workdir right after upperdir, so a ',' inside the path does
// not end it early.
std::string upper_dir_option(const std::string& options) {
  const std::string key = ",upperdir=";
  std::size_t start = options.find(key);
  if (start == std::string::npos) return {};
  start += key.size();
  std::size_t end = options.find(",workdir=", start);
  if (end == std::string::npos) end = options.find(',', start);
  return options.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// What stat says of `path`; nullopt when it does not exist.
std::optional<struct stat> stat_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) return st;
  if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
  throw Error::from_errno("stat", path, errno);
}

// Whether `m` is an overlay whose upper directory is `upper`.
bool overlay_over(const MountInfo& m, const struct stat& upper) {
  if (m.fstype != "overlay") return false;
  const std::string dir = upper_dir_option(m.super_options);
  struct stat st {};
  // An upper directory that no longer resolves is not this one.
  return !dir.empty() && stat(dir.c_str(), &st) == 0 && st.st_dev == upper.st_dev && st.st_ino == upper.st_ino;
}

struct MountAt {
  UniqueFd fd;                     // O_PATH, on the mount's root
  std::uint64_t id = 0;
  std::optional<MountInfo> mount;  // its line in mountinfo, if listed when read
};

std::string describe(const MountAt& at) {
  if (!at.mount) return fmt::format("mount {}, not listed in /proc/self/mountinfo", at.id);
  return fmt::format("{} '{}' at {}", at.mount->fstype, at.mount->source, at.mount->mount_point);
}

// The mount whose root `path` is, if it is one. Its line comes from `table`
// when the table lists a mount of that id and device (ids are reused once
// a mount is gone), from a fresh reading otherwise.
std::optional<MountAt> mount_at(const std::string& path, const MountTable* table = nullptr) {
  UniqueFd fd = open_path(path);
  if (!fd) return std::nullopt;
  const struct statx stx = statx_of(fd.get(), path);
  if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) return std::nullopt;
  MountAt at{std::move(fd), stx.stx_mnt_id, std::nullopt};
  if (table) {
    const MountInfo* known = table->find(at.id);
    if (known && known->dev_major == stx.stx_dev_major && known->dev_minor == stx.stx_dev_minor) {
      at.mount = *known;
      return at;
    }
  }
  for (MountInfo& m : read_mountinfo())
    if (m.id == at.id) at.mount = std::move(m);
  return at;
}

bool unmount_overlay_at(std::optional<MountAt> at, const std::string& rootfs, const std::string& upper) {
  if (!at) return false;
  const auto want = stat_of(upper);
  if (!want || !at->mount || !overlay_over(*at->mount, *want))
    throw Error(fmt::format("refusing to unmount {}: what is mounted there ({}) is not the overlay over {}", rootfs,
                            describe(*at), upper));
  // The magic link names the mount the fd was proven on, whatever the path
  // (or a symlink on it) names by now.
  const std::string by_fd = fmt::format("/proc/self/fd/{}", at->fd.get());
  if (umount2(by_fd.c_str(), MNT_DETACH) < 0) {
    // Unmounted meanwhile by someone else.
    if (errno == EINVAL) return false;
    throw Error::from_errno("umount2", rootfs, errno);
  }
  return true;
}

}  // namespace

UniqueFd open_path(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno != ENOENT && errno != ENOTDIR) throw Error::from_errno("open", path, errno);
  return fd;
}

std::uint64_t mount_id_of(int fd, const std::string& path) { return statx_of(fd, path).stx_mnt_id; }

bool is_mount_root(int fd, const std::string& path) {
  return (statx_of(fd, path).stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

std::string resolved_path_of(int fd, const std::string& path) {
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  char buf[PATH_MAX];
  ssize_t n = readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) throw Error::from_errno("readlink", fmt::format("{} (for {})", link, path), errno);
  if (static_cast<std::size_t>(n) == sizeof buf) throw Error::from_errno("readlink", path, ENAMETOOLONG);
  std::string resolved(buf, static_cast<std::size_t>(n));
  if (resolved.empty() || resolved.front() != '/')
    throw Error(fmt::format("{} resolves to {}, outside this process's root", path, resolved));
  return resolved;
}

MountTable MountTable::read() {
  MountTable table;
  table.mounts_ = read_mountinfo();
  for (std::size_t i = 0; i < table.mounts_.size(); ++i) table.by_id_.emplace(table.mounts_[i].id, i);
  return table;
}

const MountInfo* MountTable::find(std::uint64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &mounts_[it->second];
}

std::vector<std::string> mounts_at_or_under(int fd, const std::string& path) {
  return mounts_at_or_under(fd, path, MountTable::read());
}

std::vector<std::string> mounts_at_or_under(int fd, const std::string& path, const MountTable& table) {
  const std::uint64_t at = mount_id_of(fd, path);
  const std::string base = resolved_path_of(fd, path);
  const std::vector<MountInfo>& mounts = table.mounts();
  std::unordered_map<std::uint64_t, const MountInfo*> by_id;
  for (const MountInfo& m : mounts) by_id.emplace(m.id, &m);
  // Mounts stacked at `base` under the one on top are ancestors of it there.
  const std::vector<std::uint64_t> beneath = ancestry(at, by_id);
  struct Found {
    std::size_t depth;
    std::string mount_point;
  };
  std::vector<Found> found;
  for (const MountInfo& m : mounts) {
    if (!at_or_under(m.mount_point, base)) continue;
    const std::vector<std::uint64_t> chain = ancestry(m.id, by_id);
    // Reached through the mount `path` is on (a mount under an ancestor that
    // is shadowed by a later mount is not), or stacked under it at `path`.
    if (contains(chain, at) || (m.mount_point == base && contains(beneath, m.id)))
      found.push_back({chain.size(), m.mount_point});
  }
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.depth < b.depth; });
  std::vector<std::string> points;
  for (Found& f : found) points.push_back(std::move(f.mount_point));
  return points;
}

std::vector<std::string> mounts_at_or_under(const std::string& path) {
  UniqueFd fd = open_path(path);
  if (!fd) return {};
  return mounts_at_or_under(fd.get(), path);
}

bool is_mount_point(const std::string& path) {
  UniqueFd fd = open_path(path);
  return fd && is_mount_root(fd.get(), path);
}

std::optional<MountInfo> overlay_mount_using_upper(const std::string& upper) {
  const auto want = stat_of(upper);
  if (!want) return std::nullopt;
  for (MountInfo& m : read_mountinfo())
    if (overlay_over(m, *want)) return std::move(m);
  return std::nullopt;
}

std::string overlay_using_upper(const std::string& upper) {
  auto m = overlay_mount_using_upper(upper);
  return m ? m->mount_point : std::string();
}

bool overlay_mounted_at(const std::string& rootfs, const std::string& upper) {
  auto at = mount_at(rootfs);
  if (!at) return false;
  const auto want = stat_of(upper);
  return want && at->mount && overlay_over(*at->mount, *want);
}

bool unmount_overlay(const std::string& rootfs, const std::string& upper) {
  return unmount_overlay_at(mount_at(rootfs), rootfs, upper);
}

bool unmount_overlay(const std::string& rootfs, const std::string& upper, const MountTable& table) {
  return unmount_overlay_at(mount_at(rootfs, &table), rootfs, upper);
}

}  // namespace haco::rootfs
