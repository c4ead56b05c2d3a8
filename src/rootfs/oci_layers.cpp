#include "rootfs/oci_layers.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/layout.hpp"
#include "haco/unique_fd.hpp"
#include "haco/write_all.hpp"
#include "rootfs/archive_reader.hpp"
#include "rootfs/extract_source.hpp"
#include "rootfs/image_cache.hpp"

namespace haco::rootfs {
namespace {

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw Error("sha256: cannot initialise");
  }
  void update(const void* data, std::size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string hex_of(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// The owners a complete cached layer uses; false when the entry is missing
// or incomplete (no valid .ids file).
bool read_layer_ids(const std::string& tree, const std::string& ids_file, std::vector<std::uint32_t>& uids,
                    std::vector<std::uint32_t>& gids) {
  if (!exists(tree) || !exists(ids_file)) return false;
  std::ifstream in(ids_file);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("uids") || !j.contains("gids")) return false;
  uids = j["uids"].get<std::vector<std::uint32_t>>();
  gids = j["gids"].get<std::vector<std::uint32_t>>();
  return true;
}

void remove_stale(const std::string& dir, const std::string& prefix) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) throw Error::from_errno("opendir", dir, errno);
  std::vector<std::string> stale;
  while (dirent* e = readdir(d.get()))
    if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) stale.push_back(dir + "/" + e->d_name);
  for (const std::string& s : stale) remove_tree(s);
}

// Copies the wanted members of a docker archive into `dir` (<i>.tar for
// layer i), hashing them on the way; returns each copy's sha256 (hex).
std::vector<std::string> copy_archive_members(const oci::Image& image, const std::vector<bool>& wanted,
                                              const std::string& dir, std::vector<std::string>& paths,
                                              const std::atomic<bool>* cancel) {
  std::multimap<std::string, std::size_t> members;
  for (std::size_t i = 0; i < image.layers.size(); ++i)
    if (wanted[i]) members.emplace(image.layers[i].blob, i);
  std::vector<std::string> digests(image.layers.size());
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  const std::string& file = image.reference.path;
  if (archive_read_open_filename(a.get(), file.c_str(), 1 << 20) != ARCHIVE_OK)
    throw InputError(fmt::format("opening docker archive {}: {}", file, archive_error_string(a.get())));
  archive_entry* e = nullptr;
  std::vector<char> buf(1 << 20);
  for (;;) {
    if (cancel && cancel->load()) throw Error("cancelled");
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      throw InputError(fmt::format("reading docker archive {}: {}", file, archive_error_string(a.get())));
    std::string name = archive_entry_pathname(e);
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    auto [first, last] = members.equal_range(name);
    if (first == last || archive_entry_filetype(e) != AE_IFREG) continue;
    const std::size_t i = first->second;
    const std::string path = fmt::format("{}/{}.tar", dir, i);
    UniqueFd out(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) throw Error::from_errno("open", path, errno);
    Sha256 sha;
    for (;;) {
      la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0)
        throw InputError(fmt::format("reading {} in docker archive {}: {}", name, file, archive_error_string(a.get())));
      if (n == 0) break;
      sha.update(buf.data(), static_cast<std::size_t>(n));
      if (!write_all(out.get(), buf.data(), static_cast<std::size_t>(n))) throw Error::from_errno("write", path, errno);
    }
    const std::string digest = sha.hex();
    for (auto it = first; it != last; ++it) {
      digests[it->second] = digest;
      paths[it->second] = path;
    }
    members.erase(first, last);
  }
  if (!members.empty())
    throw InputError(fmt::format("docker archive {}: layer {} is listed in manifest.json but not in the archive", file,
                                 members.begin()->first));
  return digests;
}

}  // namespace

std::string uncompressed_digest(const std::string& blob) {
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  if (archive_read_open_filename(a.get(), blob.c_str(), 1 << 20) != ARCHIVE_OK)
    throw Error(fmt::format("opening layer {}: {}", blob, archive_error_string(a.get())));
  archive_entry* e = nullptr;
  if (archive_read_next_header(a.get(), &e) != ARCHIVE_OK)
    throw Error(fmt::format("reading layer {}: {}", blob, archive_error_string(a.get())));
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  for (;;) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0) throw Error(fmt::format("decompressing layer {}: {}", blob, archive_error_string(a.get())));
    if (n == 0) break;
    sha.update(buf.data(), static_cast<std::size_t>(n));
  }
  return sha.hex();
}

LayerBlobs::LayerBlobs(const oci::Image& image, const std::vector<bool>& wanted, const std::string& data_root,
                       const std::atomic<bool>* cancel)
    : paths_(image.layers.size()) {
  const std::string& source = image.reference.path;
  if (!image.reference.docker_archive) {
    for (std::size_t i = 0; i < image.layers.size(); ++i) {
      if (!wanted[i]) continue;
      const oci::Layer& l = image.layers[i];
      const std::string actual = "sha256:" + remembered_digest(l.blob, data_root);
      if (actual != l.digest)
        throw InputError(fmt::format("layer blob {}: its sha256 is {}, but the manifest says {}", l.blob, actual,
                                     l.digest));
      paths_[i] = l.blob;
    }
    return;
  }
  const layout::DataRoot root(data_root);
  root.make_directories();
  static std::atomic<unsigned> serial{0};
  staging_ = fmt::format("{}/{}-{}", root.staging(), getpid(), serial++);
  remove_tree(staging_);
  check_sys(mkdir(staging_.c_str(), 0700), "mkdir", staging_);
  try {
    const std::vector<std::string> digests = copy_archive_members(image, wanted, staging_, paths_, cancel);
    for (std::size_t i = 0; i < image.layers.size(); ++i) {
      if (!wanted[i]) continue;
      const oci::Layer& l = image.layers[i];
      // docker save keeps layers uncompressed: the copy's own digest is the
      // diff_id. A compressed one is checked by its content.
      if ("sha256:" + digests[i] == l.diff_id) continue;
      const std::string content = "sha256:" + uncompressed_digest(paths_[i]);
      if (content != l.diff_id)
        throw InputError(fmt::format("layer {} of docker archive {}: its sha256 is sha256:{} (uncompressed {}), but "
                                     "the config's diff_id is {}",
                                     l.blob, source, digests[i], content, l.diff_id));
    }
  } catch (...) {
    try {
      remove_tree(staging_);
    } catch (const Error&) {
    }
    throw;
  }
}

LayerBlobs::~LayerBlobs() {
  if (staging_.empty()) return;
  try {
    remove_tree(staging_);
  } catch (const Error&) {
    // Left for the next run (remove_stale) to remove.
  }
}

std::vector<std::vector<char>> plan_flattened(const std::vector<std::string>& layers, const std::atomic<bool>* cancel) {
  struct Winner {
    std::size_t layer, header;
  };
  std::map<std::string, Winner> winners;
  std::vector<std::vector<char>> keep(layers.size());
  // Removes `path` (unless `children_only`) and everything under it that
  // lower layers made.
  auto remove_below = [&](const std::string& path, std::size_t layer, bool children_only) {
    if (!children_only)
      if (auto it = winners.find(path); it != winners.end() && it->second.layer < layer) winners.erase(it);
    const std::string prefix = path.empty() ? "" : path + "/";
    for (auto it = winners.lower_bound(prefix);
         it != winners.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
      if (it->first.empty() || it->second.layer >= layer) {
        ++it;
        continue;
      }
      it = winners.erase(it);
    }
  };
  for (std::size_t layer = 0; layer < layers.size(); ++layer) {
    std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_all(a.get());
    if (archive_read_open_filename(a.get(), layers[layer].c_str(), 1 << 20) != ARCHIVE_OK)
      throw Error(fmt::format("opening layer {}: {}", layers[layer], archive_error_string(a.get())));
    archive_entry* e = nullptr;
    std::size_t header = 0;
    for (;; ++header) {
      if (cancel && cancel->load()) throw Error("cancelled");
      int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN)
        throw Error(fmt::format("reading layer {}: {}", layers[layer], archive_error_string(a.get())));
      const char* raw_name = archive_entry_pathname(e);
      const std::string raw = raw_name ? raw_name : "";
      const std::string path = normalize_entry_path(raw);
      const std::size_t cut = path.rfind('/');
      const std::string name = cut == std::string::npos ? path : path.substr(cut + 1);
      const std::string parent = cut == std::string::npos ? "" : path.substr(0, cut);
      if (name.compare(0, kWhiteoutPrefix.size(), kWhiteoutPrefix) == 0) {
        if (name == kOpaqueMarker) {
          remove_below(parent, layer, true);
        } else if (name.compare(0, 2 * kWhiteoutPrefix.size(), ".wh..wh.") != 0) {
          const std::string target = whiteout_target(name, raw);
          remove_below(parent.empty() ? target : parent + "/" + target, layer, false);
        }
        continue;
      }
      const bool dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
      // A non-directory replaces a lower directory with all it held.
      if (!dir) remove_below(path, layer, true);
      winners[path] = Winner{layer, header};
    }
    keep[layer].assign(header, 0);
  }
  for (const auto& [path, w] : winners) keep[w.layer][w.header] = 1;
  return keep;
}

CachedLayers ensure_cached_layers(const oci::Image& image, const std::string& data_root,
                                  const std::atomic<bool>* cancel) {
  const layout::DataRoot root(data_root);
  root.make_directories();
  // The same layer twice in one image: its upper occurrence alone gives the
  // same tree (it re-applies everything the lower one did), and overlay takes
  // a directory once.
  std::vector<bool> topmost(image.layers.size(), false);
  std::set<std::string> seen;
  for (std::size_t i = image.layers.size(); i-- > 0;)
    topmost[i] = seen.insert(image.layers[i].diff_id).second;

  CachedLayers out;
  std::set<std::uint32_t> uids, gids;
  std::vector<bool> missing(image.layers.size(), false);
  bool any_missing = false;
  for (std::size_t i = 0; i < image.layers.size(); ++i) {
    if (!topmost[i]) continue;
    const std::string hex = hex_of(image.layers[i].diff_id);
    std::vector<std::uint32_t> u, g;
    missing[i] = !read_layer_ids(root.layer_tree(hex), root.layer_ids(hex), u, g);
    any_missing = any_missing || missing[i];
  }
  std::unique_ptr<LayerBlobs> blobs;
  if (any_missing) blobs = std::make_unique<LayerBlobs>(image, missing, data_root, cancel);

  for (std::size_t i = 0; i < image.layers.size(); ++i) {
    if (!topmost[i]) continue;
    const oci::Layer& layer = image.layers[i];
    const std::string hex = hex_of(layer.diff_id);
    const std::string tree = root.layer_tree(hex);
    const std::string ids_file = root.layer_ids(hex);
    std::vector<std::uint32_t> u, g;
    auto complete = [&] { return read_layer_ids(tree, ids_file, u, g); };
    out.in_use.push_back(lock_cache_entry(root.layer_lock(hex), complete, [&] {
      // Found complete at first, then pruned before it was locked: its blob
      // is read now.
      std::unique_ptr<LayerBlobs> late;
      if (!blobs || blobs->path(i).empty()) {
        std::vector<bool> only(image.layers.size(), false);
        only[i] = true;
        late = std::make_unique<LayerBlobs>(image, only, data_root, cancel);
      }
      const std::string& blob = late ? late->path(i) : blobs->path(i);
      // A layout's blob was checked against the manifest; what it holds is
      // checked here against the diff_id that names the cache entry.
      if (!image.reference.docker_archive) {
        const std::string content = "sha256:" + uncompressed_digest(blob);
        if (content != layer.diff_id)
          throw InputError(fmt::format("layer blob {}: uncompressed, its sha256 is {}, but the config's diff_id is {}",
                                       blob, content, layer.diff_id));
      }
      remove_tree(tree);
      remove_stale(root.layers(), ".tmp-" + hex + "-");
      const std::string tmp = fmt::format("{}/.tmp-{}-{}", root.layers(), hex, getpid());
      ExtractStats stats = with_context(fmt::format("filling the layer cache {}", tree), [&] {
        return extract_source(ArchiveSource{{blob}, LayerNames::overlay, {}}, blob, {ExtractTarget{tmp, IdShift()}},
                              {cancel, 1, false});
      });
      fault_point("layer-cached");
      sync_filesystems({tmp});
      if (rename(tmp.c_str(), tree.c_str()) < 0) {
        int err = errno;
        remove_tree(tmp);
        throw Error::from_errno("rename", tree, err);
      }
      write_file_atomically(ids_file,
                            nlohmann::json{{"uids", stats.uids},
                                           {"gids", stats.gids},
                                           {"diff_id", layer.diff_id},
                                           {"image", image.reference.path}}
                                    .dump() +
                                "\n",
                            0600);
      ++out.extracted_now;
      out.warnings.insert(out.warnings.end(), stats.warnings.begin(), stats.warnings.end());
    }));
    uids.insert(u.begin(), u.end());
    gids.insert(g.begin(), g.end());
    out.trees.insert(out.trees.begin(), tree);
    out.diff_ids.insert(out.diff_ids.begin(), layer.diff_id);
  }
  out.uids.assign(uids.begin(), uids.end());
  out.gids.assign(gids.begin(), gids.end());
  return out;
}

ExtractStats extract_image(const oci::Image& image, const std::string& data_root,
                           const std::vector<ExtractTarget>& targets, const ExtractOptions& options) {
  LayerBlobs blobs(image, std::vector<bool>(image.layers.size(), true), data_root, options.cancel);
  const std::vector<std::vector<char>> keep = plan_flattened(blobs.paths(), options.cancel);
  ArchiveSource source{blobs.paths(), LayerNames::flattened,
                       [&keep](std::size_t layer, std::size_t header) {
                         return header < keep[layer].size() && keep[layer][header];
                       }};
  return extract_source(source, image.reference.path, targets, options);
}

}  // namespace haco::rootfs
