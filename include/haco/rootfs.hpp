// The rootfs engine: lays down the root filesystem of every instance of a
// fleet from one image tarball. The archive is read with libarchive and
// decompressed once per fleet (extract) or once per image digest into a cache
// (overlay); ownership is shifted into each instance's uid/gid range in the
// same pass; every path is confined to the instance's rootfs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/layout.hpp"
#include "haco/spec.hpp"

namespace haco::rootfs {

// extract: an independent tree per instance, written through io_uring.
// overlay: one cached tree per image, an idmapped lower layer per instance.
enum class Strategy { extract, overlay };

// shift:  host id = mapped base + image id; an id outside the mapped range is
//         an error naming the entry.
// squash: as shift, but ids outside the range become the range's root.
// flat:   every entry owned by the range's root (the seed's `chown -R base:base`).
enum class OwnershipPolicy { shift, squash, flat };

std::string_view strategy_name(Strategy s);
std::string_view ownership_policy_name(OwnershipPolicy p);

struct InstanceRootfs {
  std::string instance;                      // instance name (messages, cache/upper dir names)
  std::string rootfs;                        // where the root appears (ContainerSpec::rootfs)
  std::string archive;                       // image tarball (Bootstrap::archive_path)
  std::vector<IdMapping> uid_map, gid_map;   // empty = no shift (ids kept as in the image)
  OwnershipPolicy ownership = OwnershipPolicy::shift;
  std::string image;                         // instead of `archive`: an OCI image (Bootstrap::image, haco/oci.hpp)
};

struct PrepareOptions {
  Strategy strategy = Strategy::overlay;     // the measured default; falls back to extract (said once) when impossible
  std::string data_root = layout::kDefaultDataRoot;  // image cache, overlay upper/work dirs
  unsigned parallel = 0;                     // concurrent jobs; 0 = number of CPUs
  // Each step of an instance ("overlay mounted"), and with an empty instance
  // what the engine did for the whole fleet ("image 3f2a... found in the
  // cache"). May be empty: fleet-wide lines then go to stderr.
  std::function<void(const std::string& instance, std::string_view event)> progress;
  // What the engine could not do as asked (an image's device nodes not
  // created, the overlay strategy unavailable). May be empty: they then go
  // to `progress` as fleet-wide lines.
  std::function<void(std::string_view line)> warning;
  const std::atomic<bool>* cancel = nullptr; // set by Ctrl-C: stop, remove partial trees, unmount
};

struct PreparedRootfs {                      // recorded in fleet state; enough for teardown
  std::string instance, rootfs;
  Strategy strategy = Strategy::extract;
  std::string upper_dir, work_dir;           // overlay only (their parent is the instance's data dir)
  bool reused = false;                       // rootfs already existed and was kept
  std::chrono::nanoseconds elapsed{0};
};

// Prepares every instance's rootfs: the archive decompressed once per fleet
// (extract) or once per image digest into the cache (overlay). An existing
// non-empty rootfs is kept as is and reported `reused`. Throws haco::Error; on
// failure or cancel nothing partial remains.
std::vector<PreparedRootfs> prepare_fleet(const std::vector<InstanceRootfs>& instances,
                                          const PrepareOptions& options);

// Unmounts an overlay instance (detach-safe); with purge also removes its tree
// (and upper/work), never following symlinks or crossing mount points,
// refusing if something is still mounted under it.
void teardown(const PreparedRootfs& prepared, bool purge);
// The same for a whole fleet, `parallel` at a time (0: 4 x CPUs, removal
// waits on the device more than on the CPU); every instance is attempted,
// the first error is thrown at the end.
void teardown_fleet(const std::vector<PreparedRootfs>& prepared, bool purge, unsigned parallel = 0);

// The rootfs of an instance that its fleet's state does not record (an `up`
// or a supervisor killed before it was written, a state lost): an overlay
// over the instance's upper layer in `data_root` (mounted, wherever its
// mount is, or kept), else the tree at `claimed_rootfs` (the path the fleet
// claimed for it; may be empty). nullopt when nothing is there.
std::optional<PreparedRootfs> find_unrecorded_rootfs(const std::string& data_root, const std::string& instance,
                                                     const std::string& claimed_rootfs);

// Completion of a tree being written (src/rootfs/completion.cpp): a marker
// in the instance's data directory, on disk before the tree's first entry and
// removed once the tree is on disk. A tree still marked was left by a run
// that died, and is made again.
void mark_rootfs_incomplete(const std::string& data_root, const std::string& instance);
bool rootfs_marked_incomplete(const std::string& data_root, const std::string& instance);
void mark_rootfs_complete(const std::string& data_root, const std::string& instance);
// syncfs(2) of the filesystem of each path (once per filesystem).
void sync_filesystems(const std::vector<std::string>& paths);

// Whether `path` holds a tree: a directory (a symlink to one is followed)
// with at least one entry. What a definition without a bootstrap must name,
// and what a bootstrap does not make again. False when `path` is missing or
// not a directory; throws haco::Error naming it when it cannot be read.
bool rootfs_populated(const std::string& path);

// Lower-level API, also used by tests and benchmarks.

// Where one image entry's ids go on the host.
class IdShift {
 public:
  IdShift() = default;  // identity: ids kept as in the image
  IdShift(std::vector<IdMapping> uid_map, std::vector<IdMapping> gid_map, OwnershipPolicy policy);

  // Host ids for an entry owned by (uid, gid) in the image; throws haco::Error
  // naming `entry` when an id is outside the mapped range under `shift`.
  Owner map(std::uint32_t uid, std::uint32_t gid, std::string_view entry) const;
  // The host uid of the instance's root (uid 0 inside), for capabilities.
  std::uint32_t root_uid() const;
  bool identity() const { return uid_map_.empty() && gid_map_.empty() && policy_ != OwnershipPolicy::flat; }

 private:
  std::vector<IdMapping> uid_map_, gid_map_;
  OwnershipPolicy policy_ = OwnershipPolicy::shift;
};

struct ExtractTarget {
  std::string rootfs;   // created if missing; must be empty
  IdShift shift;
};

struct ExtractStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;              // file data per tree
  std::vector<std::string> warnings;    // e.g. an xattr the filesystem refused, dropped
  std::vector<std::uint32_t> uids, gids;  // distinct owners in the image
};

struct ExtractOptions {
  const std::atomic<bool>* cancel = nullptr;
  unsigned writers = 0;     // writer threads, each with its own io_uring; 0 = number of CPUs
  // false: entries are created already owned (io_uring personalities);
  // true: created as root, then chowned in the final pass (kept for measuring).
  bool chown_pass = false;
  // true: regular files are written with plain calls even where io_uring's
  // release of them can be checked (kept for tests and measuring).
  bool plain_files = false;
};

// Reads `archive` once (decompression on its own thread) and writes it into
// every target concurrently. Confined: an entry that would escape a target's
// root is refused. On error or cancel the trees created here are removed,
// then the Error is thrown. Memory: at most 8 + writers + 1 batches of 4 MiB
// of file data, whatever the number of targets.
ExtractStats extract_archive(const std::string& archive, const std::vector<ExtractTarget>& targets,
                             const ExtractOptions& options = {});

// Whether the directory `path` (not a symlink: O_NOFOLLOW) has any entry
// besides . and ..; throws haco::Error naming it when it cannot be opened
// (ENOTDIR, ELOOP for a symlink) or read.
bool directory_has_entries(const std::string& path);

// Removes a tree without following symlinks or crossing mount points;
// refuses (throws) if anything is mounted inside it. Missing path: no-op.
void remove_tree(const std::string& path);

// sha256 of a file, lowercase hex.
std::string file_digest(const std::string& path);
// sha256 of bytes in memory, lowercase hex.
std::string bytes_digest(std::string_view data);

}  // namespace haco::rootfs
