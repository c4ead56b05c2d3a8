// Reads an image archive with libarchive (tar, gzip, xz, zstd, bzip2, ...)
// and turns it into confined entries: every path normalized and checked
// against what the archive already created, so that no entry can name,
// follow or replace anything that would lead outside the rootfs. The entries
// and file data are cut into batches for the writers.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "rootfs/entry.hpp"

namespace haco::rootfs {

class ArchiveReader {
 public:
  static constexpr std::size_t kBatchData = 4u << 20;  // bytes of file data per batch
  static constexpr std::size_t kBatchOps = 2048;

  explicit ArchiveReader(std::string archive);

  // Reads the whole archive, calling `emit` with each full batch (false from
  // emit stops reading). Throws haco::Error naming the entry on a refused or
  // unreadable entry. `cancel` is polled between entries.
  void read(const std::function<bool(std::shared_ptr<const Batch>)>& emit,
            const std::atomic<bool>* cancel);

  // Every entry in archive order, the root first. Complete after read().
  const std::vector<std::unique_ptr<Entry>>& entries() const { return entries_; }
  std::uint64_t data_bytes() const { return data_bytes_; }
  const std::set<std::uint32_t>& uids() const { return uids_; }
  const std::set<std::uint32_t>& gids() const { return gids_; }

 private:
  const Entry* add_entry(std::unique_ptr<Entry> entry);
  const Entry* directory_for(const std::string& path, const std::string& entry_name);

  std::string archive_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, Entry*> by_path_;
  std::vector<const Entry*> implicit_dirs_;  // made by directory_for, not yet in a batch
  std::uint64_t data_bytes_ = 0;
  std::set<std::uint32_t> uids_, gids_;
};

// "./usr//bin/" -> "usr/bin"; throws for absolute paths and ".." components.
std::string normalize_entry_path(const std::string& raw);

}  // namespace haco::rootfs
