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

CachedImage ensure_cached_image(const std::string& archive, const std::string& data_root,
                                const std::atomic<bool>* cancel);

}  // namespace haco::rootfs
