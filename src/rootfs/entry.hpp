// One archive entry as the extraction writers see it: a normalized path
// relative to the rootfs, already checked against the confinement rules by
// the reader, with the metadata to apply in the final pass.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace haco::rootfs {

// whiteout: an OCI layer's deletion of a lower layer's path, stored in a
// cached layer tree as overlayfs stores it (a 0/0 character device).
enum class EntryType { directory, regular, symlink, hardlink, char_device, block_device, fifo, whiteout };

struct Entry {
  std::string path;          // normalized, relative, no "." or ".." ("" is the root)
  std::string name;          // last component (empty for the root)
  const Entry* parent = nullptr;  // the directory entry holding it (null for the root)
  EntryType type = EntryType::regular;
  mode_t mode = 0;           // permission bits including setuid/setgid/sticky
  std::uint32_t uid = 0, gid = 0;  // as in the image
  struct timespec atime {}, mtime {};
  dev_t rdev = 0;
  std::string symlink_target;       // symlink: stored as is, never followed
  const Entry* link_target = nullptr;  // hardlink: the entry it links to
  std::int64_t size = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
  bool replaces = false;     // a non-directory entry at the same path is removed first
  bool sparse = false;       // holes at the end: the final pass sets the size
  const Entry* updates = nullptr;  // a directory listed again: nothing to create, new metadata
  // Set by the reader only; read after reading finished (final pass).
  bool superseded = false;   // a later entry replaced it: no final metadata
  bool implicit = false;     // a parent directory the archive did not list (root: no "./")
};

// A piece of the stream handed to the writers: an entry to create, or a slice
// of a regular file's data. Data of one file may span several batches.
struct EntryOp {
  const Entry* entry = nullptr;
  std::uint64_t data_begin = 0;  // slice of Batch::data
  std::uint64_t data_size = 0;
  std::uint64_t file_offset = 0;
  bool first = true;   // create the entry (open the file)
  bool last = true;    // file complete (close it)
};

struct Batch {
  std::vector<EntryOp> ops;
  std::vector<char> data;
};

}  // namespace haco::rootfs
