// `haco-fleet images`: what the data root's image cache holds (tarball
// images under images/, OCI layers under layers/), how much each entry
// takes, and which fleets use it; `images prune` removes what none uses.
// An entry is in use when an instance's data directory records it as one of
// its overlay's lower layers (a running overlay, or an upper layer kept by
// `down` without --purge, which needs it to be mounted again). Prune holds
// every fleet's lock (an `up` or `down` in progress makes it stop) and each
// entry's own lock exclusively, which an `up` holds shared from the moment it
// finds the entry until its overlays are mounted and recorded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace haco::ops {

struct CacheEntry {
  std::string kind;    // "image" (a tarball, by its sha256) or "layer" (an OCI layer, by its diff_id)
  std::string digest;  // hex
  std::string tree;    // the entry's directory
  std::string source;  // the archive or image it was filled from, as its .ids file says
  std::uint64_t bytes = 0;             // disk usage of the tree
  bool complete = true;                // false: left by an interrupted fill (no completion marker)
  std::vector<std::string> instances;  // instances whose overlay is recorded over it
  std::vector<std::string> fleets;     // their fleets ("NAME", or "NAME (kept)"), sorted, unique
};

// Every entry of the cache, images first, each kind by digest.
std::vector<CacheEntry> list_image_cache(const std::string& state_root, const std::string& data_root);

struct PruneResult {
  std::vector<CacheEntry> removed;
  std::uint64_t bytes = 0;
  std::size_t kept = 0;          // entries in use, left
  std::size_t staging_removed = 0;  // blob copies left by runs that died
};

// Removes every entry no instance uses (with `dry_run`, only says which).
// Throws haco::InputError when a fleet's lock is held (an `up` or `down` is
// in progress): nothing is removed then.
PruneResult prune_image_cache(const std::string& state_root, const std::string& data_root, bool dry_run);

}  // namespace haco::ops
