// Writes the entries of the batch stream into a set of rootfs trees through
// one io_uring. Directories, files, file data, symlinks and hardlinks are
// io_uring requests; ownership comes from registered personalities (the
// request runs with fsuid/fsgid of the shifted owner, capabilities kept), so
// entries are created already owned and no chown walk follows. Device nodes
// are never created (one warning names them). Fifos, modes, mtimes and
// xattrs have no io_uring opcode: plain syscalls,
// in a final pass after the last write (xattrs such as security.capability
// would be cleared by a later write; directory mtimes by later children).
//
// Confinement: every request names one path component relative to a
// directory fd opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
// from the tree's root fd, and the reader has already refused entries whose
// parent is not a directory of the archive.
//
// A TreeWriter belongs to the thread that made it: it sets that thread's
// securebits and fsuid while registering personalities.
#pragma once

#include <liburing.h>
#include <linux/openat2.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/entry.hpp"

namespace haco::rootfs {

// How ownership reaches the entries: created owned through personalities, or
// created as root and chowned in the final pass (kept to measure the two).
enum class OwnershipMethod { personality, chown_pass };

struct WriterTarget {
  std::string rootfs;
  const IdShift* shift = nullptr;
  int root_fd = -1;  // O_DIRECTORY, owned by the caller
};

class TreeWriter {
 public:
  static constexpr unsigned kDirFdsPerTree = 32;

  TreeWriter(std::vector<WriterTarget> targets, OwnershipMethod method, mode_t umask);
  ~TreeWriter();
  TreeWriter(const TreeWriter&) = delete;
  TreeWriter& operator=(const TreeWriter&) = delete;

  // Creates the batch's entries in every tree; returns when all are written.
  void write_batch(const Batch& batch);
  // Applies modes, owners where needed, xattrs and times, once all entries exist.
  void finish(const std::vector<std::unique_ptr<Entry>>& entries);

  const std::set<std::string>& warnings() const { return warnings_; }

 private:
  struct Tree {
    WriterTarget target;
    std::unordered_map<const Entry*, std::pair<int, std::uint64_t>> dir_fds;  // fd, last use
    std::unordered_map<const Entry*, unsigned> open_files;  // file data spanning batches: slot
  };
  struct Request {
    const Entry* entry = nullptr;
    std::size_t tree = 0;
    const char* call = nullptr;
    open_how how{};
    std::uint64_t expect = 0;  // bytes, for writes
    int slot = -1;             // freed when this request completes (close)
    bool busy = false;
  };

  void create(std::size_t tree, const EntryOp& op, const Batch& batch);
  void apply_metadata(std::size_t tree, const Entry& e);
  int personality(Owner owner);
  void wait_created(const Entry* e);
  int dir_fd(std::size_t tree, const Entry* dir);
  io_uring_sqe* request(std::size_t tree, const Entry* e, const char* call, Request** out = nullptr);
  // A write of `op`'s data to the direct descriptor `slot`.
  io_uring_sqe* queue_write(std::size_t tree, const Entry& e, const EntryOp& op, const Batch& batch, unsigned slot);
  // The close of the direct descriptor `slot`, linked after `previous`.
  void queue_close_after(io_uring_sqe* previous, std::size_t tree, const Entry& e, unsigned slot);
  void reserve(unsigned sqes);
  unsigned take_slot();
  void submit();
  void reap(bool wait);
  void flush();
  std::string host_path(std::size_t tree, const Entry& e) const;

  std::vector<Tree> trees_;
  OwnershipMethod method_;
  mode_t umask_;
  io_uring ring_{};
  bool ring_ready_ = false;
  unsigned long saved_securebits_ = 0;
  std::map<std::pair<std::uint32_t, std::uint32_t>, int> personalities_;
  std::vector<Request> requests_;
  std::vector<std::uint32_t> free_requests_;
  std::vector<unsigned> free_slots_;
  unsigned in_flight_ = 0;
  std::unordered_set<const Entry*> unfinished_;  // created by requests not yet completed
  std::vector<int> deferred_close_;              // evicted dir fds, closed after the next flush
  std::uint64_t clock_ = 0;
  std::unique_ptr<Error> first_error_;
  std::set<std::string> warnings_;
  std::set<std::string> skipped_devices_;  // image paths of device nodes (and links to them), not created
};

}  // namespace haco::rootfs
