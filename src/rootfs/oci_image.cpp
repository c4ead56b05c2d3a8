// Reading an OCI image layout or a docker archive down to its layers and
// config: index -> manifest -> config, each checked against its digest.
#include "haco/oci.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"

namespace haco::oci {
namespace {

using json = nlohmann::json;

constexpr std::string_view kManifestTypes[] = {"application/vnd.oci.image.manifest.v1+json",
                                               "application/vnd.docker.distribution.manifest.v2+json"};
constexpr std::string_view kIndexTypes[] = {"application/vnd.oci.image.index.v1+json",
                                            "application/vnd.docker.distribution.manifest.list.v2+json"};
constexpr std::string_view kLayerTypes[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
};
constexpr std::size_t kMaxDocument = 4u << 20;  // index, manifest, config: JSON of a few KiB

template <std::size_t N>
bool one_of(const std::string& s, const std::string_view (&list)[N]) {
  for (std::string_view t : list)
    if (s == t) return true;
  return false;
}

json parse_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw InputError(fmt::format("{}: not a JSON object", what));
  return j;
}

std::vector<std::string> strings(const json& j, const char* key, const std::string& what) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) throw InputError(fmt::format("{}: {} is not a list of strings", what, key));
  for (const json& s : *it) {
    if (!s.is_string()) throw InputError(fmt::format("{}: {} is not a list of strings", what, key));
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::string string_field(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) throw InputError(fmt::format("{}: no {} string", what, key));
  return it->get<std::string>();
}

bool path_exists(const std::string& path, bool* is_dir) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return false;
  *is_dir = S_ISDIR(st.st_mode);
  return S_ISDIR(st.st_mode) || S_ISREG(st.st_mode);
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(Error::from_errno("open", path, errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > kMaxDocument)
    throw InputError(fmt::format("{}: larger than {} MiB, not an image document", path, kMaxDocument >> 20));
  return text;
}

std::string hex_of(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

std::string host_architecture() {
  utsname u {};
  uname(&u);
  const std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m.rfind("arm", 0) == 0) return "arm";
  return m;
}

// A blob of a layout, read and checked against its digest.
std::string layout_document(const std::string& dir, const std::string& digest, const std::string& what) {
  check_digest(digest, what);
  const std::string path = dir + "/blobs/sha256/" + hex_of(digest);
  std::string text = read_small_file(path);
  const std::string actual = "sha256:" + rootfs::bytes_digest(text);
  if (actual != digest)
    throw InputError(fmt::format("{} {}: its sha256 is {}, but it is named {}", what, path, actual, digest));
  return text;
}

// "./a/b" -> "a/b"; "a/../c" -> "c" (a member name, or a symlink's target
// joined to its directory); "" when it leaves the archive.
std::string member_name(const std::string& raw) {
  std::vector<std::string> parts;
  std::istringstream in(raw);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return "";
      parts.pop_back();
    } else {
      parts.push_back(part);
    }
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

// The small members of a docker archive (its JSON documents), by name; and
// its symlinks (docker save links a layer shared by two images).
std::map<std::string, std::string> archive_documents(const std::string& path,
                                                     std::map<std::string, std::string>& symlinks) {
  struct Closer {
    void operator()(archive* a) const { archive_read_free(a); }
  };
  std::unique_ptr<archive, Closer> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    throw InputError(fmt::format("opening docker archive {}: {}", path, archive_error_string(a.get())));
  std::map<std::string, std::string> out;
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      throw InputError(fmt::format("reading docker archive {}: {}", path, archive_error_string(a.get())));
    if (archive_entry_filetype(e) == AE_IFLNK && archive_entry_symlink(e)) {
      const std::string name = member_name(archive_entry_pathname(e));
      const std::string dir = name.find('/') == std::string::npos ? "" : name.substr(0, name.rfind('/') + 1);
      const std::string target = archive_entry_symlink(e);
      symlinks[name] = target.front() == '/' ? "" : member_name(dir + target);
      continue;
    }
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_size(e) > static_cast<la_int64_t>(kMaxDocument))
      continue;
    std::string text(static_cast<std::size_t>(archive_entry_size(e)), '\0');
    if (!text.empty() && archive_read_data(a.get(), text.data(), text.size()) != static_cast<la_ssize_t>(text.size()))
      throw InputError(fmt::format("reading {} in docker archive {}: {}", archive_entry_pathname(e), path,
                                   archive_error_string(a.get())));
    const std::string name = member_name(archive_entry_pathname(e));
    // Only documents are kept; a small layer is read again when it is needed.
    if (!text.empty() && (text.front() == '{' || text.front() == '[')) out.emplace(name, std::move(text));
  }
  return out;
}

bool is_hex(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// The sha256 a docker archive's member name carries (<hex>.json,
// blobs/sha256/<hex>), or "".
std::string digest_in_member_name(const std::string& name) {
  std::string base = name.substr(name.rfind('/') + 1);
  if (base.size() == 69 && base.compare(64, 5, ".json") == 0) base.resize(64);
  return is_hex(base) ? "sha256:" + base : "";
}

// A repository tag as the user would write it: docker saves "busybox:v2" as
// docker.io/library/busybox:v2, podman as localhost/busybox:v2.
std::string short_tag(const std::string& tag) {
  for (std::string_view prefix : {"docker.io/library/", "docker.io/", "localhost/"})
    if (tag.compare(0, prefix.size(), prefix) == 0) return tag.substr(prefix.size());
  return tag;
}

}  // namespace

void check_digest(const std::string& digest, const std::string& what) {
  if (digest.rfind("sha256:", 0) != 0)
    throw InputError(fmt::format("{}: digest '{}' is not a sha256 digest (only sha256 is supported)", what, digest));
  if (!is_hex(std::string_view(digest).substr(7)))
    throw InputError(fmt::format("{}: digest '{}' is not sha256: followed by 64 lowercase hex digits", what, digest));
}

Reference parse_reference(const std::string& text) {
  Reference ref;
  std::string rest;
  bool is_dir = false;
  if (path_exists(text, &is_dir)) {
    ref.path = text;
  } else {
    // The longest existing prefix ending before a ':' or '@'.
    for (std::size_t cut = text.find_last_of(":@"); cut != std::string::npos && cut > 0;
         cut = text.find_last_of(":@", cut - 1)) {
      if (path_exists(text.substr(0, cut), &is_dir)) {
        ref.path = text.substr(0, cut);
        rest = text.substr(cut);
        break;
      }
    }
    if (ref.path.empty())
      throw InputError(fmt::format("image '{}': no OCI layout directory or docker archive of that name", text));
  }
  ref.docker_archive = !is_dir;
  if (rest.empty()) return ref;
  if (rest[0] == '@') {
    if (ref.docker_archive)
      throw InputError(fmt::format("image '{}': a docker archive is chosen by REPO:TAG, not by digest", text));
    ref.digest = rest.substr(1);
    check_digest(ref.digest, "image '" + text + "'");
    return ref;
  }
  ref.tag = rest.substr(1);
  if (ref.tag.empty()) throw InputError(fmt::format("image '{}': empty tag after ':'", text));
  const std::size_t slash = ref.tag.rfind('/');
  if (ref.docker_archive && ref.tag.find(':', slash == std::string::npos ? 0 : slash) == std::string::npos)
    ref.tag += ":latest";
  return ref;
}

std::string select_manifest(const std::string& index_json, const Reference& ref, const std::string& what) {
  const json index = parse_json(index_json, what);
  auto it = index.find("manifests");
  if (it == index.end() || !it->is_array() || it->empty()) throw InputError(fmt::format("{}: no manifests", what));
  const json& manifests = *it;
  auto ref_name = [](const json& d) -> std::string {
    auto a = d.find("annotations");
    if (a == d.end() || !a->is_object()) return "";
    auto n = a->find("org.opencontainers.image.ref.name");
    return n != a->end() && n->is_string() ? n->get<std::string>() : "";
  };
  const json* chosen = nullptr;
  std::vector<std::string> tags;
  for (const json& d : manifests) {
    const std::string digest = string_field(d, "digest", what);
    const std::string name = ref_name(d);
    if (!name.empty()) tags.push_back(name);
    if (!ref.digest.empty() ? digest == ref.digest : !ref.tag.empty() ? name == ref.tag : name == "latest")
      chosen = &d;
  }
  if (!chosen && ref.digest.empty() && ref.tag.empty() && manifests.size() == 1) chosen = &manifests[0];
  if (!chosen) {
    std::string listed;
    for (const auto& t : tags) listed += (listed.empty() ? "" : ", ") + t;
    const std::string wanted = !ref.digest.empty() ? ref.digest : !ref.tag.empty() ? "tag " + ref.tag : "tag latest";
    throw InputError(fmt::format("{}: no manifest with {} (tags: {})", what, wanted, listed.empty() ? "none" : listed));
  }
  const std::string digest = string_field(*chosen, "digest", what);
  check_digest(digest, what);
  return digest;
}

Manifest parse_manifest(const std::string& manifest_json, const std::string& what) {
  const json m = parse_json(manifest_json, what);
  Manifest out;
  auto config = m.find("config");
  if (config == m.end() || !config->is_object()) throw InputError(fmt::format("{}: no config", what));
  out.config_digest = string_field(*config, "digest", what);
  check_digest(out.config_digest, what + " config");
  auto layers = m.find("layers");
  if (layers == m.end() || !layers->is_array()) throw InputError(fmt::format("{}: no layers list", what));
  for (const json& l : *layers) {
    Layer layer;
    layer.digest = string_field(l, "digest", what);
    check_digest(layer.digest, what + " layer");
    layer.media_type = string_field(l, "mediaType", what);
    if (!one_of(layer.media_type, kLayerTypes))
      throw InputError(fmt::format("{}: layer {} has media type {}, not a tar layer this reads", what, layer.digest,
                                   layer.media_type));
    out.layers.push_back(std::move(layer));
  }
  return out;
}

ImageConfig parse_config(const std::string& config_json, const std::string& what, std::vector<std::string>* diff_ids) {
  const json c = parse_json(config_json, what);
  ImageConfig out;
  if (auto it = c.find("config"); it != c.end() && it->is_object()) {
    const json& cfg = *it;
    out.entrypoint = strings(cfg, "Entrypoint", what);
    out.cmd = strings(cfg, "Cmd", what);
    out.env = strings(cfg, "Env", what);
    for (const auto& e : out.env)
      if (e.empty() || e.front() == '=' || e.find('=') == std::string::npos)
        throw InputError(fmt::format("{}: Env entry '{}' is not KEY=VALUE", what, e));
    if (auto w = cfg.find("WorkingDir"); w != cfg.end() && w->is_string()) out.working_dir = w->get<std::string>();
    if (!out.working_dir.empty() && out.working_dir.front() != '/')
      throw InputError(fmt::format("{}: WorkingDir '{}' is not an absolute path", what, out.working_dir));
    if (auto u = cfg.find("User"); u != cfg.end() && u->is_string()) out.user = u->get<std::string>();
  }
  if (diff_ids) {
    auto rootfs = c.find("rootfs");
    if (rootfs == c.end() || !rootfs->is_object()) throw InputError(fmt::format("{}: no rootfs", what));
    *diff_ids = strings(*rootfs, "diff_ids", what);
    for (const auto& d : *diff_ids) check_digest(d, what + " diff_id");
  }
  return out;
}

ArchiveManifest parse_archive_manifest(const std::string& manifest_json, const Reference& ref,
                                       const std::string& what) {
  json m = json::parse(manifest_json, nullptr, false);
  if (m.is_discarded() || !m.is_array() || m.empty()) throw InputError(fmt::format("{}: not a list of images", what));
  const json* chosen = nullptr;
  std::string listed;
  for (const json& image : m) {
    if (!image.is_object()) throw InputError(fmt::format("{}: not a list of images", what));
    for (const std::string& tag : strings(image, "RepoTags", what)) {
      listed += (listed.empty() ? "" : ", ") + tag;
      if (tag == ref.tag || short_tag(tag) == short_tag(ref.tag)) chosen = &image;
    }
  }
  if (ref.tag.empty()) {
    if (m.size() != 1)
      throw InputError(fmt::format("{}: {} images ({}); name one as FILE:REPO:TAG", what, m.size(), listed));
    chosen = &m[0];
  }
  if (!chosen) throw InputError(fmt::format("{}: no image tagged {} (tags: {})", what, ref.tag, listed));
  ArchiveManifest out;
  out.config = string_field(*chosen, "Config", what);
  out.layers = strings(*chosen, "Layers", what);
  for (const auto& l : out.layers)
    if (l.empty() || l.front() == '/' || l.find("..") != std::string::npos)
      throw InputError(fmt::format("{}: layer member '{}' refused", what, l));
  return out;
}

Image read_image(const std::string& text) {
  Image image;
  image.reference = parse_reference(text);
  const Reference& ref = image.reference;
  const std::string what = "image '" + text + "'";
  std::vector<std::string> diff_ids;
  if (!ref.docker_archive) {
    const std::string index_path = ref.path + "/index.json";
    const std::string manifest_digest = select_manifest(read_small_file(index_path), ref, index_path);
    std::string manifest_text = layout_document(ref.path, manifest_digest, "manifest");
    // A multi-platform index: the manifest of this host's architecture.
    const json probe = parse_json(manifest_text, "manifest " + manifest_digest);
    image.id = manifest_digest;
    auto field = probe.find("mediaType");
    const std::string media_type = field != probe.end() && field->is_string() ? field->get<std::string>() : "";
    if (one_of(media_type, kIndexTypes)) {
      const std::string arch = host_architecture();
      std::string digest;
      auto text_of = [](const json& j, const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      auto manifests = probe.find("manifests");
      if (manifests == probe.end() || !manifests->is_array())
        throw InputError(fmt::format("{}: an image index without a manifests list", what));
      for (const json& d : *manifests) {
        if (!d.is_object()) continue;
        auto p = d.find("platform");
        if (p != d.end() && p->is_object() && text_of(*p, "os") == "linux" && text_of(*p, "architecture") == arch)
          digest = string_field(d, "digest", what);
      }
      if (digest.empty()) throw InputError(fmt::format("{}: no manifest for linux/{}", what, arch));
      manifest_text = layout_document(ref.path, digest, "manifest");
      image.id = digest;
    } else if (!media_type.empty() && !one_of(media_type, kManifestTypes)) {
      throw InputError(fmt::format("{}: manifest of media type {}, not an image manifest", what, media_type));
    }
    Manifest manifest = parse_manifest(manifest_text, "manifest " + image.id);
    const std::string config_text = layout_document(ref.path, manifest.config_digest, "config");
    image.config = parse_config(config_text, "config " + manifest.config_digest, &diff_ids);
    image.layers = std::move(manifest.layers);
    for (Layer& l : image.layers) l.blob = ref.path + "/blobs/sha256/" + hex_of(l.digest);
  } else {
    std::map<std::string, std::string> symlinks;
    const auto documents = archive_documents(ref.path, symlinks);
    auto manifest = documents.find("manifest.json");
    if (manifest == documents.end())
      throw InputError(fmt::format("{}: {} has no manifest.json (not a docker archive)", what, ref.path));
    ArchiveManifest am = parse_archive_manifest(manifest->second, ref, ref.path + ": manifest.json");
    auto config = documents.find(member_name(am.config));
    if (config == documents.end())
      throw InputError(fmt::format("{}: config {} is not in {}", what, am.config, ref.path));
    const std::string config_digest = "sha256:" + rootfs::bytes_digest(config->second);
    if (std::string named = digest_in_member_name(am.config); !named.empty() && named != config_digest)
      throw InputError(fmt::format("{}: config {} in {}: its sha256 is {}, but it is named {}", what, am.config,
                                   ref.path, config_digest, named));
    image.id = config_digest;
    image.config = parse_config(config->second, "config " + am.config, &diff_ids);
    for (const auto& listed : am.layers) {
      std::string member = member_name(listed);
      for (int hops = 0; symlinks.count(member); ++hops) {
        member = symlinks.at(member);
        if (member.empty() || hops == 8)
          throw InputError(
              fmt::format("{}: layer {} is a symbolic link out of the archive or in a loop", what, listed));
      }
      Layer l;
      l.blob = member;
      l.digest = digest_in_member_name(member);
      image.layers.push_back(std::move(l));
    }
  }
  if (diff_ids.size() != image.layers.size())
    throw InputError(fmt::format("{}: the config lists {} diff_ids for {} layers", what, diff_ids.size(),
                                 image.layers.size()));
  for (std::size_t i = 0; i < diff_ids.size(); ++i) image.layers[i].diff_id = diff_ids[i];
  if (image.layers.empty()) throw InputError(fmt::format("{}: the image has no layers", what));
  return image;
}

void apply_image_config(ContainerSpec& spec, const ImageConfig& config) {
  if (spec.command.empty()) {
    spec.command = config.entrypoint;
    spec.command.insert(spec.command.end(), config.cmd.begin(), config.cmd.end());
  }
  if (spec.command.empty())
    throw InputError(fmt::format("{}: neither config.init_command nor the image's Entrypoint/Cmd sets a command",
                                 spec.source_file));
  std::vector<std::string> env = config.env;
  for (const std::string& own : spec.environment) {
    const std::string key = own.substr(0, own.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
  }
  env.insert(env.end(), spec.environment.begin(), spec.environment.end());
  spec.environment = std::move(env);
  if (spec.workdir.empty()) spec.workdir = config.working_dir;
  if (spec.workdir.empty()) spec.workdir = "/";
  if (spec.user.empty()) spec.user = config.user;
}

}  // namespace haco::oci
