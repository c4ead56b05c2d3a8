// The overlay strategy's image cache: <data_root>/images/<sha256>/ holds the
// image extracted once, with the ids as in the image; <sha256>.ids lists the
// owners it uses. Filled under a lock file and renamed into place, so two
// runs with the same image extract it once and never see half a tree.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace haco::rootfs {

struct CachedImage {
  std::string digest;
  std::string tree;  // <data_root>/images/<digest>
  std::vector<std::uint32_t> uids, gids;
  bool extracted_now = false;
  std::vector<std::string> warnings;  // what the extraction said, when extracted now
};

// sha256 of `file` (hex), remembered in the data root by the file's device,
// inode, size, mtime and ctime.
std::string remembered_digest(const std::string& file, const std::string& data_root);

CachedImage ensure_cached_image(const std::string& archive, const std::string& data_root,
                                const std::atomic<bool>* cancel);

}  // namespace haco::rootfs
