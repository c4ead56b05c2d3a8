#include "rootfs/image_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/layout.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// Trees left by a run that died while filling the cache.
void remove_stale_tmp(const std::string& images, const std::string& digest) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(images.c_str()), closedir);
  if (!dir) throw Error::from_errno("opendir", images, errno);
  std::vector<std::string> stale;
  std::string prefix = ".tmp-" + digest + "-";
  while (dirent* d = readdir(dir.get()))
    if (std::string_view(d->d_name).substr(0, prefix.size()) == prefix) stale.push_back(images + "/" + d->d_name);
  for (const std::string& s : stale) remove_tree(s);
}

}  // namespace

// The archive's sha256, remembered per file: hashing a large image costs a
// noticeable part of a warm `up`. The memo is keyed by device, inode, size,
// mtime and ctime, so any change to the file (ctime moves on every write,
// rename or touch) hashes it again.
std::string remembered_digest(const std::string& archive, const std::string& data_root) {
  struct stat st {};
  if (stat(archive.c_str(), &st) != 0) throw Error::from_errno("stat", archive, errno);
  const std::string key = fmt::format("{} {} {} {}.{} {}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                                      st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  const std::string memo = layout::DataRoot(data_root).image_digest_memo(st.st_dev, st.st_ino);
  {
    std::ifstream in(memo);
    std::string line;
    if (std::getline(in, line) && line.size() > key.size() + 1 && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ' ')
      return line.substr(key.size() + 1);
  }
  std::string digest = file_digest(archive);
  // The memo only saves time: failing to write it is not an error.
  try {
    write_file_atomically(memo, key + " " + digest + "\n", 0600);
  } catch (const Error&) {
  }
  return digest;
}

namespace {
void fill_image(const std::string& archive, const std::string& images, CachedImage& image, const std::string& ids_file,
                const std::atomic<bool>* cancel);
}  // namespace

std::shared_ptr<const UniqueFd> lock_cache_entry(const std::string& lock_path, const std::function<bool()>& complete,
                                                 const std::function<void()>& fill) {
  auto take = [&](int fd, int how) {
    while (flock(fd, how) < 0)
      if (errno != EINTR) throw Error::from_errno("flock", lock_path, errno);
  };
  for (;;) {
    auto lock = std::make_shared<UniqueFd>(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!*lock) throw Error::from_errno("open", lock_path, errno);
    // Shared first: an entry this process already holds (two images of one
    // fleet sharing a layer) is complete, and an exclusive lock would wait
    // for this process's own shared one.
    take(lock->get(), LOCK_SH);
    if (complete()) return lock;
    take(lock->get(), LOCK_EX);
    if (!complete()) fill();
    take(lock->get(), LOCK_SH);
    if (complete()) return lock;
  }
}

CachedImage ensure_cached_image(const std::string& archive, const std::string& data_root,
                                const std::atomic<bool>* cancel) {
  // The cache holds setuid binaries with the image's ids: not for other users.
  const layout::DataRoot layout(data_root);
  layout.make_directories();
  const std::string images = layout.images();
  CachedImage image;
  image.digest = remembered_digest(archive, data_root);
  image.tree = layout.image_tree(image.digest);
  const std::string ids_file = layout.image_ids(image.digest);
  const std::string lock_path = layout.image_lock(image.digest);

  auto complete = [&] {
    if (!exists(image.tree) || !exists(ids_file)) return false;
    std::ifstream in(ids_file);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("uids") || !j.contains("gids")) return false;
    image.uids = j["uids"].get<std::vector<std::uint32_t>>();
    image.gids = j["gids"].get<std::vector<std::uint32_t>>();
    return true;
  };
  image.in_use = lock_cache_entry(lock_path, complete, [&] { fill_image(archive, images, image, ids_file, cancel); });
  return image;
}

namespace {

// Missing or incomplete: built again, under the entry's exclusive lock.
void fill_image(const std::string& archive, const std::string& images, CachedImage& image, const std::string& ids_file,
                const std::atomic<bool>* cancel) {
  remove_tree(image.tree);
  remove_stale_tmp(images, image.digest);
  const std::string tmp = fmt::format("{}/.tmp-{}-{}", images, image.digest, getpid());
  ExtractStats stats = with_context(fmt::format("filling the image cache {}", image.tree), [&] {
    return extract_archive(archive, {ExtractTarget{tmp, IdShift()}}, {cancel, 1, false});
  });
  // The tree on disk, then in place, then the .ids file, written last and
  // synced, as the entry's completion marker: an entry without a valid one
  // was left by a run that died, no overlay ever used it, and it is made
  // again.
  fault_point("cache-filled");
  sync_filesystems({tmp});
  if (rename(tmp.c_str(), image.tree.c_str()) < 0) {
    int err = errno;
    remove_tree(tmp);
    throw Error::from_errno("rename", image.tree, err);
  }
  fault_point("cache-renamed");
  write_file_atomically(ids_file,
                        nlohmann::json{{"uids", stats.uids}, {"gids", stats.gids}, {"archive", archive}}.dump() + "\n",
                        0600);
  image.extracted_now = true;
  image.warnings = stats.warnings;
}

}  // namespace

}  // namespace haco::rootfs
