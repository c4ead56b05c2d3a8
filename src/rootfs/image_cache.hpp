// The overlay strategy's image cache: <data_root>/images/<sha256>/ holds the
// image extracted once, with the ids as in the image; <sha256>.ids lists the
// owners it uses. Filled under a lock file and renamed into place, so two
// runs with the same image extract it once and never see half a tree.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <functional>
#include <vector>

#include "haco/unique_fd.hpp"

namespace haco::rootfs {

struct CachedImage {
  std::string digest;
  std::string tree;  // <data_root>/images/<digest>
  std::vector<std::uint32_t> uids, gids;
  bool extracted_now = false;
  std::vector<std::string> warnings;  // what the extraction said, when extracted now
  // A shared lock on the entry, held as long as this object (or a copy)
  // lives: `images prune` takes the lock exclusively, so it never removes an
  // entry between the moment it is found here and the moment an overlay
  // over it is mounted and recorded.
  std::shared_ptr<const UniqueFd> in_use;
};

// The entry at `lock_path` complete and held shared (the returned fd): found
// complete under a shared lock, or else filled by `fill` under an exclusive
// one. Retried when the entry went away between the two (the conversion of a
// flock is not atomic).
std::shared_ptr<const UniqueFd> lock_cache_entry(const std::string& lock_path, const std::function<bool()>& complete,
                                                 const std::function<void()>& fill);

// sha256 of `file` (hex), remembered in the data root by the file's device,
// inode, size, mtime and ctime.
std::string remembered_digest(const std::string& file, const std::string& data_root);

CachedImage ensure_cached_image(const std::string& archive, const std::string& data_root,
                                const std::atomic<bool>* cancel);

}  // namespace haco::rootfs
