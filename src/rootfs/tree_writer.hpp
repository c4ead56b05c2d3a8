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
// No writer left: a file closed through io_uring is released when the kernel
// gets round to it (Linux before 6.4 puts closed direct descriptors from a
// workqueue a second later), and exec of it fails with ETXTBSY until then.
// So each tree is written through a private mount of its own (WriteMount),
// and finish() returns only once that mount holds no file open for writing.
// Where such a mount cannot be had, regular files are opened, written and
// closed with plain calls by this thread (close(2) in a user thread releases
// the file before it returns), and warnings() says so.
//
// Confinement: every request names one path component relative to a
// directory fd opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
// from the tree's root fd, and the reader has already refused entries whose
// parent is not a directory of the archive.
//
// A TreeWriter belongs to the thread that made it: it sets that thread's
// securebits, and its fsuid/fsgid while registering personalities and while
// creating a file with plain calls.
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
#include "rootfs/write_mount.hpp"

namespace haco::rootfs {

// How ownership reaches the entries: created owned through personalities, or
// created as root and chowned in the final pass (kept to measure the two).
enum class OwnershipMethod { personality, chown_pass };

// How regular files are written: io_uring direct descriptors in a tree whose
// private mount checks they are all released, or plain calls (where no such
// mount can be had; also asked for by tests and benchmarks).
enum class FileWrites { ring, plain };

struct WriterTarget {
  std::string rootfs;
  const IdShift* shift = nullptr;
  int root_fd = -1;  // O_DIRECTORY, owned by the caller
};

class TreeWriter {
 public:
  static constexpr unsigned kDirFdsPerTree = 32;

  TreeWriter(std::vector<WriterTarget> targets, OwnershipMethod method, FileWrites files, mode_t umask);
  ~TreeWriter();
  TreeWriter(const TreeWriter&) = delete;
  TreeWriter& operator=(const TreeWriter&) = delete;

  // Creates the batch's entries in every tree; returns when all are written.
  void write_batch(const Batch& batch);
  // Applies modes, owners where needed, xattrs and times, once all entries
  // exist; returns when no file written into the trees is open for writing.
  void finish(const std::vector<std::unique_ptr<Entry>>& entries);

  const std::set<std::string>& warnings() const { return warnings_; }

 private:
  struct Tree {
    WriterTarget target;
    std::unique_ptr<WriteMount> mount;  // FileWrites::ring: every write goes through it
    int root_fd = -1;                   // the mount's root, or the target's root_fd
    std::unordered_map<const Entry*, std::pair<int, std::uint64_t>> dir_fds;  // fd, last use
    std::unordered_map<const Entry*, unsigned> open_slots;  // file data spanning batches (ring)
    std::unordered_map<const Entry*, UniqueFd> open_fds;    // file data spanning batches (plain)
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
  // A regular file's piece (op) through the ring, or with plain calls.
  void queue_file(std::size_t tree, const EntryOp& op, const Batch& batch, int pers);
  void write_file(std::size_t tree, const EntryOp& op, const Batch& batch, Owner owner);
  void pwrite_all(std::size_t tree, const Entry& e, const EntryOp& op, const Batch& batch, int fd);
  // Releases the ring's file table and waits until each tree's mount holds no writer.
  void wait_files_released();
  void apply_metadata(std::size_t tree, const Entry& e);
  int personality(Owner owner);
  // Sets this thread's fsuid/fsgid (plain calls create files as their owner).
  void act_as(Owner owner);
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
  FileWrites files_;
  mode_t umask_;
  io_uring ring_{};
  bool ring_ready_ = false;
  unsigned long saved_securebits_ = 0;
  Owner thread_ids_;  // this thread's fsuid/fsgid
  Owner fs_ids_;      // its fsuid/fsgid now (another owner only while creating a file)
  std::set<std::pair<std::uint32_t, std::uint32_t>> checked_ids_;  // fsuid/fsgid switches read back
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
