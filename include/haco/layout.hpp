// Where haco-fleet keeps its own files on the host, and the one way their
// directories are made.
//
// Private directories (mode 0700, owned by root) hold what no other local
// user may read or plant: the state root and each fleet's directory in it
// (state with the definitions' environ values, locks, control sockets), and
// in the data root the image cache (setuid binaries with the image's ids),
// the digest memo, the instance directories (overlay upper and work layers)
// and the instance logs. An existing one with a wider mode is tightened, with
// a one-line notice on stderr; one that is not a directory owned by root is
// refused.
//
// Directories above container trees (the rootfs bases that a definition's
// chroot_to points into, and the data root itself, which holds the default
// base) are made with kRootfsBaseMode, private too: the container's root is
// attached from a mount the host side opens, so its mapped ids never walk
// these paths, and no other host user can reach a container's files.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace haco::layout {

inline constexpr mode_t kPrivateMode = 0700;
inline constexpr mode_t kRootfsBaseMode = 0700;

// mkdir -p: creates each missing directory of `path`, each with exactly
// `mode` (whatever the umask). Returns the directories it created, outermost
// first. Throws haco::Error naming the directory that could not be made, or
// the file (ENOTDIR) that stands where a directory should be.
std::vector<std::string> make_directories(const std::string& path, mode_t mode);

// `path` as a private directory: it and its missing parents are made with
// kPrivateMode. An existing `path` must be a directory (not a symlink) owned
// by the effective uid; a wider mode is tightened to 0700 with a notice on
// stderr.
void make_private_directory(const std::string& path);

inline constexpr const char* kDefaultDataRoot = "/var/lib/haco-fleet";

// The data root's layout (--data-root, default kDefaultDataRoot). Paths
// that contain a fleet or instance name check it first (haco::check_name).
class DataRoot {
 public:
  explicit DataRoot(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  // The overlay strategy's image cache: <digest>/ trees, .ids and .lock files.
  std::string images() const { return path_ + "/images"; }
  // One cached image tree, named by its archive's sha256 (hex), and beside
  // it the file of its owners, written last as the entry's completion
  // marker, and the lock held while the entry is checked or filled.
  std::string image_tree(std::string_view digest) const { return images() + "/" + std::string(digest); }
  std::string image_ids(std::string_view digest) const { return image_tree(digest) + ".ids"; }
  std::string image_lock(std::string_view digest) const { return image_tree(digest) + ".lock"; }
  // The OCI layer cache: one tree per layer, named by its diff_id (the
  // sha256 of the uncompressed layer, hex), with .ids and .lock beside it
  // as for images; whiteouts stored as overlayfs whiteouts.
  std::string layers() const { return path_ + "/layers"; }
  std::string layer_tree(std::string_view digest) const { return layers() + "/" + std::string(digest); }
  std::string layer_ids(std::string_view digest) const { return layer_tree(digest) + ".ids"; }
  std::string layer_lock(std::string_view digest) const { return layer_tree(digest) + ".lock"; }
  // Blobs read out of a docker archive while its layers are cached or
  // extracted; removed when that is done.
  std::string staging() const { return path_ + "/staging"; }
  // The remembered sha256 of each image archive.
  std::string image_digests() const { return path_ + "/image-digests"; }
  // The one of the archive file with this device and inode number.
  std::string image_digest_memo(dev_t device, ino_t inode) const;
  std::string instances() const { return path_ + "/instances"; }
  // One instance's data directory: its overlay's upper and work layers, the
  // digest of the image the upper layer was made over, and the marker of a
  // rootfs being written (src/rootfs/completion.cpp).
  std::string instance_dir(std::string_view instance) const;
  std::string instance_upper(std::string_view instance) const { return instance_dir(instance) + "/upper"; }
  std::string instance_work(std::string_view instance) const { return instance_dir(instance) + "/work"; }
  std::string instance_image_digest(std::string_view instance) const { return instance_dir(instance) + "/image"; }
  std::string rootfs_incomplete_marker(std::string_view instance) const {
    return instance_dir(instance) + "/rootfs-incomplete";
  }
  std::string logs() const { return path_ + "/logs"; }
  // What a `down` without --purge kept of each fleet (haco/kept_trees.hpp).
  std::string kept() const { return path_ + "/kept"; }
  std::string fleet_kept_record(std::string_view fleet) const;
  // One fleet's instance logs.
  std::string fleet_logs(std::string_view fleet) const;

  // The data root (made with kRootfsBaseMode when missing) and its private
  // directories: images, layers, staging, image-digests, instances and logs.
  void make_directories() const;

 private:
  std::string path_;
};

}  // namespace haco::layout
