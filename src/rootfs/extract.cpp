// extract_archive: one reader thread decompresses the archive into batches;
// W writer threads, each with its own io_uring and a share of the trees,
// write every batch into their trees. Scheduled on a Boost.Asio thread pool.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <thread>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/archive_reader.hpp"
#include "rootfs/batch_queue.hpp"
#include "rootfs/extract_source.hpp"
#include "rootfs/mounts.hpp"
#include "rootfs/tree_writer.hpp"

namespace haco::rootfs {
namespace {

constexpr std::size_t kQueuedBatches = 8;

mode_t process_umask() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "Umask:") {
      std::string value;
      in >> value;
      return static_cast<mode_t>(std::stoul(value, nullptr, 8));
    }
    in.ignore(1 << 16, '\n');
  }
  return 022;
}

// Enough descriptors for every tree's directory-fd cache.
void raise_nofile(std::size_t trees) {
  rlimit lim{};
  check_sys(getrlimit(RLIMIT_NOFILE, &lim), "getrlimit(RLIMIT_NOFILE)");
  rlim_t want = static_cast<rlim_t>(trees * (TreeWriter::kDirFdsPerTree + 2) + 1024);
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = want;
  if (lim.rlim_max < want) lim.rlim_max = want;
  if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
    throw Error::from_errno("setrlimit(RLIMIT_NOFILE)", std::to_string(want), errno);
}

// A rootfs directory being filled: created here (and removed on failure) or
// found empty (emptied again on failure).
class TreeRoot {
 public:
  explicit TreeRoot(const std::string& path) : path_(path) {
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) throw Error(fmt::format("rootfs {} exists and is not a directory", path));
      if (directory_has_entries(path)) throw Error(fmt::format("rootfs {} exists and is not empty", path));
    } else if (errno == ENOENT) {
      make_parents();
      if (mkdir(path.c_str(), 0700) < 0) throw Error::from_errno("mkdir", path, errno);
      created_ = true;
    } else {
      throw Error::from_errno("lstat", path, errno);
    }
    fd_.reset(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd_) throw Error::from_errno("open", path, errno);
    // A setgid parent would hand its group down: start from a plain mode.
    check_sys(fchmod(fd_.get(), 0700), "fchmod", path);
  }
  TreeRoot(const TreeRoot&) = delete;
  TreeRoot& operator=(const TreeRoot&) = delete;
  ~TreeRoot() {
    if (kept_) return;
    fd_.reset();
    try {
      if (created_) {
        remove_tree(path_);
        for (auto it = parents_.rbegin(); it != parents_.rend(); ++it)
          if (rmdir(it->c_str()) < 0) break;
      } else {
        remove_tree_contents(path_);
      }
    } catch (const Error&) {
      // Removal refused (e.g. something got mounted inside): leave it to the user.
    }
  }
  int fd() const { return fd_.get(); }
  void keep() { kept_ = true; }

 private:
  void make_parents() {
    std::size_t slash = path_.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    parents_ = layout::make_directories(path_.substr(0, slash), layout::kRootfsBaseMode);
  }

  std::string path_;
  UniqueFd fd_;
  bool created_ = false;
  bool kept_ = false;
  std::vector<std::string> parents_;
};

}  // namespace

ExtractStats extract_archive(const std::string& archive, const std::vector<ExtractTarget>& targets,
                             const ExtractOptions& options) {
  return extract_source(ArchiveSource{{archive}, LayerNames::plain, {}}, archive, targets, options);
}

ExtractStats extract_source(const ArchiveSource& source, const std::string& archive,
                            const std::vector<ExtractTarget>& targets, const ExtractOptions& options) {
  if (targets.empty()) return {};
  raise_nofile(targets.size());
  const mode_t umask = process_umask();

  std::vector<std::unique_ptr<TreeRoot>> roots;
  for (const ExtractTarget& t : targets) roots.push_back(std::make_unique<TreeRoot>(t.rootfs));

  unsigned writers = options.writers ? options.writers : std::max(1u, std::thread::hardware_concurrency());
  writers = static_cast<unsigned>(std::min<std::size_t>(writers, targets.size()));
  BatchQueue queue(writers, kQueuedBatches);
  ArchiveReader reader(source.archives, source.names, source.keep);

  std::mutex error_mutex;
  std::exception_ptr reader_error, writer_error;
  std::set<std::string> warnings;
  auto fail = [&](std::exception_ptr& slot) {
    std::lock_guard lock(error_mutex);
    if (!slot) slot = std::current_exception();
    queue.abort();
  };

  boost::asio::thread_pool pool(writers + 1);
  boost::asio::post(pool, [&] {
    try {
      reader.read([&](std::shared_ptr<const Batch> b) { return queue.push(std::move(b)); }, options.cancel);
      queue.close();
    } catch (...) {
      fail(reader_error);
    }
  });
  for (unsigned w = 0; w < writers; ++w) {
    boost::asio::post(pool, [&, w] {
      try {
        std::vector<WriterTarget> mine;
        for (std::size_t i = w; i < targets.size(); i += writers)
          mine.push_back(WriterTarget{targets[i].rootfs, &targets[i].shift, roots[i]->fd()});
        TreeWriter writer(std::move(mine),
                          options.chown_pass ? OwnershipMethod::chown_pass : OwnershipMethod::personality,
                          options.plain_files ? FileWrites::plain : FileWrites::ring, umask);
        while (auto batch = queue.pop(w)) {
          if (options.cancel && options.cancel->load()) throw Error("cancelled");
          writer.write_batch(*batch);
        }
        if (queue.aborted()) return;
        writer.finish(reader.entries());
        std::lock_guard lock(error_mutex);
        warnings.insert(writer.warnings().begin(), writer.warnings().end());
      } catch (...) {
        fail(writer_error);
      }
    });
  }
  pool.join();

  // The reader's error names the offending entry; a writer's is second.
  auto with_archive = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (Error& err) {
      err.with_context(fmt::format("extracting {}", archive));
      throw;
    }
  };
  if (reader_error) with_archive(reader_error);
  if (writer_error) with_archive(writer_error);
  if (options.cancel && options.cancel->load()) throw Error(fmt::format("extracting {}: cancelled", archive));

  for (auto& r : roots) r->keep();
  ExtractStats stats;
  stats.entries = reader.entries().size();
  stats.bytes = reader.data_bytes();
  stats.warnings.assign(warnings.begin(), warnings.end());
  stats.uids.assign(reader.uids().begin(), reader.uids().end());
  stats.gids.assign(reader.gids().begin(), reader.gids().end());
  return stats;
}

}  // namespace haco::rootfs
