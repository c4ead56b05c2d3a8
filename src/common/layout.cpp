#include "haco/layout.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/names.hpp"

namespace haco::layout {

std::vector<std::string> make_directories(const std::string& path, mode_t mode) {
  std::vector<std::string> missing;
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  for (;;) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) throw Error::from_errno("mkdir", p, ENOTDIR);
      break;
    }
    // ENOTDIR: a parent is not a directory; the walk up names it.
    if (errno != ENOENT && errno != ENOTDIR) throw Error::from_errno("stat", p, errno);
    missing.push_back(p);
    std::size_t slash = p.rfind('/');
    if (slash == std::string::npos || slash == 0) break;
    p.resize(slash);
  }
  std::vector<std::string> created;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), mode) != 0) {
      if (errno == EEXIST) continue;  // made meanwhile by another process
      throw Error::from_errno("mkdir", *it, errno);
    }
    // mkdir's mode is masked by the umask; the layout's modes are exact.
    check_sys(::chmod(it->c_str(), mode), "chmod", *it);
    created.push_back(*it);
  }
  return created;
}

void make_private_directory(const std::string& path) {
  if (!make_directories(path, kPrivateMode).empty()) return;
  struct stat st {};
  check_sys(::lstat(path.c_str(), &st), "lstat", path);
  if (!S_ISDIR(st.st_mode))
    throw Error(fmt::format("{} is not a directory{}: refusing to keep private files there", path,
                            S_ISLNK(st.st_mode) ? " (a symlink)" : ""));
  if (st.st_uid != ::geteuid())
    throw Error(fmt::format("{} is owned by uid {}, not by uid {} (root): refusing to keep private files there; "
                            "remove it or give it to root",
                            path, st.st_uid, ::geteuid()));
  if ((st.st_mode & 07777) == kPrivateMode) return;
  check_sys(::chmod(path.c_str(), kPrivateMode), "chmod", path);
  std::fprintf(stderr, "haco-fleet: %s was mode %04o, now %04o (private to root)\n", path.c_str(),
               static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(kPrivateMode));
}

void DataRoot::make_directories() const {
  layout::make_directories(path_, kRootfsBaseMode);
  for (const std::string& dir : {images(), layers(), staging(), image_digests(), instances(), logs()}) make_private_directory(dir);
}

std::string DataRoot::instance_dir(std::string_view instance) const {
  check_name("instance name", instance);
  return instances() + "/" + std::string(instance);
}

std::string DataRoot::image_digest_memo(dev_t device, ino_t inode) const {
  return fmt::format("{}/{}-{}", image_digests(), device, inode);
}

std::string DataRoot::fleet_kept_record(std::string_view fleet) const {
  check_name("fleet name", fleet);
  return kept() + "/" + std::string(fleet) + ".json";
}

std::string DataRoot::fleet_logs(std::string_view fleet) const {
  check_name("fleet name", fleet);
  return logs() + "/" + std::string(fleet);
}

}  // namespace haco::layout
