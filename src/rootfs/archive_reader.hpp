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
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rootfs/entry.hpp"

namespace haco::rootfs {

// What the kernel takes in one path and one component (PATH_MAX counts the
// terminating NUL): an entry beyond either could not be created anyway. A
// path of 4095 bytes has at most 2048 components.
inline constexpr std::size_t kMaxEntryPath = 4095;
inline constexpr std::size_t kMaxEntryName = 255;

// How an archive's names are read.
//  plain:     an image tarball: every entry is a file of the image.
//  overlay:   one OCI layer kept as an overlay lower layer: `.wh.NAME` becomes
//             a whiteout (overlayfs' 0/0 character device) named NAME, and
//             `.wh..wh..opq` the opaque xattr of its directory.
//  flattened: OCI layers applied in order into one tree: `keep` says which
//             entry of which layer is written (the whiteouts never are).
// In both layer forms an xattr of overlayfs' own (trusted.overlay.*) that a
// layer carries is dropped: only the whiteouts above make overlay metadata.
enum class LayerNames { plain, overlay, flattened };

// Whether the `header`-th entry (counting from 0) of archive `archive` is kept.
using EntryFilter = std::function<bool(std::size_t archive, std::size_t header)>;

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
inline constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

// The name a whiteout `.wh.NAME` deletes, checked: not empty, ".", "..", nor
// holding a '/'. Throws haco::Error naming `entry`.
std::string whiteout_target(std::string_view marker_name, const std::string& entry);

class ArchiveReader {
 public:
  static constexpr std::size_t kBatchData = 4u << 20;  // bytes of file data per batch
  static constexpr std::size_t kBatchOps = 2048;
  // Every entry's path is kept, and a deep one brings its implicit parents
  // (up to 2047 paths of up to 4 KiB for a 4 KiB entry): the paths of one
  // archive may take this much in all. Real images take a few MiB.
  static constexpr std::size_t kMaxPathBytes = std::size_t(256) << 20;

  explicit ArchiveReader(std::string archive);
  // Several archives read in order into one tree (names as `names` says).
  ArchiveReader(std::vector<std::string> archives, LayerNames names, EntryFilter keep = {});

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

  // The entry that marks `parent` opaque, turned into that directory listed
  // again with the opaque xattr.
  void make_opaque_listing(Entry& marker, const std::string& parent, const std::string& raw);

  std::vector<std::string> archives_;
  LayerNames names_ = LayerNames::plain;
  EntryFilter keep_;
  std::set<std::string> opaque_dirs_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, Entry*> by_path_;
  std::vector<const Entry*> implicit_dirs_;  // made by directory_for, not yet in a batch
  std::uint64_t data_bytes_ = 0;
  std::size_t path_bytes_ = 0;
  std::set<std::uint32_t> uids_, gids_;
};

// "./usr//bin/" -> "usr/bin"; throws for absolute paths, ".." components, a
// component longer than kMaxEntryName and a result longer than kMaxEntryPath.
std::string normalize_entry_path(const std::string& raw);

// An entry's path as errors quote it: its first 64 bytes.
std::string shown_entry(const std::string& raw);

}  // namespace haco::rootfs
