#include "rootfs/archive_reader.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>

#include <ctime>

#include "haco/error.hpp"

namespace haco::rootfs {
namespace {

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

EntryType type_of(archive_entry* e) {
  switch (archive_entry_filetype(e)) {
    case AE_IFDIR: return EntryType::directory;
    case AE_IFLNK: return EntryType::symlink;
    case AE_IFCHR: return EntryType::char_device;
    case AE_IFBLK: return EntryType::block_device;
    case AE_IFIFO: return EntryType::fifo;
    default: return EntryType::regular;
  }
}

Error archive_error(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return Error(fmt::format("{}: {}", what, msg ? msg : "unknown libarchive error"));
}

}  // namespace

std::string shown_entry(const std::string& raw) {
  constexpr std::size_t kShown = 64;
  return raw.size() <= kShown ? raw : raw.substr(0, kShown) + "...";
}

std::string normalize_entry_path(const std::string& raw) {
  if (!raw.empty() && raw[0] == '/')
    throw Error(fmt::format("entry '{}': absolute path refused", shown_entry(raw)));
  std::string out;
  std::size_t pos = 0;
  while (pos <= raw.size()) {
    std::size_t end = raw.find('/', pos);
    if (end == std::string::npos) end = raw.size();
    std::string_view part(raw.data() + pos, end - pos);
    if (part == "..") throw Error(fmt::format("entry '{}': '..' component refused", shown_entry(raw)));
    if (part.size() > kMaxEntryName)
      throw Error(fmt::format("entry '{}': a component longer than {} bytes (NAME_MAX); refused", shown_entry(raw),
                              kMaxEntryName));
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    pos = end + 1;
  }
  if (out.size() > kMaxEntryPath)
    throw Error(fmt::format("entry '{}' ({} bytes): longer than {} bytes (PATH_MAX); refused", shown_entry(raw),
                            out.size(), kMaxEntryPath));
  return out;
}

std::string whiteout_target(std::string_view marker_name, const std::string& entry) {
  std::string target(marker_name.substr(kWhiteoutPrefix.size()));
  if (target.empty() || target == "." || target == ".." || target.find('/') != std::string::npos)
    throw Error(fmt::format("entry '{}': whiteout of '{}' refused (not a file name)", shown_entry(entry), target));
  return target;
}

namespace {

void add_opaque_xattr(std::vector<std::pair<std::string, std::string>>& xattrs) {
  for (const auto& [key, value] : xattrs)
    if (key == "trusted.overlay.opaque") return;
  xattrs.emplace_back("trusted.overlay.opaque", "y");
}

}  // namespace

ArchiveReader::ArchiveReader(std::string archive) : ArchiveReader(std::vector{std::move(archive)}, LayerNames::plain) {}

ArchiveReader::ArchiveReader(std::vector<std::string> archives, LayerNames names, EntryFilter keep)
    : archives_(std::move(archives)), names_(names), keep_(std::move(keep)) {
  auto root = std::make_unique<Entry>();
  root->type = EntryType::directory;
  root->mode = 0755;
  root->implicit = true;
  add_entry(std::move(root));
}

const Entry* ArchiveReader::add_entry(std::unique_ptr<Entry> entry) {
  path_bytes_ += entry->path.size();
  if (path_bytes_ > kMaxPathBytes)
    throw Error(fmt::format("entry '{}': the archive's paths, with the parent directories it does not list, take more "
                            "than {} MiB; refused",
                            shown_entry(entry->path), kMaxPathBytes >> 20));
  Entry* raw = entry.get();
  entries_.push_back(std::move(entry));
  by_path_[raw->path] = raw;
  return raw;
}

// The directory entry at `path`, creating implicit parents the archive did
// not list; refuses when a component is not a directory the archive made.
// A loop, not one call per component: a path may have 2048 of them.
const Entry* ArchiveReader::directory_for(const std::string& path, const std::string& entry_name) {
  // The deepest of `path` and its ancestors the archive made already (the
  // root always is): checked, everything below it is made here.
  std::size_t known = path.size();
  const Entry* dir = nullptr;
  for (;;) {
    std::string prefix = path.substr(0, known);
    auto it = by_path_.find(prefix);
    if (it != by_path_.end()) {
      if (it->second->type == EntryType::symlink)
        throw Error(fmt::format("entry '{}': '{}' is a symbolic link; writing through it refused",
                                shown_entry(entry_name), shown_entry(prefix)));
      if (it->second->type != EntryType::directory)
        throw Error(fmt::format("entry '{}': '{}' is not a directory", shown_entry(entry_name), shown_entry(prefix)));
      dir = it->second;
      break;
    }
    std::size_t slash = path.rfind('/', known - 1);
    known = slash == std::string::npos ? 0 : slash;
  }
  while (known < path.size()) {
    std::size_t start = known == 0 ? 0 : known + 1;
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    auto implicit = std::make_unique<Entry>();
    implicit->path = path.substr(0, end);
    implicit->name = path.substr(start, end - start);
    implicit->parent = dir;
    implicit->type = EntryType::directory;
    implicit->mode = 0755;
    implicit->implicit = true;
    timespec_get(&implicit->mtime, TIME_UTC);
    implicit->atime = implicit->mtime;
    dir = add_entry(std::move(implicit));
    implicit_dirs_.push_back(dir);
    known = end;
  }
  return dir;
}

void ArchiveReader::make_opaque_listing(Entry& marker, const std::string& parent, const std::string& raw) {
  const Entry* dir = directory_for(parent, raw);
  marker.path = parent;
  marker.type = EntryType::directory;
  marker.mode = dir->mode;
  marker.uid = dir->uid;
  marker.gid = dir->gid;
  marker.mtime = dir->mtime;
  marker.atime = dir->atime;
  marker.size = 0;
  marker.sparse = false;
  marker.xattrs = dir->xattrs;
  add_opaque_xattr(marker.xattrs);
}

void ArchiveReader::read(const std::function<bool(std::shared_ptr<const Batch>)>& emit,
                         const std::atomic<bool>* cancel) {
  auto batch = std::make_shared<Batch>();
  batch->data.reserve(kBatchData);
  bool stopped = false;
  auto ship = [&] {
    if (batch->ops.empty()) return;
    if (!emit(std::move(batch))) stopped = true;
    batch = std::make_shared<Batch>();
    batch->data.reserve(kBatchData);
  };

  for (std::size_t layer = 0; layer < archives_.size(); ++layer) {
    const std::string& archive_path = archives_[layer];
    std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
    if (!a) throw Error("archive_read_new failed");
    archive_read_support_filter_all(a.get());
    archive_read_support_format_all(a.get());
    if (archive_read_open_filename(a.get(), archive_path.c_str(), 1 << 20) != ARCHIVE_OK)
      throw archive_error(a.get(), fmt::format("opening archive {}", archive_path));
    archive_entry* ae = nullptr;
    for (std::size_t header = 0;; ++header) {
      if (cancel && cancel->load()) throw Error("cancelled");
      int r = archive_read_next_header(a.get(), &ae);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) throw archive_error(a.get(), fmt::format("reading archive {}", archive_path));
      const char* raw_name = archive_entry_pathname(ae);
      std::string raw = raw_name ? raw_name : "";
      std::string path = normalize_entry_path(raw);
      if (keep_ && !keep_(layer, header)) continue;

      auto entry = std::make_unique<Entry>();
      entry->path = path;
      entry->type = type_of(ae);
      entry->mode = archive_entry_perm(ae) & 07777;
      entry->uid = static_cast<std::uint32_t>(archive_entry_uid(ae));
      entry->gid = static_cast<std::uint32_t>(archive_entry_gid(ae));
      entry->mtime = {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)};
      entry->atime = archive_entry_atime_is_set(ae)
                         ? timespec{archive_entry_atime(ae), archive_entry_atime_nsec(ae)}
                         : entry->mtime;
      entry->rdev = archive_entry_rdev(ae);
      entry->size = archive_entry_size(ae);
      entry->sparse = archive_entry_sparse_count(ae) > 0;
      if (archive_entry_filetype(ae) == AE_IFSOCK)
        throw Error(fmt::format("entry '{}': sockets cannot be extracted", shown_entry(raw)));
      const char* xname = nullptr;
      const void* xvalue = nullptr;
      std::size_t xsize = 0;
      archive_entry_xattr_reset(ae);
      while (archive_entry_xattr_next(ae, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
        if (names_ != LayerNames::plain && std::string_view(xname).substr(0, kOverlayXattrPrefix.size()) ==
                                               kOverlayXattrPrefix)
          continue;
        entry->xattrs.emplace_back(xname, std::string(static_cast<const char*>(xvalue), xsize));
      }

      // An OCI layer's whiteout names, as overlayfs keeps them.
      bool marker = false;
      if (names_ == LayerNames::overlay) {
        const std::size_t cut = path.rfind('/');
        const std::string name = cut == std::string::npos ? path : path.substr(cut + 1);
        const std::string parent = cut == std::string::npos ? "" : path.substr(0, cut);
        if (name.compare(0, kWhiteoutPrefix.size(), kWhiteoutPrefix) == 0) {
          marker = true;
          if (name == kOpaqueMarker) {
            opaque_dirs_.insert(parent);
            if (parent.empty()) {
              add_opaque_xattr(entries_.front()->xattrs);
              continue;
            }
            make_opaque_listing(*entry, parent, raw);
            path = parent;
          } else if (name.compare(0, 2 * kWhiteoutPrefix.size(), ".wh..wh.") == 0) {
            continue;  // aufs' own bookkeeping (.wh..wh.plnk, ...): nothing of the image
          } else {
            const std::string target = whiteout_target(name, raw);
            path = parent.empty() ? target : parent + "/" + target;
            entry->path = path;
            entry->type = EntryType::whiteout;
            entry->mode = 0;
            entry->uid = entry->gid = 0;
            entry->size = 0;
            entry->sparse = false;
            entry->xattrs.clear();
          }
        } else if (entry->type == EntryType::directory && opaque_dirs_.count(path)) {
          add_opaque_xattr(entry->xattrs);  // the directory listed after its marker
        }
      }
      uids_.insert(entry->uid);
      gids_.insert(entry->gid);

      if (marker) {
        // Neither link is followed: the marker is a name, not a file.
      } else if (const char* hardlink = archive_entry_hardlink(ae)) {
        std::string target = normalize_entry_path(hardlink);
        auto t = by_path_.find(target);
        if (t == by_path_.end())
          throw Error(fmt::format("entry '{}': hardlink target '{}' is not in the archive before it", shown_entry(raw),
                                  shown_entry(hardlink)));
        if (t->second->type == EntryType::directory)
          throw Error(fmt::format("entry '{}': hardlink to directory '{}' refused", shown_entry(raw),
                                  shown_entry(hardlink)));
        entry->type = EntryType::hardlink;
        entry->link_target = t->second->type == EntryType::hardlink ? t->second->link_target : t->second;
      } else if (entry->type == EntryType::symlink) {
        const char* target = archive_entry_symlink(ae);
        entry->symlink_target = target ? target : "";
        if (entry->symlink_target.size() > kMaxEntryPath)
          throw Error(fmt::format("entry '{}': symlink target of {} bytes, longer than {} (PATH_MAX); refused",
                                  shown_entry(raw), entry->symlink_target.size(), kMaxEntryPath));
      }

      if (path.empty()) {
        // The root itself ("./"): its metadata applies to the rootfs directory.
        if (entry->type != EntryType::directory)
          throw Error(fmt::format("entry '{}': the root must be a directory", shown_entry(raw)));
        Entry* root = entries_.front().get();
        root->mode = entry->mode;
        root->uid = entry->uid;
        root->gid = entry->gid;
        root->mtime = entry->mtime;
        root->atime = entry->atime;
        root->xattrs = std::move(entry->xattrs);
        if (opaque_dirs_.count("")) add_opaque_xattr(root->xattrs);
        root->implicit = false;
        continue;
      }

      std::size_t slash = path.rfind('/');
      entry->name = slash == std::string::npos ? path : path.substr(slash + 1);
      entry->parent = directory_for(slash == std::string::npos ? "" : path.substr(0, slash), raw);

      for (const Entry* dir : implicit_dirs_) batch->ops.push_back(EntryOp{.entry = dir});
      implicit_dirs_.clear();

      auto existing = by_path_.find(path);
      if (existing != by_path_.end()) {
        Entry* old = existing->second;
        if (old->type == EntryType::directory) {
          if (entry->type != EntryType::directory)
            throw Error(fmt::format("entry '{}': replacing directory '{}' refused", shown_entry(raw), path));
          // A directory listed again: the later metadata wins, nothing to create.
          old->superseded = true;
          entry->updates = old->updates ? old->updates : old;
        } else {
          if (entry->type == EntryType::directory)
            throw Error(fmt::format("entry '{}': replacing non-directory '{}' with a directory refused",
                                    shown_entry(raw), path));
          old->superseded = true;
          entry->replaces = true;
        }
      }

      const Entry* added = add_entry(std::move(entry));
      EntryOp op;
      op.entry = added;
      if (added->type != EntryType::regular) {
        batch->ops.push_back(op);
        if (batch->ops.size() >= kBatchOps) ship();
        if (stopped) return;
        continue;
      }
      // A regular file: its data follows in slices; empty files are one op.
      bool opened = false;
      const void* buf = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      for (;;) {
        int d = archive_read_data_block(a.get(), &buf, &size, &offset);
        if (d == ARCHIVE_EOF) break;
        if (d < ARCHIVE_WARN) throw archive_error(a.get(), fmt::format("reading data of '{}'", shown_entry(raw)));
        const char* p = static_cast<const char*>(buf);
        while (size > 0) {
          std::size_t room = kBatchData - batch->data.size();
          if (room == 0 || batch->ops.size() >= kBatchOps) {
            ship();
            if (stopped) return;
            continue;
          }
          std::size_t n = std::min(room, size);
          EntryOp* last = batch->ops.empty() ? nullptr : &batch->ops.back();
          if (last && last->entry == added && last->data_begin + last->data_size == batch->data.size() &&
              last->file_offset + last->data_size == static_cast<std::uint64_t>(offset)) {
            last->data_size += n;
          } else {
            EntryOp slice = op;
            slice.first = !opened;
            slice.last = false;
            slice.data_begin = batch->data.size();
            slice.data_size = n;
            slice.file_offset = static_cast<std::uint64_t>(offset);
            batch->ops.push_back(slice);
            opened = true;
          }
          batch->data.insert(batch->data.end(), p, p + n);
          data_bytes_ += n;
          p += n;
          size -= n;
          offset += static_cast<la_int64_t>(n);
        }
      }
      if (opened && !batch->ops.empty() && batch->ops.back().entry == added) {
        batch->ops.back().last = true;
      } else {
        // Empty file, or the data ended exactly at a batch boundary.
        EntryOp tail = op;
        tail.first = !opened;
        tail.last = true;
        batch->ops.push_back(tail);
      }
      if (batch->ops.size() >= kBatchOps) ship();
      if (stopped) return;
    }
  }
  ship();
}

}  // namespace haco::rootfs
