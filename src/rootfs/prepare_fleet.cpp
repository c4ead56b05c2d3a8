// prepare_fleet / teardown: the rootfs of every instance, scheduled on a
// Boost.Asio thread pool. extract: one extract_archive per image (one
// decompression, all trees written together). overlay: one cache fill per
// image, then one idmapped overlay mount per instance, `parallel` at a time.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/layout.hpp"
#include "haco/names.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/idmapped_overlay.hpp"
#include "rootfs/image_cache.hpp"
#include "rootfs/mounts.hpp"
#include "rootfs/oci_layers.hpp"

namespace haco::rootfs {
namespace {

using Clock = std::chrono::steady_clock;

// What instances sharing one image have in common.
std::string source_key(const InstanceRootfs& inst) { return inst.image.empty() ? inst.archive : "oci:" + inst.image; }

bool directory_in_use(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return false;
    throw Error::from_errno("lstat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) throw Error(fmt::format("rootfs {} exists and is not a directory", path));
  return is_mount_point(path) || directory_has_entries(path);
}

// Errors that mean "this kernel or filesystem cannot do it", not "it went wrong".
bool overlay_unsupported(const Error& e) {
  switch (e.sys_errno()) {
    case EINVAL: case EPERM: case ENOSYS: case EOPNOTSUPP: case ENODEV: return true;
    default: return false;
  }
}

std::optional<std::uint32_t> mapped(const std::vector<IdMapping>& map, std::uint32_t id) {
  for (const IdMapping& m : map)
    if (id >= m.inside && id - m.inside < m.count) return m.outside + (id - m.inside);
  return std::nullopt;
}

void write_text_file(const std::string& path, const std::string& text) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  check_sys(fd.get(), "open", path);
  check_sys(write(fd.get(), text.data(), text.size()), "write", path);
}

// What an overlay instance's lower layers are: one cached image tree, or
// the cached trees of an OCI image's layers (top first, as overlay lists
// them), with the owners found in them. `record` is what the instance's
// data directory keeps to find them again: one line per tree, the image's
// sha256 (hex) or a layer's diff_id ("sha256:<hex>").
// `in_use` holds the cache entries' shared locks until the overlays are
// mounted and recorded.
struct LowerStack {
  std::vector<std::string> trees;
  std::string record;
  std::vector<std::uint32_t> uids, gids;
  std::vector<std::shared_ptr<const UniqueFd>> in_use;
};

LowerStack image_lower(const CachedImage& image) {
  return LowerStack{{image.tree}, image.digest + "\n", image.uids, image.gids, {image.in_use}};
}

LowerStack layers_lower(const CachedLayers& layers) {
  LowerStack stack{layers.trees, "", layers.uids, layers.gids, layers.in_use};
  for (const std::string& d : layers.diff_ids) stack.record += d + "\n";
  return stack;
}

// The cached trees the kept upper layer of `instance` belongs over, or none
// when there is no complete kept layer (or one of its trees is no longer in
// the cache).
std::vector<std::string> kept_lower_trees(const layout::DataRoot& root, const std::string& instance) {
  std::ifstream in(root.instance_image_digest(instance));
  struct stat st {};
  if (lstat(root.instance_upper(instance).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {};
  std::vector<std::string> trees;
  std::string line;
  while (in >> line) {
    if (line.find('/') != std::string::npos || line.find("..") != std::string::npos) return {};
    std::string tree = line.rfind("sha256:", 0) == 0 ? root.layer_tree(line.substr(7)) : root.image_tree(line);
    if (lstat(tree.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {};
    trees.push_back(std::move(tree));
  }
  return trees;
}

// One instance's overlay, undone (unmounted, upper/work and the mount point
// removed) unless committed.
class OverlayInstance {
 public:
  OverlayInstance(const InstanceRootfs& inst, const LowerStack& image, const std::string& data_root) {
    // A constructor that throws gets no destructor: what it made so far is
    // undone here.
    try {
      mount(inst, image, data_root);
    } catch (...) {
      undo();
      throw;
    }
  }
  OverlayInstance(const OverlayInstance&) = delete;
  OverlayInstance& operator=(const OverlayInstance&) = delete;
  ~OverlayInstance() {
    if (!committed_) undo();
  }
  void commit() { committed_ = true; }
  bool reused() const { return reused_; }
  const std::string& upper() const { return upper_; }
  const std::string& work() const { return work_; }

 private:
  void mount(const InstanceRootfs& inst, const LowerStack& image, const std::string& data_root) {
    const layout::DataRoot root(data_root);
    const std::string dir = root.instance_dir(inst.instance);
    upper_ = root.instance_upper(inst.instance);
    work_ = root.instance_work(inst.instance);
    for (std::uint32_t uid : image.uids)
      if (!inst.uid_map.empty() && !mapped(inst.uid_map, uid))
        throw Error(fmt::format("the image has files owned by uid {}, outside the instance's uid mapping", uid));
    for (std::uint32_t gid : image.gids)
      if (!inst.gid_map.empty() && !mapped(inst.gid_map, gid))
        throw Error(fmt::format("the image has files owned by gid {}, outside the instance's gid mapping", gid));

    if (!mounts_at_or_under(dir).empty()) throw Error(fmt::format("{} has mounts under it", dir));
    if (std::string m = overlay_using_upper(upper_); !m.empty())
      throw Error(fmt::format("instance {} already has an overlay mounted at {}", inst.instance, m));
    const uid_t root_uid = inst.uid_map.empty() ? 0 : *mapped(inst.uid_map, 0);
    const gid_t root_gid = inst.gid_map.empty() ? 0 : *mapped(inst.gid_map, 0);

    // An upper layer kept by a `down` without --purge (or a reboot) is the
    // instance's rootfs as it was left: it is mounted again over the image it
    // was made over. Anything else in the directory was left by an
    // interrupted run and starts over.
    std::vector<std::string> lower_trees = kept_lower_trees(root, inst.instance);
    if (!lower_trees.empty()) {
      reused_ = true;
      remove_tree(work_);
      check_sys(mkdir(work_.c_str(), 0700), "mkdir", work_);
      check_sys(chown(work_.c_str(), root_uid, root_gid), "chown", work_);
    } else {
      lower_trees = image.trees;
      remove_tree(dir);
      root.make_directories();
      check_sys(mkdir(dir.c_str(), layout::kPrivateMode), "mkdir", dir);
      dir_ = dir;
      // The merged root takes the upper directory's mode: the topmost layer's.
      struct stat image_root {};
      check_sys(stat(image.trees.front().c_str(), &image_root), "stat", image.trees.front());
      for (const std::string& d : {upper_, work_}) {
        check_sys(mkdir(d.c_str(), 0700), "mkdir", d);
        check_sys(chown(d.c_str(), root_uid, root_gid), "chown", d);
      }
      // The merged root takes the upper directory's mode and owner.
      check_sys(chmod(upper_.c_str(), image_root.st_mode & 07777), "chmod", upper_);
      write_text_file(root.instance_image_digest(inst.instance), image.record);
    }

    rootfs_ = inst.rootfs;
    if (mkdir(rootfs_.c_str(), 0755) == 0) {
      created_rootfs_ = true;
    } else if (errno == ENOENT) {
      layout::make_directories(std::filesystem::path(rootfs_).parent_path(), layout::kRootfsBaseMode);
      check_sys(mkdir(rootfs_.c_str(), 0755), "mkdir", rootfs_);
      created_rootfs_ = true;
    } else if (errno != EEXIST) {
      throw Error::from_errno("mkdir", rootfs_, errno);
    }

    UniqueFd userns;
    if (!inst.uid_map.empty()) userns = make_userns(inst.uid_map, inst.gid_map);
    std::vector<UniqueFd> lowers;
    for (const std::string& tree : lower_trees) lowers.push_back(idmapped_tree(tree, userns ? userns.get() : -1));
    mount_overlay(lowers, dir + "/lower", upper_, work_, rootfs_, "haco-" + inst.instance);
    mounted_ = true;
  }

  // Unmounts, removes the mount point this made and the instance directory
  // this made (a kept upper layer stays).
  void undo() noexcept {
    if (mounted_) umount2(rootfs_.c_str(), MNT_DETACH);
    if (created_rootfs_) rmdir(rootfs_.c_str());
    try {
      if (!dir_.empty()) remove_tree(dir_);
    } catch (const Error&) {
      // Refused (a mount appeared inside): left for the user to see.
    }
  }

  std::string dir_, upper_, work_, rootfs_;
  bool created_rootfs_ = false;
  bool mounted_ = false;
  bool committed_ = false;
  bool reused_ = false;
};

}  // namespace

std::vector<PreparedRootfs> prepare_fleet(const std::vector<InstanceRootfs>& instances,
                                          const PrepareOptions& options) {
  const unsigned parallel = options.parallel ? options.parallel : std::max(1u, std::thread::hardware_concurrency());
  std::mutex progress_mutex;
  auto say = [&](const std::string& instance, std::string_view event) {
    std::lock_guard lock(progress_mutex);
    if (options.progress)
      options.progress(instance, event);
    else if (instance.empty())
      std::cerr << "haco-fleet: " << event << "\n";
  };
  auto warn = [&](std::string_view line) {
    if (!options.warning) return say("", line);
    std::lock_guard lock(progress_mutex);
    options.warning(line);
  };
  auto cancelled = [&] { return options.cancel && options.cancel->load(); };
  // Each OCI image read (and checked) once.
  std::map<std::string, oci::Image> oci_images;
  auto oci_image = [&](const std::string& reference) -> const oci::Image& {
    auto it = oci_images.find(reference);
    if (it == oci_images.end()) it = oci_images.emplace(reference, oci::read_image(reference)).first;
    return it->second;
  };

  std::vector<PreparedRootfs> out(instances.size());
  std::vector<std::size_t> extract_todo, overlay_todo;
  for (std::size_t i = 0; i < instances.size(); ++i) {
    const InstanceRootfs& inst = instances[i];
    check_name("instance name", inst.instance);
    out[i].instance = inst.instance;
    out[i].rootfs = inst.rootfs;
    out[i].strategy = options.strategy;
    if (rootfs_marked_incomplete(options.data_root, inst.instance) && directory_in_use(inst.rootfs)) {
      // Left by a run that died while writing it: made again.
      if (is_mount_point(inst.rootfs)) umount2(inst.rootfs.c_str(), MNT_DETACH);
      remove_tree(inst.rootfs);
      say("", fmt::format("{}: rootfs left incomplete by an interrupted run: made again", inst.instance));
    }
    if (directory_in_use(inst.rootfs)) {
      out[i].reused = true;
      const layout::DataRoot root(options.data_root);
      // Recorded as this instance's overlay only when the mount there is
      // proven to be it: teardown unmounts nothing else.
      if (overlay_mounted_at(inst.rootfs, root.instance_upper(inst.instance))) {
        out[i].strategy = Strategy::overlay;
        out[i].upper_dir = root.instance_upper(inst.instance);
        out[i].work_dir = root.instance_work(inst.instance);
      } else {
        out[i].strategy = Strategy::extract;
      }
      say(inst.instance, "rootfs exists: reused as is");
      continue;
    }
    if (options.strategy == Strategy::overlay && inst.ownership == OwnershipPolicy::shift)
      overlay_todo.push_back(i);
    else {
      out[i].strategy = Strategy::extract;
      extract_todo.push_back(i);
    }
  }
  if (options.strategy == Strategy::overlay &&
      std::any_of(instances.begin(), instances.end(), [](const auto& i) { return i.ownership != OwnershipPolicy::shift; }))
    say("", "overlay: an idmapped layer can only shift ids; instances asking for squash or flat ownership are extracted");

  // What this call created, undone if anything fails.
  std::vector<std::unique_ptr<OverlayInstance>> overlays(instances.size());
  std::vector<std::size_t> extracted, marked;
  auto undo = [&] {
    overlays.clear();
    for (std::size_t i : extracted) {
      try {
        remove_tree(instances[i].rootfs);
      } catch (const Error&) {
        // Refused (something mounted inside): left in place, still marked.
        continue;
      }
    }
    for (std::size_t i : marked) {
      try {
        if (!directory_in_use(instances[i].rootfs)) mark_rootfs_complete(options.data_root, instances[i].instance);
      } catch (const Error&) {
        // Left marked: the next run makes that tree again.
      }
    }
  };

  try {
    if (!overlay_todo.empty()) {
      // Keyed by the archive, or by "oci:" and the image's reference.
      std::map<std::string, LowerStack> images;
      for (std::size_t i : overlay_todo) {
        const std::string key = source_key(instances[i]);
        if (images.count(key)) continue;
        auto start = Clock::now();
        if (!instances[i].image.empty()) {
          const oci::Image& image = oci_image(instances[i].image);
          CachedLayers layers = ensure_cached_layers(image, options.data_root, options.cancel);
          say("", fmt::format("image {} ({} layer{}): {} in {:.3f} s", image.id.substr(7, 12), image.layers.size(),
                              image.layers.size() == 1 ? "" : "s",
                              layers.extracted_now ? fmt::format("{} extracted into the layer cache", layers.extracted_now)
                                                   : std::string("found in the layer cache"),
                              std::chrono::duration<double>(Clock::now() - start).count()));
          for (const std::string& w : layers.warnings) warn(w);
          images.emplace(key, layers_lower(layers));
          continue;
        }
        CachedImage image = ensure_cached_image(instances[i].archive, options.data_root, options.cancel);
        say("", fmt::format("image {} {} in {:.3f} s", image.digest.substr(0, 12),
                            image.extracted_now ? "extracted into the cache" : "found in the cache",
                            std::chrono::duration<double>(Clock::now() - start).count()));
        for (const std::string& w : image.warnings) warn(w);
        images.emplace(key, image_lower(image));
      }
      // The first mount tells whether this kernel and filesystem can do it.
      std::size_t first = overlay_todo.front();
      auto start = Clock::now();
      try {
        overlays[first] = std::make_unique<OverlayInstance>(instances[first], images.at(source_key(instances[first])),
                                                            options.data_root);
        out[first].elapsed = Clock::now() - start;
        say(instances[first].instance, "overlay mounted");
      } catch (const Error& e) {
        if (!overlay_unsupported(e)) throw;
        warn(fmt::format("overlay strategy unavailable here ({}); extracting every rootfs instead", e.what()));
        for (std::size_t i : overlay_todo) {
          out[i].strategy = Strategy::extract;
          extract_todo.push_back(i);
        }
        overlay_todo.clear();
      }
      std::mutex error_mutex;
      std::exception_ptr error;
      boost::asio::thread_pool pool(parallel);
      for (std::size_t k = 1; k < overlay_todo.size(); ++k) {
        std::size_t i = overlay_todo[k];
        boost::asio::post(pool, [&, i] {
          {
            std::lock_guard lock(error_mutex);
            if (error) return;
          }
          try {
            if (cancelled()) throw Error("cancelled");
            auto t0 = Clock::now();
            auto o = std::make_unique<OverlayInstance>(instances[i], images.at(source_key(instances[i])),
                                                       options.data_root);
            out[i].elapsed = Clock::now() - t0;
            overlays[i] = std::move(o);
            say(instances[i].instance, "overlay mounted");
          } catch (Error& e) {
            e.with_context(fmt::format("preparing the rootfs of {}", instances[i].instance));
            std::lock_guard lock(error_mutex);
            if (!error) error = std::current_exception();
          }
        });
      }
      pool.join();
      if (error) std::rethrow_exception(error);
      for (std::size_t i : overlay_todo) {
        out[i].upper_dir = overlays[i]->upper();
        out[i].reused = overlays[i]->reused();
        out[i].work_dir = overlays[i]->work();
      }
    }

    std::map<std::string, std::vector<std::size_t>> by_archive;
    for (std::size_t i : extract_todo) by_archive[source_key(instances[i])].push_back(i);
    for (const auto& [archive, members] : by_archive) {
      if (cancelled()) throw Error("cancelled");
      std::vector<ExtractTarget> targets;
      std::vector<std::string> roots;
      for (std::size_t i : members) {
        targets.push_back({instances[i].rootfs, IdShift(instances[i].uid_map, instances[i].gid_map,
                                                        instances[i].ownership)});
        roots.push_back(instances[i].rootfs);
        mark_rootfs_incomplete(options.data_root, instances[i].instance);
        marked.push_back(i);
      }
      auto start = Clock::now();
      const InstanceRootfs& first_member = instances[members.front()];
      ExtractStats stats = first_member.image.empty()
                               ? extract_archive(archive, targets, {options.cancel, parallel, false})
                               : extract_image(oci_image(first_member.image), options.data_root, targets,
                                               {options.cancel, parallel, false});
      for (std::size_t i : members) extracted.push_back(i);
      fault_point("rootfs-extracted");
      // On disk before the markers go: a crash after this finds complete trees.
      sync_filesystems(roots);
      for (std::size_t i : members) mark_rootfs_complete(options.data_root, instances[i].instance);
      auto elapsed = Clock::now() - start;
      for (std::size_t i : members) {
        out[i].elapsed = elapsed;
        say(instances[i].instance, "rootfs extracted");
      }
      for (const std::string& w : stats.warnings) warn(w);
    }
  } catch (Error& e) {
    undo();
    e.with_context("preparing the fleet's rootfs");
    throw;
  }
  for (auto& o : overlays)
    if (o) o->commit();
  return out;
}

namespace {

// The instance directory holding an overlay's upper and work directories.
std::string overlay_instance_dir(const PreparedRootfs& prepared) {
  return prepared.upper_dir.substr(0, prepared.upper_dir.rfind('/'));
}

// Unmounts the instance's overlay (and without purge removes the empty
// mount point: what is kept is the upper layer, in the data root, and a
// bootstrap block that asks `Dir.exists?(root)` must see the rootfs as not
// there, docs/bootstrap.md).
template <typename Unmount>
void unmount_rootfs(const PreparedRootfs& prepared, bool purge, Unmount unmount) {
  if (prepared.strategy == Strategy::overlay && unmount(prepared.rootfs, prepared.upper_dir) && !purge)
    ::rmdir(prepared.rootfs.c_str());
}

// `work` for each of `prepared` whose `done` is set, `parallel` at a time;
// every one is attempted, `done` is cleared for each that fails, and the
// first error is thrown at the end.
template <typename Work>
void for_each_rootfs(const std::vector<PreparedRootfs>& prepared, std::vector<char>& done, unsigned parallel,
                     Work work) {
  std::mutex error_mutex;
  std::exception_ptr error;
  boost::asio::thread_pool pool(parallel);
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    if (!done[i]) continue;
    boost::asio::post(pool, [&, i] {
      const PreparedRootfs& p = prepared[i];
      try {
        with_context(fmt::format("tearing down the rootfs of {}", p.instance), [&] { work(p); });
      } catch (...) {
        std::lock_guard lock(error_mutex);
        done[i] = false;
        if (!error) error = std::current_exception();
      }
    });
  }
  pool.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

void teardown(const PreparedRootfs& prepared, bool purge) {
  with_context(fmt::format("tearing down the rootfs of {}", prepared.instance), [&] {
    unmount_rootfs(prepared, purge,
                   [](const std::string& rootfs, const std::string& upper) { return unmount_overlay(rootfs, upper); });
    if (!purge) return;
    remove_tree(prepared.rootfs);
    if (!prepared.upper_dir.empty()) remove_tree(overlay_instance_dir(prepared));
  });
}

void teardown_fleet(const std::vector<PreparedRootfs>& prepared, bool purge, unsigned parallel) {
  // Removal waits on the device far more than on the CPU: more trees at once.
  if (!parallel) parallel = 4 * std::max(1u, std::thread::hardware_concurrency());
  // What is mounted where is read once for all the overlays, and once more
  // for all the trees after they are unmounted, rather than for each
  // instance (teardown): each reading costs as much as the host has mounts.
  // An instance whose overlay could not be unmounted keeps its trees.
  std::vector<char> unmounted(prepared.size(), true);
  std::exception_ptr error;
  try {
    const MountTable before = MountTable::read();
    for_each_rootfs(prepared, unmounted, parallel, [&](const PreparedRootfs& p) {
      unmount_rootfs(p, purge, [&](const std::string& rootfs, const std::string& upper) {
        return unmount_overlay(rootfs, upper, before);
      });
    });
  } catch (...) {
    error = std::current_exception();
  }
  if (!purge) {
    if (error) std::rethrow_exception(error);
    return;
  }
  try {
    const MountTable after = MountTable::read();
    for_each_rootfs(prepared, unmounted, parallel, [&](const PreparedRootfs& p) {
      remove_tree(p.rootfs, after);
      if (!p.upper_dir.empty()) remove_tree(overlay_instance_dir(p), after);
    });
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace haco::rootfs
