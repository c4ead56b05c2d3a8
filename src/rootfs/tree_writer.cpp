#include "rootfs/tree_writer.hpp"

#include <fcntl.h>
#include <linux/securebits.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "rootfs/file_caps.hpp"

namespace haco::rootfs {
namespace {

constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 1024;
constexpr unsigned kMaxRequests = 1024;
constexpr unsigned kFileSlots = 1024;
constexpr std::size_t kMaxDeferredCloses = 256;
// How long finish() waits for the kernel to release files closed through the
// ring (Linux 6.1: a second or more; tens of milliseconds once the table is
// unregistered).
constexpr std::chrono::seconds kReleaseTimeout{30};
constexpr std::uint64_t kResolveConfined = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// Device nodes from an image are never created (docs/security.md, "Device
// nodes"): every image-backed mount is nodev, so they could not be used in the
// container, and on the host they would be nodes owned by the container's
// range. A hardlink to one goes with it.
bool is_device_node(const Entry& e) {
  const Entry& target = e.type == EntryType::hardlink && e.link_target ? *e.link_target : e;
  return target.type == EntryType::char_device || target.type == EntryType::block_device;
}

constexpr std::size_t kDeviceNodesNamed = 3;

// A write that stopped short: the filesystem is full (the usual cause, said
// as ENOSPC with the free space) or something else stopped it.
Error short_write_error(const std::string& where, std::uint64_t written, std::uint64_t expected, int root_fd) {
  struct statvfs fs {};
  if (::fstatvfs(root_fd, &fs) == 0 &&
      static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize < expected - written + 64 * 1024) {
    Error e = Error::from_errno("write", where, ENOSPC);
    e.with_context(fmt::format("{} of {} bytes written, {} KiB free on that filesystem", written, expected,
                               static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize / 1024));
    return e;
  }
  return Error(fmt::format("short write to {}: {} of {} bytes", where, written, expected));
}

}  // namespace

TreeWriter::TreeWriter(std::vector<WriterTarget> targets, OwnershipMethod method, FileWrites files, mode_t umask)
    : method_(method), files_(files), umask_(umask) {
  for (WriterTarget& t : targets) {
    Tree tree;
    tree.root_fd = t.root_fd;
    tree.target = std::move(t);
    trees_.push_back(std::move(tree));
  }
  if (files_ == FileWrites::ring) {
    try {
      for (Tree& t : trees_) {
        t.mount = std::make_unique<WriteMount>(t.target.root_fd, t.target.rootfs);
        t.root_fd = t.mount->root();
      }
    } catch (const Error& e) {
      files_ = FileWrites::plain;
      for (Tree& t : trees_) {
        t.mount.reset();
        t.root_fd = t.target.root_fd;
      }
      // Without the path: said once for the whole fleet.
      warnings_.insert(fmt::format(
          "regular files written with plain calls, not io_uring: no private mount to check that io_uring released "
          "them ({}: {})",
          e.call(), std::strerror(e.sys_errno())));
    }
  }
  thread_ids_ = Owner{static_cast<std::uint32_t>(setfsuid(static_cast<uid_t>(-1))),
                      static_cast<std::uint32_t>(setfsgid(static_cast<gid_t>(-1)))};
  fs_ids_ = thread_ids_;
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = kCqEntries;
  check_sys(io_uring_queue_init_params(kSqEntries, &ring_, &params), "io_uring_queue_init");
  ring_ready_ = true;
  if (files_ == FileWrites::ring)
    check_sys(io_uring_register_files_sparse(&ring_, kFileSlots), "io_uring_register_files_sparse");
  requests_.resize(kMaxRequests);
  for (std::uint32_t i = kMaxRequests; i-- > 0;) free_requests_.push_back(i);
  for (unsigned i = kFileSlots; i-- > 0;) free_slots_.push_back(i);
  if (method_ == OwnershipMethod::personality) {
    // Keep the capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID) when
    // fsuid leaves 0, so the personalities can create in any directory.
    long bits = check_sys(prctl(PR_GET_SECUREBITS), "prctl(PR_GET_SECUREBITS)");
    saved_securebits_ = static_cast<unsigned long>(bits);
    check_sys(prctl(PR_SET_SECUREBITS, saved_securebits_ | SECBIT_NO_SETUID_FIXUP), "prctl(PR_SET_SECUREBITS)");
  }
}

TreeWriter::~TreeWriter() {
  if (ring_ready_) {
    // Outstanding requests refer to memory owned by the caller: wait for them.
    io_uring_submit(&ring_);
    while (in_flight_ > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight_;
    }
    io_uring_queue_exit(&ring_);
  }
  for (Tree& t : trees_)
    for (auto& [entry, fd] : t.dir_fds) ::close(fd.first);
  for (int fd : deferred_close_) ::close(fd);
  if (method_ == OwnershipMethod::personality) prctl(PR_SET_SECUREBITS, saved_securebits_);
}

std::string TreeWriter::host_path(std::size_t tree, const Entry& e) const {
  return e.path.empty() ? trees_[tree].target.rootfs : trees_[tree].target.rootfs + "/" + e.path;
}

int TreeWriter::personality(Owner owner) {
  if (owner.uid == 0 && owner.gid == 0) return 0;
  auto key = std::make_pair(owner.uid, owner.gid);
  if (auto it = personalities_.find(key); it != personalities_.end()) return it->second;
  // fsuid/fsgid are per thread; the personality snapshots these credentials.
  auto old_gid = static_cast<gid_t>(setfsgid(owner.gid));
  auto old_uid = static_cast<uid_t>(setfsuid(owner.uid));
  bool switched = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) == owner.uid &&
                  static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) == owner.gid;
  int id = switched ? io_uring_register_personality(&ring_) : -EPERM;
  setfsuid(old_uid);
  setfsgid(old_gid);
  if (!switched) throw Error(fmt::format("setfsuid/setfsgid to {}:{} was refused", owner.uid, owner.gid));
  check_sys(id, "io_uring_register_personality");
  personalities_.emplace(key, id);
  return id;
}

void TreeWriter::act_as(Owner owner) {
  if (owner == fs_ids_) return;
  setfsgid(owner.gid);
  setfsuid(owner.uid);
  fs_ids_ = owner;
  // setfsuid/setfsgid do not report failure: read the ids back, once per owner.
  if (!checked_ids_.insert({owner.uid, owner.gid}).second) return;
  if (static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) != owner.uid ||
      static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) != owner.gid) {
    setfsuid(thread_ids_.uid);
    setfsgid(thread_ids_.gid);
    fs_ids_ = thread_ids_;
    throw Error(fmt::format("setfsuid/setfsgid to {}:{} was refused", owner.uid, owner.gid));
  }
}

void TreeWriter::wait_created(const Entry* e) {
  if (e && e->updates) e = e->updates;
  if (e && unfinished_.count(e)) flush();
}

int TreeWriter::dir_fd(std::size_t tree, const Entry* dir) {
  Tree& t = trees_[tree];
  if (!dir->parent) return t.root_fd;
  auto it = t.dir_fds.find(dir);
  if (it != t.dir_fds.end()) {
    it->second.second = ++clock_;
    return it->second.first;
  }
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = kResolveConfined;
  int fd = static_cast<int>(syscall(SYS_openat2, t.root_fd, dir->path.c_str(), &how, sizeof how));
  check_sys(fd, "openat2", host_path(tree, *dir));
  if (t.dir_fds.size() >= kDirFdsPerTree) {
    auto oldest = std::min_element(t.dir_fds.begin(), t.dir_fds.end(),
                                   [](const auto& a, const auto& b) { return a.second.second < b.second.second; });
    // Queued requests may still name this fd: then it is closed after the
    // next flush; with nothing in flight (final pass) it is closed now.
    if (in_flight_ > 0)
      deferred_close_.push_back(oldest->second.first);
    else
      ::close(oldest->second.first);
    t.dir_fds.erase(oldest);
  }
  t.dir_fds.emplace(dir, std::make_pair(fd, ++clock_));
  return fd;
}

void TreeWriter::submit() {
  int r = io_uring_submit(&ring_);
  if (r < 0) throw Error::from_errno("io_uring_submit", -r);
}

void TreeWriter::reserve(unsigned sqes) {
  if (io_uring_sq_space_left(&ring_) < sqes) submit();
  while (free_requests_.size() < sqes) reap(true);
}

unsigned TreeWriter::take_slot() {
  if (free_slots_.empty()) flush();
  if (free_slots_.empty()) throw Error("no free io_uring file slot: too many files open across batches");
  unsigned s = free_slots_.back();
  free_slots_.pop_back();
  return s;
}

io_uring_sqe* TreeWriter::request(std::size_t tree, const Entry* e, const char* call, Request** out) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  if (!sqe) throw Error("io_uring submission queue full");
  std::uint32_t id = free_requests_.back();
  free_requests_.pop_back();
  Request& r = requests_[id];
  r = Request{};
  r.entry = e;
  r.tree = tree;
  r.call = call;
  r.busy = true;
  ++in_flight_;
  io_uring_sqe_set_data64(sqe, id);
  if (out) *out = &r;
  return sqe;
}

void TreeWriter::reap(bool wait) {
  if (wait && in_flight_ > 0) {
    int r = io_uring_submit_and_wait(&ring_, 1);
    if (r < 0 && r != -EINTR) throw Error::from_errno("io_uring_submit_and_wait", -r);
  }
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0, seen = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    auto id = static_cast<std::uint32_t>(io_uring_cqe_get_data64(cqe));
    Request& r = requests_[id];
    int res = cqe->res;
    if (r.slot >= 0) free_slots_.push_back(static_cast<unsigned>(r.slot));
    bool failed = res < 0 || (std::strcmp(r.call, "write") == 0 && static_cast<std::uint64_t>(res) != r.expect);
    if (failed && !first_error_ && res != -ECANCELED) {
      std::string where = host_path(r.tree, *r.entry);
      first_error_ = std::make_unique<Error>(
          res < 0 ? Error::from_errno(r.call, where, -res)
                  : short_write_error(where, static_cast<std::uint64_t>(res), r.expect, trees_[r.tree].root_fd));
    }
    r.busy = false;
    free_requests_.push_back(id);
    --in_flight_;
  }
  io_uring_cq_advance(&ring_, seen);
}

void TreeWriter::flush() {
  while (in_flight_ > 0) reap(true);
  for (int fd : deferred_close_) ::close(fd);
  deferred_close_.clear();
  unfinished_.clear();
  if (first_error_) throw Error(*first_error_);
}

void TreeWriter::write_batch(const Batch& batch) {
  for (const EntryOp& op : batch.ops)
    for (std::size_t tree = 0; tree < trees_.size(); ++tree) create(tree, op, batch);
  flush();
}

io_uring_sqe* TreeWriter::queue_write(std::size_t tree, const Entry& e, const EntryOp& op, const Batch& batch,
                                      unsigned slot) {
  Request* w = nullptr;
  io_uring_sqe* sqe = request(tree, &e, "write", &w);
  io_uring_prep_write(sqe, static_cast<int>(slot), batch.data.data() + op.data_begin,
                      static_cast<unsigned>(op.data_size), op.file_offset);
  sqe->flags |= IOSQE_FIXED_FILE;
  w->expect = op.data_size;
  return sqe;
}

void TreeWriter::queue_close_after(io_uring_sqe* previous, std::size_t tree, const Entry& e, unsigned slot) {
  previous->flags |= IOSQE_IO_LINK;
  Request* c = nullptr;
  io_uring_prep_close_direct(request(tree, &e, "close", &c), slot);
  c->slot = static_cast<int>(slot);
}

void TreeWriter::queue_file(std::size_t tree, const EntryOp& op, const Batch& batch, int pers) {
  const Entry& e = *op.entry;
  Tree& t = trees_[tree];
  if (!op.first) {
    unsigned slot = t.open_slots.at(&e);
    reserve(op.last ? 2 : 1);
    io_uring_sqe* sqe = queue_write(tree, e, op, batch, slot);
    if (op.last) {
      queue_close_after(sqe, tree, e, slot);
      t.open_slots.erase(&e);
    }
    return;
  }
  unsigned slot = take_slot();
  int parent_fd = dir_fd(tree, e.parent);  // after take_slot: a flush closes evicted fds
  unsigned n = 1 + (op.data_size > 0 ? 1 : 0) + (op.last ? 1 : 0);
  reserve(n);
  Request* o = nullptr;
  io_uring_sqe* sqe = request(tree, &e, "openat2", &o);
  o->how.flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;  // no O_CLOEXEC: direct descriptor
  o->how.mode = e.mode & 0777 & ~umask_;
  o->how.resolve = kResolveConfined;
  io_uring_prep_openat2_direct(sqe, parent_fd, e.name.c_str(), &o->how, slot);
  sqe->personality = static_cast<__u16>(pers);
  if (op.data_size > 0) {
    sqe->flags |= IOSQE_IO_LINK;
    sqe = queue_write(tree, e, op, batch, slot);
  }
  if (op.last)
    queue_close_after(sqe, tree, e, slot);
  else
    t.open_slots[&e] = slot;
}

void TreeWriter::write_file(std::size_t tree, const EntryOp& op, const Batch& batch, Owner owner) {
  const Entry& e = *op.entry;
  Tree& t = trees_[tree];
  UniqueFd fd;
  if (op.first) {
    open_how how{};
    how.flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    how.mode = e.mode & 0777 & ~umask_;
    how.resolve = kResolveConfined;
    // Created as its owner; the thread's own ids back at once, as requests
    // without a personality are submitted with them.
    if (method_ == OwnershipMethod::personality) act_as(owner);
    fd.reset(static_cast<int>(syscall(SYS_openat2, dir_fd(tree, e.parent), e.name.c_str(), &how, sizeof how)));
    const int err = errno;
    act_as(thread_ids_);
    if (!fd) throw Error::from_errno("openat2", host_path(tree, e), err);
  } else {
    auto it = t.open_fds.find(&e);
    fd = std::move(it->second);
    t.open_fds.erase(it);
  }
  pwrite_all(tree, e, op, batch, fd.get());
  if (!op.last) {
    t.open_fds.emplace(&e, std::move(fd));
    return;
  }
  // close(2) releases the file before it returns: no writer is left.
  if (::close(fd.release()) < 0 && errno != EINTR) throw Error::from_errno("close", host_path(tree, e), errno);
}

void TreeWriter::pwrite_all(std::size_t tree, const Entry& e, const EntryOp& op, const Batch& batch, int fd) {
  const char* data = batch.data.data() + op.data_begin;
  std::uint64_t done = 0;
  while (done < op.data_size) {
    ssize_t n = pwrite(fd, data + done, op.data_size - done, static_cast<off_t>(op.file_offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error::from_errno("pwrite", host_path(tree, e), errno);
    if (n == 0) throw short_write_error(host_path(tree, e), done, op.data_size, trees_[tree].root_fd);
    done += static_cast<std::uint64_t>(n);
  }
}

void TreeWriter::create(std::size_t tree, const EntryOp& op, const Batch& batch) {
  const Entry& e = *op.entry;
  Tree& t = trees_[tree];
  if (e.type == EntryType::directory && e.updates) return;  // already created
  Owner owner = t.target.shift->map(e.uid, e.gid, e.path);
  int pers = method_ == OwnershipMethod::personality ? personality(owner) : 0;

  if (e.type == EntryType::regular && !op.first) {
    // More data for a file opened by an earlier batch.
    if (files_ == FileWrites::plain)
      write_file(tree, op, batch, owner);
    else
      queue_file(tree, op, batch, pers);
    return;
  }

  // Evicted directory fds wait for a flush to be closed: bound them.
  if (deferred_close_.size() >= kMaxDeferredCloses) flush();
  wait_created(e.parent);
  if (e.type == EntryType::hardlink) {
    wait_created(e.link_target);
    wait_created(e.link_target->parent);
  }
  if (e.replaces) {
    // An entry listed again replaces the earlier one (tar semantics).
    flush();
    int pfd = dir_fd(tree, e.parent);
    if (unlinkat(pfd, e.name.c_str(), 0) < 0 && errno != ENOENT)
      throw Error::from_errno("unlinkat", host_path(tree, e), errno);
  }
  if (is_device_node(e)) {
    skipped_devices_.insert(e.path);
    return;
  }
  int pfd = dir_fd(tree, e.parent);
  const mode_t perm = e.mode & 0777 & ~umask_;

  switch (e.type) {
    case EntryType::directory: {
      reserve(1);
      io_uring_sqe* sqe = request(tree, &e, "mkdirat");
      io_uring_prep_mkdirat(sqe, pfd, e.name.c_str(), perm);
      sqe->personality = static_cast<__u16>(pers);
      unfinished_.insert(&e);
      break;
    }
    case EntryType::regular: {
      if (files_ == FileWrites::plain) {
        write_file(tree, op, batch, owner);
      } else {
        queue_file(tree, op, batch, pers);
        unfinished_.insert(&e);
      }
      break;
    }
    case EntryType::symlink: {
      reserve(1);
      io_uring_sqe* sqe = request(tree, &e, "symlinkat");
      io_uring_prep_symlinkat(sqe, e.symlink_target.c_str(), pfd, e.name.c_str());
      sqe->personality = static_cast<__u16>(pers);
      unfinished_.insert(&e);
      break;
    }
    case EntryType::hardlink: {
      int target_dir = dir_fd(tree, e.link_target->parent);
      reserve(1);
      io_uring_sqe* sqe = request(tree, &e, "linkat");
      io_uring_prep_linkat(sqe, target_dir, e.link_target->name.c_str(), pfd, e.name.c_str(), 0);
      unfinished_.insert(&e);
      break;
    }
    case EntryType::fifo: {
      if (mknodat(pfd, e.name.c_str(), S_IFIFO | perm, 0) < 0)
        throw Error::from_errno("mknodat", host_path(tree, e), errno);
      if (method_ == OwnershipMethod::personality &&
          fchownat(pfd, e.name.c_str(), owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) < 0)
        throw Error::from_errno("fchownat", host_path(tree, e), errno);
      break;
    }
    case EntryType::whiteout: {
      // Overlayfs' whiteout: a 0/0 character device, no device at all (and
      // every layer is mounted nodev).
      if (mknodat(pfd, e.name.c_str(), S_IFCHR, makedev(0, 0)) < 0)
        throw Error::from_errno("mknodat(whiteout)", host_path(tree, e), errno);
      if (fchownat(pfd, e.name.c_str(), owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) < 0)
        throw Error::from_errno("fchownat", host_path(tree, e), errno);
      break;
    }
    case EntryType::char_device:
    case EntryType::block_device:
      break;  // never created (is_device_node)
  }
}

void TreeWriter::finish(const std::vector<std::unique_ptr<Entry>>& entries) {
  flush();
  if (!skipped_devices_.empty()) {
    std::string named;
    std::size_t n = 0;
    for (const std::string& path : skipped_devices_) {
      if (n++ == kDeviceNodesNamed) {
        named += ", ...";
        break;
      }
      named += (named.empty() ? "" : ", ") + path;
    }
    warnings_.insert(fmt::format("{} device node(s) of the image not created, as for every image: {}",
                                 skipped_devices_.size(), named));
  }
  for (std::size_t tree = 0; tree < trees_.size(); ++tree) {
    for (const auto& e : entries)
      if (e->type != EntryType::directory && e->type != EntryType::hardlink && e->type != EntryType::whiteout &&
          !e->superseded && !is_device_node(*e))
        apply_metadata(tree, *e);
    // Directories last, children before parents: their times must survive.
    for (auto it = entries.rbegin(); it != entries.rend(); ++it)
      if ((*it)->type == EntryType::directory && !(*it)->superseded) apply_metadata(tree, **it);
  }
  wait_files_released();
}

void TreeWriter::wait_files_released() {
  if (files_ != FileWrites::ring) return;
  // Unregistering the table makes the kernel release now what it still holds
  // of files closed through it; its result does not matter, the seal checks.
  io_uring_unregister_files(&ring_);
  for (Tree& t : trees_) t.mount->seal(kReleaseTimeout);
}

void TreeWriter::apply_metadata(std::size_t tree, const Entry& e) {
  Tree& t = trees_[tree];
  const std::string where = host_path(tree, e);
  const bool root = e.parent == nullptr;
  const int pfd = root ? t.root_fd : dir_fd(tree, e.parent);
  const char* name = root ? "" : e.name.c_str();
  const int nofollow = root ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
  Owner owner = t.target.shift->map(e.uid, e.gid, e.path);

  // chown clears setuid bits and capabilities: it comes first.
  if (method_ == OwnershipMethod::chown_pass || root || e.updates)
    if (fchownat(pfd, name, owner.uid, owner.gid, nofollow) < 0) throw Error::from_errno("fchownat", where, errno);
  if (e.type != EntryType::symlink &&
      (root || e.updates || (e.mode & 07777) != (e.mode & 0777 & ~umask_) || method_ == OwnershipMethod::chown_pass)) {
    int r = root ? fchmod(t.root_fd, e.mode & 07777) : fchmodat(pfd, name, e.mode & 07777, 0);
    if (r < 0) throw Error::from_errno("fchmodat", where, errno);
  }
  if (e.sparse && e.type == EntryType::regular) {
    UniqueFd fd(openat(pfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd || ftruncate(fd.get(), e.size) < 0) throw Error::from_errno("ftruncate", where, errno);
  }
  for (const auto& [key, raw] : e.xattrs) {
    std::string value = raw;
    if (key == kCapabilityXattr && !t.target.shift->identity()) {
      auto rewritten = rewrite_file_caps(raw, t.target.shift->root_uid());
      if (!rewritten) {
        warnings_.insert(fmt::format("entry '{}': invalid security.capability dropped", e.path));
        continue;
      }
      value = *rewritten;
    }
    int r = root ? fsetxattr(pfd, key.c_str(), value.data(), value.size(), 0)
                 : lsetxattr(fmt::format("/proc/self/fd/{}/{}", pfd, e.name).c_str(), key.c_str(), value.data(),
                             value.size(), 0);
    if (r < 0) {
      if (errno == ENOTSUP || errno == EPERM) {
        warnings_.insert(fmt::format("xattr {} not supported here ({}): dropped", key, std::strerror(errno)));
        continue;
      }
      throw Error::from_errno("lsetxattr " + key, where, errno);
    }
  }
  const timespec times[2] = {e.atime, e.mtime};
  int r = root ? futimens(t.root_fd, times) : utimensat(pfd, name, times, AT_SYMLINK_NOFOLLOW);
  if (r < 0) throw Error::from_errno("utimensat", where, errno);
}

}  // namespace haco::rootfs
