// Builds OCI image layouts for the tests: blobs named by their sha256, one
// manifest and config per image, an index naming it by tag.
#pragma once

#include <stdio.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "haco/rootfs.hpp"

namespace haco::oci::testing {

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class LayoutBuilder {
 public:
  explicit LayoutBuilder(const std::string& dir) : dir_(dir) {
    mkdir(dir.c_str(), 0755);
    mkdir((dir + "/blobs").c_str(), 0755);
    mkdir((dir + "/blobs/sha256").c_str(), 0755);
  }
  // A blob holding `text`; its digest.
  std::string blob(const std::string& text) {
    const std::string digest = "sha256:" + rootfs::bytes_digest(text);
    write_text(dir_ + "/blobs/sha256/" + digest.substr(7), text);
    return digest;
  }
  // The file at `path`, moved in as a blob; its digest.
  std::string blob_file(const std::string& path) {
    const std::string digest = "sha256:" + rootfs::file_digest(path);
    rename(path.c_str(), (dir_ + "/blobs/sha256/" + digest.substr(7)).c_str());
    return digest;
  }
  // One image of `layers` (blob digest, diff_id; bottom first), tagged `tag`,
  // whose config has `config` (a JSON object's text) as its "config".
  void image(const std::vector<std::pair<std::string, std::string>>& layers, const std::string& tag,
             const std::string& config = R"({"Cmd":["/bin/true"]})") {
    std::string diff_ids, list;
    for (const auto& [digest, diff_id] : layers) {
      diff_ids += (diff_ids.empty() ? "\"" : ",\"") + diff_id + "\"";
      list += std::string(list.empty() ? "" : ",") +
              R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + digest + "\"}";
    }
    const std::string config_digest =
        blob(R"({"config":)" + config + R"(,"rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}");
    const std::string manifest =
        blob(R"({"schemaVersion":2,"config":{"digest":")" + config_digest + R"("},"layers":[)" + list + "]}");
    manifests_ += std::string(manifests_.empty() ? "" : ",") +
                  R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":")" + manifest +
                  R"(","annotations":{"org.opencontainers.image.ref.name":")" + tag + "\"}}";
    write_text(dir_ + "/index.json", R"({"schemaVersion":2,"manifests":[)" + manifests_ + "]}");
  }

 private:
  std::string dir_;
  std::string manifests_;
};

}  // namespace haco::oci::testing
