// Builds small archives for the tests with libarchive's write API, including
// hostile ones no ordinary tool would produce.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace haco::rootfs::testing {

struct Meta {
  unsigned mode = 0644;
  unsigned uid = 0, gid = 0;
  long mtime = 1600000000;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

class ArchiveBuilder {
 public:
  // filter: "none", "gzip", "xz", "zstd", "bzip2"
  ArchiveBuilder(const std::string& path, const std::string& filter = "none") : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (filter != "none" && archive_write_add_filter_by_name(a_, filter.c_str()) != ARCHIVE_OK)
      throw std::runtime_error("filter " + filter + ": " + archive_error_string(a_));
    if (archive_write_open_filename(a_, path.c_str()) != ARCHIVE_OK)
      throw std::runtime_error(std::string("open: ") + archive_error_string(a_));
  }
  ~ArchiveBuilder() { close(); }
  ArchiveBuilder(const ArchiveBuilder&) = delete;
  ArchiveBuilder& operator=(const ArchiveBuilder&) = delete;

  ArchiveBuilder& dir(const std::string& path, Meta m = {.mode = 0755}) { return add(path, AE_IFDIR, m, {}); }
  ArchiveBuilder& file(const std::string& path, const std::string& data, Meta m = {}) {
    return add(path, AE_IFREG, m, data);
  }
  ArchiveBuilder& symlink(const std::string& path, const std::string& target, Meta m = {.mode = 0777}) {
    return add(path, AE_IFLNK, m, {}, target);
  }
  ArchiveBuilder& hardlink(const std::string& path, const std::string& target, Meta m = {}) {
    return add(path, AE_IFREG, m, {}, {}, target);
  }
  ArchiveBuilder& device(const std::string& path, unsigned type, unsigned major, unsigned minor, Meta m = {}) {
    return add(path, type, m, {}, {}, {}, makedev(major, minor));
  }

  void close() {
    if (!a_) return;
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
  }

 private:
  ArchiveBuilder& add(const std::string& path, unsigned type, const Meta& m, const std::string& data,
                      const std::string& symlink = {}, const std::string& hardlink = {}, dev_t rdev = 0) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, m.mode);
    archive_entry_set_uid(e, m.uid);
    archive_entry_set_gid(e, m.gid);
    archive_entry_set_mtime(e, m.mtime, 0);
    archive_entry_set_size(e, type == AE_IFREG && hardlink.empty() ? static_cast<la_int64_t>(data.size()) : 0);
    if (!symlink.empty()) archive_entry_set_symlink(e, symlink.c_str());
    if (!hardlink.empty()) archive_entry_set_hardlink(e, hardlink.c_str());
    if (rdev) archive_entry_set_rdev(e, rdev);
    for (const auto& [k, v] : m.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    if (archive_write_header(a_, e) != ARCHIVE_OK)
      throw std::runtime_error(std::string("header: ") + archive_error_string(a_));
    if (!data.empty() && archive_write_data(a_, data.data(), data.size()) < 0)
      throw std::runtime_error(std::string("data: ") + archive_error_string(a_));
    archive_entry_free(e);
    return *this;
  }

  archive* a_;
};

}  // namespace haco::rootfs::testing
